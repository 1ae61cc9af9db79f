#pragma once
// The official Admin UI's built files (the pinned @socket.io/admin-ui's ui/dist, copied to
// build/admin-ui by the build), served by the edge at adminUi.uiPath so that an operator opens
// one URL. The page connects back to the edge that served it: same-origin, which the edge's
// CORS check always lets through (edge/engineio/server.cc).

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "admin_ui/options.h"
#include "edge/http/server.h"

namespace switchboard::admin_ui {

// Bounds on what is read into memory at start: the UI is about 1.3 MB in a dozen files.
struct UiLimits {
  size_t max_files = 200;
  size_t max_bytes = 50u << 20;
};

// Reads every regular file under options.ui_dir (or `default_dir` when that is empty) once and
// serves each at options.ui_path + its relative path (GET and HEAD; requests never touch the file
// system), index.html also at ui_path itself, and ui_path without its trailing slash redirects to
// it (the page's URLs are relative). Nothing when ui_path is empty. A missing default_dir is only
// warned about (the admin namespace works without the page); a missing configured ui_dir, too
// many or too large files, or a path already served are errors. Call before http.Listen().
absl::Status ServeUi(const Options& options, edge::HttpServer& http, const std::string& default_dir,
                     const UiLimits& limits = {});

// admin-ui beside the running binary's folder: build/bin/switchboard finds build/admin-ui.
std::string DefaultUiDir();

// The Content-Type of a file by its name's extension (application/octet-stream when unknown).
std::string ContentTypeOf(std::string_view file_name);

}  // namespace switchboard::admin_ui
