// What a session keeps of its handshake request (edge/engineio/handshake.h):
// the address, the URL's query and the headers the options name, from a real
// HTTP request to a listener on 127.0.0.1.
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "edge/engineio/server.h"
#include "edge/engineio/session.h"
#include "edge/http/server.h"
#include "edge/runtime.h"

namespace switchboard::eio {
namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;
using namespace std::chrono_literals;

// What the test reads from the session's handshake (on its shard).
struct Seen {
  std::string address;
  std::string url;
  std::optional<std::string> keep, keep_upper, drop, host, token;
};

std::optional<std::string> Copy(std::optional<std::string_view> v) {
  if (!v) return std::nullopt;
  return std::string(*v);
}

// Opens a polling session with two extra headers and a query parameter;
// returns what the server's session kept.
Seen HandshakeWith(std::optional<std::vector<std::string>> kept_headers) {
  edge::Runtime runtime(1);
  Options options;
  options.ping_interval = 60s;
  options.handshake_headers = std::move(kept_headers);
  Server engine(runtime, options);
  std::promise<Seen> seen;
  engine.OnConnection([&seen](const SessionPtr& session) {
    const Handshake& h = session->handshake();
    seen.set_value(Seen{std::string(h.address()), std::string(h.url()), Copy(h.Header("x-keep")),
                        Copy(h.Header("X-KEEP")), Copy(h.Header("x-drop")),
                        Copy(h.Header("host")), h.Query("token")});
  });
  edge::HttpOptions http_options;
  http_options.host = "127.0.0.1";
  http_options.port = 0;
  edge::HttpServer listener(runtime, http_options);
  listener.Mount("/engine.io/", engine);
  EXPECT_TRUE(listener.Listen().ok());
  runtime.Start();

  net::io_context ioc;
  boost::beast::tcp_stream stream(ioc);
  stream.connect(net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), listener.port()));
  http::request<http::empty_body> req(http::verb::get,
                                      "/engine.io/?EIO=4&transport=polling&token=a%20b", 11);
  req.set(http::field::host, "127.0.0.1");
  req.set("X-Keep", "yes");
  req.set("X-Drop", "no");
  http::write(stream, req);
  boost::beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(stream, buffer, res);
  EXPECT_EQ(res.result_int(), 200) << res.body();

  auto future = seen.get_future();
  Seen out;
  if (future.wait_for(5s) == std::future_status::ready) {
    out = future.get();
  } else {
    ADD_FAILURE() << "no session opened";
  }
  std::promise<void> done;
  engine.CloseAll([&done] { done.set_value(); });
  EXPECT_EQ(done.get_future().wait_for(5s), std::future_status::ready);
  runtime.Stop();
  runtime.Join();
  return out;
}

TEST(HandshakeTest, SessionKeepsOnlyTheNamedHeaders) {
  Seen seen = HandshakeWith(std::vector<std::string>{"x-keep"});
  EXPECT_EQ(seen.address, "127.0.0.1");
  EXPECT_EQ(seen.url, "/engine.io/?EIO=4&transport=polling&token=a%20b");
  EXPECT_EQ(seen.token, "a b");
  EXPECT_EQ(seen.keep, "yes");
  EXPECT_EQ(seen.keep_upper, "yes");  // names are case-insensitive
  EXPECT_EQ(seen.drop, std::nullopt);
  EXPECT_EQ(seen.host, std::nullopt);
}

TEST(HandshakeTest, SessionKeepsEveryHeaderWhenNoneAreNamed) {
  Seen seen = HandshakeWith(std::nullopt);
  EXPECT_EQ(seen.address, "127.0.0.1");
  EXPECT_EQ(seen.token, "a b");
  EXPECT_EQ(seen.keep, "yes");
  EXPECT_EQ(seen.drop, "no");
  EXPECT_EQ(seen.host, "127.0.0.1");
}

TEST(HandshakeTest, SessionKeepsNoHeaderWhenTheListIsEmpty) {
  Seen seen = HandshakeWith(std::vector<std::string>{});
  EXPECT_EQ(seen.token, "a b");
  EXPECT_EQ(seen.keep, std::nullopt);
  EXPECT_EQ(seen.drop, std::nullopt);
}

}  // namespace
}  // namespace switchboard::eio
