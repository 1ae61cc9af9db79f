// The edge listener with TLS (edge/http/tls_*.h): Engine.IO over HTTPS and WSS
// against a real listener on 127.0.0.1 with a certificate made here, checked
// by the client against its CA. Two shards, so requests and upgrades of one
// session arrive on other connections on the other shard and move across.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "edge/engineio/server.h"
#include "edge/engineio/session.h"
#include "edge/http/server.h"
#include "edge/http/tls_context.h"
#include "edge/runtime.h"
#include "tests/support/test_certs.h"

namespace switchboard::edge {
namespace {

namespace net = boost::asio;
namespace ssl = net::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;
using testing_support::pki;
using testing_support::TempDir;
using namespace std::chrono_literals;

constexpr auto kHeadersTimeout = 400ms;

// Blocking reads and writes give up after 5 s instead of hanging the test.
void BoundIo(tcp::socket& socket) {
  timeval tv{5, 0};
  ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// Client TLS that trusts only the test CA...
ssl::context TrustingTestCa() {
  ssl::context context(ssl::context::tls_client);
  context.set_verify_mode(ssl::verify_peer);
  std::string ca = pki().ca.CertPem();
  context.add_certificate_authority(net::buffer(ca));
  return context;
}

// ...and expects the server to be "localhost".
void ExpectLocalhost(ssl::stream<tcp::socket>& stream) {
  stream.set_verify_callback(ssl::host_name_verification("localhost"));
  SSL_set_tlsext_host_name(stream.native_handle(), "localhost");
}

// A TLS client that trusts only the test CA and checks the name "localhost".
class TlsClient {
 public:
  TlsClient() : context_(TrustingTestCa()), stream_(ioc_, context_) { ExpectLocalhost(stream_); }

  // TCP connect and TLS handshake; the error of whichever failed.
  beast::error_code Connect(uint16_t port) {
    beast::error_code ec;
    stream_.next_layer().connect({net::ip::make_address("127.0.0.1"), port}, ec);
    if (ec) return ec;
    BoundIo(stream_.next_layer());
    stream_.handshake(ssl::stream_base::client, ec);
    return ec;
  }

  // One request on this connection (keep-alive); status 0 when it failed.
  http::response<http::string_body> Request(http::verb verb, const std::string& target,
                                            std::string body = {}) {
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, "localhost");
    req.body() = std::move(body);
    req.prepare_payload();
    beast::error_code ec;
    http::write(stream_, req, ec);
    http::response<http::string_body> res;
    if (ec) return res;
    http::read(stream_, buffer_, res, ec);
    if (ec) res.result(0);
    return res;
  }

  ssl::stream<tcp::socket>& stream() { return stream_; }

 private:
  net::io_context ioc_;
  ssl::context context_;
  ssl::stream<tcp::socket> stream_;
  beast::flat_buffer buffer_;
};

// A WebSocket over TLS: `target` is the Engine.IO URL.
class WssClient {
 public:
  WssClient() : context_(TrustingTestCa()), ws_(ioc_, context_) { ExpectLocalhost(ws_.next_layer()); }

  beast::error_code Connect(uint16_t port, const std::string& target) {
    beast::error_code ec;
    auto& socket = beast::get_lowest_layer(ws_);
    socket.connect({net::ip::make_address("127.0.0.1"), port}, ec);
    if (ec) return ec;
    BoundIo(socket);
    ws_.next_layer().handshake(ssl::stream_base::client, ec);
    if (ec) return ec;
    ws_.handshake("localhost", target, ec);
    return ec;
  }
  void Send(const std::string& text) {
    beast::error_code ec;
    ws_.text(true);
    ws_.write(net::buffer(text), ec);
    EXPECT_FALSE(ec) << ec.message();
  }
  // The next text frame; "" on error.
  std::string Read() {
    beast::flat_buffer buffer;
    beast::error_code ec;
    ws_.read(buffer, ec);
    if (ec) return {};
    return beast::buffers_to_string(buffer.data());
  }
  void Close() {
    beast::error_code ec;
    ws_.close(websocket::close_code::normal, ec);
  }

 private:
  net::io_context ioc_;
  ssl::context context_;
  websocket::stream<ssl::stream<tcp::socket>> ws_;
};

// The sid in an open packet ("0{...}").
std::string SidOf(const std::string& open) {
  auto json = nlohmann::json::parse(open.substr(open.empty() ? 0 : 1), nullptr, false);
  if (json.is_discarded() || !json.contains("sid")) return {};
  return json["sid"].get<std::string>();
}

class TlsListenerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string cert = dir_.Write("server.pem", pki().server.CertPem());
    std::string key = dir_.Write("server.key", pki().server.KeyPem());
    auto tls = LoadServerTls(cert, key);
    ASSERT_TRUE(tls.ok()) << tls.status();

    runtime_ = std::make_unique<Runtime>(2);
    eio::Options options;
    options.ping_interval = 60s;
    options.ping_timeout = 60s;
    engine_ = std::make_unique<eio::Server>(*runtime_, options);
    engine_->OnConnection([this](const eio::SessionPtr& session) {
      {
        std::lock_guard lock(mu_);
        addresses_.push_back(std::string(session->handshake().address()));
        sessions_.push_back(session);
      }
      std::weak_ptr<eio::Session> weak = session;
      session->OnMessage([weak](eio::Packet&& packet) {
        if (auto s = weak.lock()) {
          s->Send(eio::MakeTextFrame(eio::PacketType::kMessage, packet.data));
        }
      });
    });
    HttpOptions http_options;
    http_options.host = "127.0.0.1";
    http_options.port = 0;
    http_options.headers_timeout = kHeadersTimeout;
    http_options.tls = *tls;
    http_ = std::make_unique<HttpServer>(*runtime_, http_options);
    http_->Mount("/engine.io/", *engine_);
    ASSERT_TRUE(http_->Listen().ok());
    runtime_->Start();
  }

  void TearDown() override {
    auto closed = std::make_shared<std::promise<void>>();
    auto future = closed->get_future();
    engine_->CloseAll([closed] { closed->set_value(); });
    future.wait_for(5s);
    // A WebSocket session and its transport hold each other until the
    // connection ends: let them end before the shards stop.
    WaitFor([&] {
      std::lock_guard lock(mu_);
      for (const auto& weak : sessions_) {
        auto session = weak.lock();
        if (session && session->transport_name() == "websocket") return false;
      }
      return true;
    });
    runtime_->Stop();
    runtime_->Join();
    http_.reset();
    engine_.reset();
    runtime_.reset();
  }

  static bool WaitFor(const std::function<bool()>& condition) {
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!condition()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(5ms);
    }
    return true;
  }

  std::vector<std::string> Addresses() {
    std::lock_guard lock(mu_);
    return addresses_;
  }

  uint16_t port() const { return http_->port(); }

  TempDir dir_;
  std::unique_ptr<Runtime> runtime_;
  std::unique_ptr<eio::Server> engine_;
  std::unique_ptr<HttpServer> http_;
  std::mutex mu_;
  std::vector<std::string> addresses_;
  std::vector<std::weak_ptr<eio::Session>> sessions_;
};

TEST_F(TlsListenerTest, PollingSessionAcrossConnectionsAndShards) {
  // Each request on its own connection: connections alternate between the
  // two shards, so the POST and the GET reach the session from the other one.
  TlsClient handshake;
  ASSERT_FALSE(handshake.Connect(port()));
  auto open = handshake.Request(http::verb::get, "/engine.io/?EIO=4&transport=polling");
  ASSERT_EQ(open.result_int(), 200) << open.body();
  std::string sid = SidOf(open.body());
  ASSERT_FALSE(sid.empty()) << open.body();
  EXPECT_EQ(Addresses(), std::vector<std::string>{"127.0.0.1"});

  for (int i = 0; i < 3; ++i) {
    std::string text = "hello " + std::to_string(i);
    TlsClient post;
    ASSERT_FALSE(post.Connect(port()));
    auto posted =
        post.Request(http::verb::post, "/engine.io/?EIO=4&transport=polling&sid=" + sid,
                     "4" + text);
    EXPECT_EQ(posted.result_int(), 200);
    EXPECT_EQ(posted.body(), "ok");
    TlsClient get;
    ASSERT_FALSE(get.Connect(port()));
    auto echoed = get.Request(http::verb::get, "/engine.io/?EIO=4&transport=polling&sid=" + sid);
    EXPECT_EQ(echoed.result_int(), 200);
    EXPECT_EQ(echoed.body(), "4" + text);
  }
}

TEST_F(TlsListenerTest, KeepAliveRequestsOnOneConnection) {
  TlsClient client;
  ASSERT_FALSE(client.Connect(port()));
  std::string sid =
      SidOf(client.Request(http::verb::get, "/engine.io/?EIO=4&transport=polling").body());
  ASSERT_FALSE(sid.empty());
  std::string url = "/engine.io/?EIO=4&transport=polling&sid=" + sid;
  EXPECT_EQ(client.Request(http::verb::post, url, "4one").body(), "ok");
  EXPECT_EQ(client.Request(http::verb::get, url).body(), "4one");
  // A large body crosses several TLS records both ways.
  std::string big(100 * 1024, 'x');
  EXPECT_EQ(client.Request(http::verb::post, url, "4" + big).body(), "ok");
  EXPECT_EQ(client.Request(http::verb::get, url).body(), "4" + big);
  // The server closes the session: the GET carries the close packet.
  EXPECT_EQ(client.Request(http::verb::post, url, "1").body(), "ok");
}

TEST_F(TlsListenerTest, WebSocketOverWss) {
  WssClient ws;
  ASSERT_FALSE(ws.Connect(port(), "/engine.io/?EIO=4&transport=websocket"));
  std::string open = ws.Read();
  ASSERT_FALSE(SidOf(open).empty()) << open;
  ws.Send("4over wss");
  EXPECT_EQ(ws.Read(), "4over wss");
  std::string big(70 * 1024, 'y');
  ws.Send("4" + big);
  EXPECT_EQ(ws.Read(), "4" + big);
  EXPECT_EQ(Addresses(), std::vector<std::string>{"127.0.0.1"});
  ws.Close();
}

TEST_F(TlsListenerTest, UpgradeFromPollingToWss) {
  TlsClient polling;
  ASSERT_FALSE(polling.Connect(port()));
  std::string sid =
      SidOf(polling.Request(http::verb::get, "/engine.io/?EIO=4&transport=polling").body());
  ASSERT_FALSE(sid.empty());
  // The next connection is accepted on the other shard: the upgrade request
  // moves to the session's shard before the WebSocket handshake.
  WssClient ws;
  ASSERT_FALSE(ws.Connect(port(), "/engine.io/?EIO=4&transport=websocket&sid=" + sid));
  ws.Send("2probe");
  ASSERT_EQ(ws.Read(), "3probe");
  ws.Send("5");
  ws.Send("4upgraded");
  EXPECT_EQ(ws.Read(), "4upgraded");
  ws.Close();
}

TEST_F(TlsListenerTest, PlaintextHttpIsClosedWithoutAResponse) {
  for (int i = 0; i < 2; ++i) {
    net::io_context ioc;
    tcp::socket socket(ioc);
    socket.connect({net::ip::make_address("127.0.0.1"), port()});
    BoundIo(socket);
    std::string request = "GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n";
    net::write(socket, net::buffer(request));
    std::string received(256, '\0');
    beast::error_code ec;
    size_t n = net::read(socket, net::buffer(received), ec);
    received.resize(n);
    EXPECT_TRUE(ec == net::error::eof || ec == net::error::connection_reset) << ec.message();
    // At most a TLS alert, never an HTTP answer.
    EXPECT_EQ(received.find("HTTP/"), std::string::npos) << received;
  }
  EXPECT_TRUE(WaitFor([&] { return http_->limit_counters().tls_handshake_failed == 2; }))
      << http_->limit_counters().tls_handshake_failed;
  EXPECT_EQ(engine_->SessionCount(), 0u);
}

TEST_F(TlsListenerTest, SilentClientIsClosedAfterTheHeadersTimeout) {
  net::io_context ioc;
  tcp::socket socket(ioc);
  socket.connect({net::ip::make_address("127.0.0.1"), port()});
  BoundIo(socket);
  auto start = std::chrono::steady_clock::now();
  char byte;
  beast::error_code ec;
  size_t n = socket.read_some(net::buffer(&byte, 1), ec);
  EXPECT_EQ(n, 0u);
  EXPECT_TRUE(ec == net::error::eof || ec == net::error::connection_reset) << ec.message();
  // Closed by the server, not by the 5 s bound on our read.
  EXPECT_LT(std::chrono::steady_clock::now() - start, 4s);
  EXPECT_EQ(http_->limit_counters().tls_handshake_timeout, 1u);
  EXPECT_EQ(http_->limit_counters().tls_handshake_failed, 0u);
}

TEST_F(TlsListenerTest, ClientLeavingMidSessionEndsTheSession) {
  {
    WssClient ws;
    ASSERT_FALSE(ws.Connect(port(), "/engine.io/?EIO=4&transport=websocket"));
    ASSERT_FALSE(SidOf(ws.Read()).empty());
    ASSERT_EQ(engine_->SessionCount(), 1u);
  }  // the TCP connection drops without a close frame
  EXPECT_TRUE(WaitFor([&] { return engine_->SessionCount() == 0; }));
}

TEST(LoadServerTls, NamesTheFileThatFails) {
  TempDir dir;
  std::string cert = dir.Write("server.pem", pki().server.CertPem());
  std::string key = dir.Write("server.key", pki().server.KeyPem());
  std::string other_key = dir.Write("other.key", pki().client.KeyPem());
  std::string garbage = dir.Write("garbage.pem", "not a certificate");

  EXPECT_TRUE(LoadServerTls(cert, key).ok());
  auto missing = LoadServerTls(dir.path() + "/absent.pem", key);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(missing.status().message().find("absent.pem"), std::string::npos) << missing.status();
  auto bad = LoadServerTls(garbage, key);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("garbage.pem"), std::string::npos) << bad.status();
  auto mismatch = LoadServerTls(cert, other_key);
  EXPECT_EQ(mismatch.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(mismatch.status().message().find("other.key"), std::string::npos)
      << mismatch.status();
}

}  // namespace
}  // namespace switchboard::edge
