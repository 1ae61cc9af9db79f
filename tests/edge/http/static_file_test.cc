// The edge's static files (HttpServer::ServeFile, the chat page and its bundle)
// next to a mounted Socket.IO server, over real TCP with raw request lines, so
// that targets reach the server exactly as written (no client-side
// normalization of "..", percent-encoding or absolute forms).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "edge/http/server.h"
#include "edge/runtime.h"
#include "edge/socketio/server.h"

namespace switchboard::edge {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

const std::string kHtml = "<!doctype html><title>chat</title><script src=/socket.io.min.js>";
const std::string kScript = "/* socket.io */ var io = function () {};";

struct Reply {
  unsigned status = 0;
  http::fields headers;
  std::string body;
  bool closed_without_reply = false;

  template <typename Name>  // http::field or a string
  std::string Header(Name name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "(none)" : std::string(it->value());
  }
};

// An edge listener on a free port: Socket.IO at /socket.io/, and the page at /
// and the script at /socket.io.min.js when `page` is set.
class Edge {
 public:
  explicit Edge(bool page) : runtime_(2), io_(runtime_, {}, {}), http_(runtime_, {"127.0.0.1", 0}) {
    http_.Mount("/socket.io/", io_.engine());
    if (page) {
      http_.ServeFile("/", StaticFile{"text/html; charset=UTF-8", kHtml});
      http_.ServeFile("/socket.io.min.js", StaticFile{"text/javascript; charset=UTF-8", kScript});
    }
    EXPECT_TRUE(http_.Listen().ok());
    runtime_.Start();
  }
  ~Edge() {
    io_.engine().CloseAll();
    // Lets the closed sessions' handlers run before the shards stop.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    runtime_.Stop();
    runtime_.Join();
  }

  // Sends `head` (a request line and headers, without the final empty line) on
  // a new connection and reads one response; reads give up after 5 s.
  Reply Request(const std::string& head, bool head_method = false) {
    net::io_context ioc;
    tcp::socket socket(ioc);
    socket.connect({net::ip::make_address("127.0.0.1"), http_.port()});
    timeval tv{5, 0};
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    net::write(socket, net::buffer(head + "\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"));
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.skip(head_method);  // a response to HEAD has no body, whatever its Content-Length
    beast::error_code ec;
    http::read(socket, buffer, parser, ec);
    Reply reply;
    if (ec) {
      reply.closed_without_reply = true;
      return reply;
    }
    reply.status = parser.get().result_int();
    reply.headers = parser.get().base();
    reply.body = parser.get().body();
    return reply;
  }
  Reply Get(const std::string& target) { return Request("GET " + target + " HTTP/1.1"); }

  // Sends every request of `heads` at once on one keep-alive connection (the
  // last one closes it) and reads their responses.
  std::vector<Reply> Pipeline(const std::vector<std::string>& heads, bool first_is_head) {
    net::io_context ioc;
    tcp::socket socket(ioc);
    socket.connect({net::ip::make_address("127.0.0.1"), http_.port()});
    timeval tv{5, 0};
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string requests;
    for (size_t i = 0; i < heads.size(); ++i) {
      requests += heads[i] + "\r\nHost: 127.0.0.1\r\n";
      if (i + 1 == heads.size()) requests += "Connection: close\r\n";
      requests += "\r\n";
    }
    net::write(socket, net::buffer(requests));
    beast::flat_buffer buffer;
    std::vector<Reply> replies;
    for (size_t i = 0; i < heads.size(); ++i) {
      http::response_parser<http::string_body> parser;
      parser.skip(i == 0 && first_is_head);
      beast::error_code ec;
      http::read(socket, buffer, parser, ec);
      if (ec) break;
      Reply reply;
      reply.status = parser.get().result_int();
      reply.body = parser.get().body();
      replies.push_back(std::move(reply));
    }
    return replies;
  }

 private:
  Runtime runtime_;
  sio::Server io_;
  HttpServer http_;
};

TEST(StaticFileTest, ThePageAndTheScriptWithTheirTypes) {
  Edge edge(/*page=*/true);
  for (const char* target : {"/", "/?name=alice", "/?"}) {
    Reply page = edge.Get(target);
    EXPECT_EQ(page.status, 200u) << target;
    EXPECT_EQ(page.body, kHtml) << target;
    EXPECT_EQ(page.Header(http::field::content_type), "text/html; charset=UTF-8");
    EXPECT_EQ(page.Header(http::field::content_length), std::to_string(kHtml.size()));
    EXPECT_EQ(page.Header("X-Content-Type-Options"), "nosniff");
  }
  Reply script = edge.Get("/socket.io.min.js");
  EXPECT_EQ(script.status, 200u);
  EXPECT_EQ(script.body, kScript);
  EXPECT_EQ(script.Header(http::field::content_type), "text/javascript; charset=UTF-8");
  EXPECT_EQ(script.Header("X-Content-Type-Options"), "nosniff");
}

TEST(StaticFileTest, OnlyTheRegisteredPathsAreServed) {
  Edge edge(/*page=*/true);
  // Unknown paths, near misses, and anything a file-system path would resolve.
  for (const char* target : {"/index.html",
                             "/nope",
                             "/socket.io.min.js/",
                             "/socket.io.min.js.map",
                             "//",
                             "/.",
                             "/./",
                             "/..",
                             "/../",
                             "/../../etc/passwd",
                             "/%2e%2e/",
                             "/%2e%2e/%2e%2e/etc/passwd",
                             "/%2E%2E%2Fetc%2Fpasswd",
                             "/..%2f..%2fetc%2fpasswd",
                             "/%2fetc%2fpasswd",
                             "/..\\..\\etc\\passwd",
                             "/etc/passwd",
                             "/proc/self/environ",
                             "/x/../",
                             "/x/../socket.io.min.js",
                             "/./socket.io.min.js",
                             "//socket.io.min.js",
                             "/%2F",
                             "/socket.io.min.js%00",
                             "/%00",
                             "*",
                             "http://127.0.0.1/",
                             "http://127.0.0.1/../etc/passwd",
                             "file:///etc/passwd",
                             "etc/passwd"}) {
    Reply reply = edge.Get(target);
    EXPECT_FALSE(reply.closed_without_reply) << target;
    EXPECT_EQ(reply.status, 404u) << target;
    EXPECT_NE(reply.body, kHtml) << target;
    EXPECT_NE(reply.body, kScript) << target;
    EXPECT_EQ(reply.body.find("root:"), std::string::npos) << target;
  }
}

TEST(StaticFileTest, HeadHasTheHeadersOfGetAndNoBody) {
  Edge edge(/*page=*/true);
  Reply get = edge.Get("/");
  Reply head = edge.Request("HEAD / HTTP/1.1", /*head_method=*/true);
  EXPECT_EQ(head.status, 200u);
  EXPECT_EQ(head.body, "");
  for (http::field f : {http::field::content_type, http::field::content_length, http::field::etag,
                        http::field::cache_control}) {
    EXPECT_EQ(head.Header(f), get.Header(f)) << f;
  }
  EXPECT_EQ(head.Header(http::field::content_length), std::to_string(kHtml.size()));

  // On a keep-alive connection, a HEAD's response is followed by the next
  // response, not by a body.
  std::vector<Reply> replies = edge.Pipeline({"HEAD / HTTP/1.1", "GET /socket.io.min.js HTTP/1.1"},
                                             /*first_is_head=*/true);
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_EQ(replies[0].status, 200u);
  EXPECT_EQ(replies[1].status, 200u);
  EXPECT_EQ(replies[1].body, kScript);
}

TEST(StaticFileTest, OtherMethodsAreNotAllowed) {
  Edge edge(/*page=*/true);
  for (const char* method : {"POST", "PUT", "DELETE", "OPTIONS", "PATCH"}) {
    Reply reply = edge.Request(std::string(method) + " / HTTP/1.1\r\nContent-Length: 0");
    EXPECT_EQ(reply.status, 405u) << method;
    EXPECT_EQ(reply.Header(http::field::allow), "GET, HEAD") << method;
    EXPECT_NE(reply.body, kHtml);
  }
}

TEST(StaticFileTest, CachingRevalidatesWithTheETag) {
  Edge edge(/*page=*/true);
  Reply page = edge.Get("/");
  Reply script = edge.Get("/socket.io.min.js");
  // Kept by the browser but asked for each time: a new page or bundle shows at
  // once.
  EXPECT_EQ(page.Header(http::field::cache_control), "no-cache");
  EXPECT_EQ(script.Header(http::field::cache_control), "no-cache");
  const std::string etag = page.Header(http::field::etag);
  ASSERT_GE(etag.size(), 3u);
  EXPECT_EQ(etag.front(), '"');
  EXPECT_EQ(etag.back(), '"');
  EXPECT_NE(script.Header(http::field::etag), etag) << "another file, another tag";
  EXPECT_EQ(edge.Get("/").Header(http::field::etag), etag) << "stable";
  {
    // Another edge serving the same bytes gives the same tag (clients move
    // between edges).
    Edge other(/*page=*/true);
    EXPECT_EQ(other.Get("/").Header(http::field::etag), etag);
  }

  for (const std::string& none_match :
       {etag, "W/" + etag, "\"other\", " + etag, " \"x\" ,W/" + etag + " ", std::string("*")}) {
    Reply reply = edge.Request("GET / HTTP/1.1\r\nIf-None-Match: " + none_match);
    EXPECT_EQ(reply.status, 304u) << none_match;
    EXPECT_EQ(reply.body, "") << none_match;
    EXPECT_EQ(reply.Header(http::field::etag), etag);
    EXPECT_EQ(reply.Header(http::field::cache_control), "no-cache");
  }
  for (const std::string& none_match : {std::string("\"other\""), script.Header(http::field::etag),
                                        std::string(""), etag.substr(0, etag.size() - 2) + "\""}) {
    Reply reply = edge.Request("GET / HTTP/1.1\r\nIf-None-Match: " + none_match);
    EXPECT_EQ(reply.status, 200u) << none_match;
    EXPECT_EQ(reply.body, kHtml) << none_match;
  }
}

TEST(StaticFileTest, SocketIoIsServedBesideThePage) {
  Edge edge(/*page=*/true);
  Reply open = edge.Get("/socket.io/?EIO=4&transport=polling");
  EXPECT_EQ(open.status, 200u);
  EXPECT_EQ(open.body.rfind("0{\"sid\":", 0), 0u) << open.body;
}

TEST(StaticFileTest, NoPageNoFiles) {
  Edge edge(/*page=*/false);
  for (const char* target : {"/", "/socket.io.min.js", "/index.html"}) {
    Reply reply = edge.Get(target);
    EXPECT_EQ(reply.status, 404u) << target;
  }
  EXPECT_EQ(edge.Request("HEAD / HTTP/1.1", /*head_method=*/true).status, 404u);
  // Socket.IO works as ever.
  Reply open = edge.Get("/socket.io/?EIO=4&transport=polling");
  EXPECT_EQ(open.status, 200u);
  EXPECT_EQ(open.body.rfind("0{\"sid\":", 0), 0u) << open.body;
}

}  // namespace
}  // namespace switchboard::edge
