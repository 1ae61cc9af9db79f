#include "admin_ui/ui_files.h"

#include <spdlog/spdlog.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace switchboard::admin_ui {
namespace {

namespace fs = std::filesystem;

struct UiFile {
  std::string url_path;  // relative to the UI's folder, with '/'
  std::string body;
};

// Every regular file under `dir`, within `limits`.
absl::StatusOr<std::vector<UiFile>> ReadTree(const fs::path& dir, const UiLimits& limits) {
  std::vector<UiFile> files;
  size_t total = 0;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    if (files.size() == limits.max_files) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "adminUi.uiDir: ", dir.string(), " holds more than ", limits.max_files, " files"));
    }
    std::ifstream in(it->path(), std::ios::binary);
    std::ostringstream body;
    body << in.rdbuf();
    if (!in || in.bad()) {
      return absl::NotFoundError(absl::StrCat("adminUi.uiDir: cannot read ", it->path().string()));
    }
    total += body.view().size();
    if (total > limits.max_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "adminUi.uiDir: ", dir.string(), " holds more than ", limits.max_bytes, " bytes"));
    }
    files.push_back({it->path().lexically_relative(dir).generic_string(), std::move(body).str()});
  }
  if (ec) {
    return absl::NotFoundError(
        absl::StrCat("adminUi.uiDir: cannot read ", dir.string(), ": ", ec.message()));
  }
  return files;
}

}  // namespace

std::string ContentTypeOf(std::string_view file_name) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 14> kTypes = {{
      {".html", "text/html; charset=UTF-8"},
      {".css", "text/css; charset=UTF-8"},
      {".js", "text/javascript; charset=UTF-8"},
      {".mjs", "text/javascript; charset=UTF-8"},
      {".json", "application/json"},
      {".map", "application/json"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".jpg", "image/jpeg"},
      {".ico", "image/x-icon"},
      {".woff", "font/woff"},
      {".woff2", "font/woff2"},
      {".ttf", "font/ttf"},
      {".txt", "text/plain; charset=UTF-8"},
  }};
  const size_t dot = file_name.rfind('.');
  if (dot != std::string_view::npos && file_name.find('/', dot) == std::string_view::npos) {
    std::string extension(file_name.substr(dot));
    absl::AsciiStrToLower(&extension);
    for (const auto& [ext, type] : kTypes) {
      if (ext == extension) return std::string(type);
    }
  }
  return "application/octet-stream";
}

std::string DefaultUiDir() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "admin-ui";
  return (exe.parent_path().parent_path() / "admin-ui").string();
}

absl::Status ServeUi(const Options& options, edge::HttpServer& http, const std::string& default_dir,
                     const UiLimits& limits) {
  const std::string& path = options.ui_path;
  if (path.empty()) return absl::OkStatus();
  const bool configured = !options.ui_dir.empty();
  const fs::path dir = configured ? options.ui_dir : default_dir;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    if (configured) {
      return absl::NotFoundError(
          absl::StrCat("adminUi.uiDir: ", dir.string(), " is not a directory"));
    }
    spdlog::warn(
        "the Admin UI's files are not at {} (built by the sb-admin-ui-files target; set "
        "adminUi.uiDir): not serving them at {}; the admin namespace works without them",
        dir.string(), path);
    return absl::OkStatus();
  }
  auto files = ReadTree(dir, limits);
  if (!files.ok()) return files.status();

  // Every route first, so that nothing is served when one clashes (e.g. with "page").
  std::vector<std::pair<std::string, const UiFile*>> routes;
  for (const UiFile& file : *files) {
    routes.emplace_back(path + file.url_path, &file);
    if (file.url_path == "index.html") routes.emplace_back(path, &file);
  }
  bool has_index = false;
  for (const auto& [url, file] : routes) {
    if (http.StaticRoute(url) != nullptr) {
      return absl::AlreadyExistsError(
          absl::StrCat("adminUi.uiPath: ", url, " is already served (by \"page\"?)"));
    }
    has_index = has_index || url == path;
  }
  if (!has_index) {
    return absl::NotFoundError(
        absl::StrCat("adminUi.uiDir: no index.html in ", dir.string(), " (for ", path, ")"));
  }
  const std::string bare = path.substr(0, path.size() - 1);
  if (!bare.empty() && http.StaticRoute(bare) != nullptr) {
    return absl::AlreadyExistsError(
        absl::StrCat("adminUi.uiPath: ", bare, " is already served (by \"page\"?)"));
  }
  for (const auto& [url, file] : routes) {
    http.ServeFile(url, edge::StaticFile{ContentTypeOf(file->url_path), file->body});
  }
  if (!bare.empty()) http.ServeRedirect(bare, path);
  spdlog::info("serving the Admin UI at {} ({} files from {})", path, files->size(), dir.string());
  return absl::OkStatus();
}

}  // namespace switchboard::admin_ui
