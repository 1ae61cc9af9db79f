# Copies the Admin UI's built files (SRC: node_modules/@socket.io/admin-ui/ui/dist) to DEST,
# afresh (a new version's hashed names leave no stale files), without the source maps.
file(REMOVE_RECURSE ${DEST})
file(GLOB_RECURSE _files RELATIVE ${SRC} ${SRC}/*)
foreach(_f IN LISTS _files)
  if(NOT _f MATCHES "\\.map$")
    get_filename_component(_dir ${DEST}/${_f} DIRECTORY)
    file(COPY ${SRC}/${_f} DESTINATION ${_dir})
  endif()
endforeach()
