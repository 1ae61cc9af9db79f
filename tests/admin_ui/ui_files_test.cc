// The Admin UI's files (admin_ui/ui_files.h) served by a real edge listener on 127.0.0.1, read
// from a folder made in the test, asked for with raw HTTP requests.
#include "admin_ui/ui_files.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "edge/http/server.h"
#include "edge/runtime.h"

namespace switchboard::admin_ui {
namespace {

namespace fs = std::filesystem;
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using ::testing::HasSubstr;

const std::string kIndex = "<!DOCTYPE html><link href=css/app.css><script src=js/app.js></script>";

struct Reply {
  unsigned status = 0;
  std::string content_type;
  std::string location;
  std::string body;
};

// A folder of files under the system's temporary folder, removed at the end.
class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("sb-admin-ui-" + std::to_string(::getpid()) + "-" + std::to_string(next_++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  void Write(const std::string& relative, const std::string& content) const {
    fs::create_directories((path_ / relative).parent_path());
    std::ofstream(path_ / relative, std::ios::binary) << content;
  }
  std::string path() const { return path_.string(); }

 private:
  static inline int next_ = 0;
  fs::path path_;
};

// A UI build's layout.
void WriteUi(const TempDir& dir) {
  dir.Write("index.html", kIndex);
  dir.Write("favicon.png", std::string("\x89PNG\r\n", 6));
  dir.Write("css/app.css", "body{}");
  dir.Write("js/app.js", "console.log(1)");
  dir.Write("js/app.js.map", "{}");
  dir.Write("img/logo.svg", "<svg/>");
}

// An edge listener on a free port of 127.0.0.1 with the UI served by ServeUi.
class Edge {
 public:
  explicit Edge(const Options& options, const std::string& default_dir = "/nonexistent",
                UiLimits limits = {})
      : runtime_(1), http_(runtime_, {"127.0.0.1", 0}) {
    served_ = ServeUi(options, http_, default_dir, limits);
    EXPECT_TRUE(http_.Listen().ok());
    runtime_.Start();
  }
  ~Edge() {
    runtime_.Stop();
    runtime_.Join();
  }
  const absl::Status& served() const { return served_; }
  edge::HttpServer& http() { return http_; }

  Reply Request(const std::string& method, const std::string& target) {
    net::io_context ioc;
    tcp::socket socket(ioc);
    socket.connect({net::ip::make_address("127.0.0.1"), http_.port()});
    timeval tv{5, 0};
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    net::write(socket, net::buffer(method + " " + target +
                                   " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"));
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.skip(method == "HEAD");
    beast::error_code ec;
    http::read(socket, buffer, parser, ec);
    Reply reply;
    if (ec) return reply;
    const auto& res = parser.get();
    reply.status = res.result_int();
    if (auto it = res.find(http::field::content_type); it != res.end()) {
      reply.content_type = std::string(it->value());
    }
    if (auto it = res.find(http::field::location); it != res.end()) {
      reply.location = std::string(it->value());
    }
    reply.body = res.body();
    return reply;
  }
  Reply Get(const std::string& target) { return Request("GET", target); }

 private:
  edge::Runtime runtime_;
  edge::HttpServer http_;
  absl::Status served_;
};

Options UiAt(const std::string& path, const std::string& dir) {
  Options options;
  options.auth = false;
  options.ui_path = path;
  options.ui_dir = dir;
  return options;
}

TEST(UiFilesTest, ServesEveryFileWithItsTypeAndIndexAtThePath) {
  TempDir dir;
  WriteUi(dir);
  Edge edge(UiAt("/admin-ui/", dir.path()));
  ASSERT_TRUE(edge.served().ok()) << edge.served();

  for (const std::string target : {"/admin-ui/", "/admin-ui/index.html", "/admin-ui/?x=1"}) {
    Reply index = edge.Get(target);
    EXPECT_EQ(index.status, 200u) << target;
    EXPECT_EQ(index.content_type, "text/html; charset=UTF-8") << target;
    EXPECT_EQ(index.body, kIndex) << target;
  }
  const std::pair<std::string, std::string> expected[] = {
      {"/admin-ui/css/app.css", "text/css; charset=UTF-8"},
      {"/admin-ui/js/app.js", "text/javascript; charset=UTF-8"},
      {"/admin-ui/js/app.js.map", "application/json"},
      {"/admin-ui/img/logo.svg", "image/svg+xml"},
      {"/admin-ui/favicon.png", "image/png"},
  };
  for (const auto& [target, type] : expected) {
    Reply file = edge.Get(target);
    EXPECT_EQ(file.status, 200u) << target;
    EXPECT_EQ(file.content_type, type) << target;
  }
  EXPECT_EQ(edge.Get("/admin-ui/js/app.js").body, "console.log(1)");
  EXPECT_EQ(edge.Get("/admin-ui/favicon.png").body, std::string("\x89PNG\r\n", 6));

  // Only what the folder held; no path is resolved against the file system.
  EXPECT_EQ(edge.Get("/admin-ui/js/").status, 404u);
  EXPECT_EQ(edge.Get("/admin-ui/nope.js").status, 404u);
  EXPECT_EQ(edge.Get("/admin-ui/js/../index.html").status, 404u);
  EXPECT_EQ(edge.Get("/index.html").status, 404u);
  // As the page: GET and HEAD only.
  EXPECT_EQ(edge.Request("HEAD", "/admin-ui/js/app.js").status, 200u);
  EXPECT_EQ(edge.Request("POST", "/admin-ui/").status, 405u);
}

// The page's URLs are relative ("js/app.js"): opened at "/admin-ui" they would resolve to
// "/js/app.js", so that path redirects to "/admin-ui/".
TEST(UiFilesTest, ThePathWithoutItsSlashRedirects) {
  TempDir dir;
  WriteUi(dir);
  Edge edge(UiAt("/ops/admin/", dir.path()));
  ASSERT_TRUE(edge.served().ok()) << edge.served();
  Reply redirect = edge.Get("/ops/admin");
  EXPECT_EQ(redirect.status, 302u);
  EXPECT_EQ(redirect.location, "/ops/admin/");
  EXPECT_EQ(edge.Get("/ops/admin?a=b").location, "/ops/admin/?a=b");
  EXPECT_EQ(edge.Request("HEAD", "/ops/admin").status, 302u);
  EXPECT_EQ(edge.Request("POST", "/ops/admin").status, 405u);
  EXPECT_EQ(edge.Get("/ops/admin/").body, kIndex);
  EXPECT_EQ(edge.Get("/admin-ui/").status, 404u);
}

TEST(UiFilesTest, TheDefaultFolderServesWhenNoneIsConfigured) {
  TempDir dir;
  WriteUi(dir);
  Edge edge(UiAt("/admin-ui/", ""), dir.path());
  ASSERT_TRUE(edge.served().ok()) << edge.served();
  EXPECT_EQ(edge.Get("/admin-ui/").body, kIndex);
}

TEST(UiFilesTest, AnEmptyPathServesNothing) {
  TempDir dir;
  WriteUi(dir);
  Edge edge(UiAt("", dir.path()));
  EXPECT_TRUE(edge.served().ok()) << edge.served();
  EXPECT_EQ(edge.Get("/").status, 404u);
  EXPECT_EQ(edge.Get("/index.html").status, 404u);
}

TEST(UiFilesTest, AMissingConfiguredFolderIsAnErrorNamingTheKeyAndPath) {
  Edge edge(UiAt("/admin-ui/", "/nonexistent/sb-admin-ui"));
  EXPECT_EQ(edge.served().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(edge.served().message(), HasSubstr("adminUi.uiDir"));
  EXPECT_THAT(edge.served().message(), HasSubstr("/nonexistent/sb-admin-ui"));
  EXPECT_EQ(edge.Get("/admin-ui/").status, 404u);
}

// Without the built files (npm missing at build time) the admin namespace still works: a warning.
TEST(UiFilesTest, AMissingDefaultFolderIsOnlyWarnedAbout) {
  Edge edge(UiAt("/admin-ui/", ""), "/nonexistent/sb-admin-ui");
  EXPECT_TRUE(edge.served().ok()) << edge.served();
  EXPECT_EQ(edge.Get("/admin-ui/").status, 404u);
}

TEST(UiFilesTest, AFolderWithoutIndexIsAnError) {
  TempDir dir;
  dir.Write("js/app.js", "1");
  Edge edge(UiAt("/admin-ui/", dir.path()));
  EXPECT_THAT(edge.served().message(), HasSubstr("no index.html"));
  EXPECT_EQ(edge.Get("/admin-ui/js/app.js").status, 404u);
}

TEST(UiFilesTest, TooManyOrTooLargeFilesAreRefused) {
  TempDir dir;
  WriteUi(dir);  // 6 files, about 100 bytes
  {
    Edge edge(UiAt("/admin-ui/", dir.path()), "", UiLimits{.max_files = 5});
    EXPECT_EQ(edge.served().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_THAT(edge.served().message(), HasSubstr("more than 5 files"));
    EXPECT_EQ(edge.Get("/admin-ui/").status, 404u);
  }
  {
    Edge edge(UiAt("/admin-ui/", dir.path()), "", UiLimits{.max_bytes = 50});
    EXPECT_EQ(edge.served().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_THAT(edge.served().message(), HasSubstr("more than 50 bytes"));
  }
  // The default bound: 200 files.
  for (int i = 0; i < 200; ++i) dir.Write("many/" + std::to_string(i) + ".js", "1");
  Edge edge(UiAt("/admin-ui/", dir.path()));
  EXPECT_THAT(edge.served().message(), HasSubstr("more than 200 files"));
}

// Served beside the chat page: a path both would serve is refused, naming it.
TEST(UiFilesTest, APathAlreadyServedIsAnError) {
  TempDir dir;
  WriteUi(dir);
  edge::Runtime runtime(1);
  edge::HttpServer http(runtime, {"127.0.0.1", 0});
  http.ServeFile("/", edge::StaticFile{"text/html; charset=UTF-8", "chat"});
  absl::Status served = ServeUi(UiAt("/", dir.path()), http, "");
  EXPECT_EQ(served.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(served.message(), HasSubstr("adminUi.uiPath: / is already served"));
  EXPECT_EQ(http.StaticRoute("/")->body, "chat");
  EXPECT_EQ(http.StaticRoute("/js/app.js"), nullptr);  // nothing half-served
}

TEST(UiFilesTest, ContentTypes) {
  EXPECT_EQ(ContentTypeOf("a/b.HTML"), "text/html; charset=UTF-8");
  EXPECT_EQ(ContentTypeOf("x.woff2"), "font/woff2");
  EXPECT_EQ(ContentTypeOf("favicon.ico"), "image/x-icon");
  EXPECT_EQ(ContentTypeOf("x.json"), "application/json");
  EXPECT_EQ(ContentTypeOf("LICENSE"), "application/octet-stream");
  EXPECT_EQ(ContentTypeOf("v1.2/README"), "application/octet-stream");
}

TEST(UiFilesTest, TheDefaultFolderIsBesideTheBinarysFolder) {
  const fs::path exe = fs::read_symlink("/proc/self/exe");
  EXPECT_EQ(DefaultUiDir(), (exe.parent_path().parent_path() / "admin-ui").string());
}

}  // namespace
}  // namespace switchboard::admin_ui
