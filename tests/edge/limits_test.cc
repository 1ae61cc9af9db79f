// Limits (issue 4): each one breached gives the documented HTTP status or
// Socket.IO packet and is counted; under it nothing changes. A real server
// per test, configured with small limits and ms-scale timeouts, driven by raw
// HTTP / TCP / WebSocket clients. The per-address handshake limiter and the
// configuration keys are unit-tested on their own.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "edge/engineio/rate_limit.h"
#include "edge/http/server.h"
#include "edge/socketio/server.h"
#include "services/config.h"
#include "tests/edge/protocol_fixture.h"

namespace switchboard {
namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;
using namespace std::chrono_literals;
using protocol_test::Headers;
using protocol_test::HttpConnection;
using protocol_test::HttpExchange;
using protocol_test::HttpResult;
using protocol_test::PollingUrl;
using protocol_test::WebSocketUrl;
using protocol_test::WsClient;
using protocol_test::WsMessage;
using sio::Json;
using tcp = net::ip::tcp;

constexpr std::string_view kMount = "/socket.io/";

// ------------------------------------------------------------ raw TCP --

// A plain TCP connection, to send partial requests and see when the server
// closes.
class RawConnection {
 public:
  explicit RawConnection(uint16_t port) : socket_(ioc_) {
    socket_.connect({net::ip::make_address("127.0.0.1"), port});
  }
  void Write(std::string_view data) { net::write(socket_, net::buffer(data)); }

  // Reads what arrives until the peer closes (true) or `timeout` (false).
  bool ReadUntilClosed(std::chrono::milliseconds timeout, std::string* out = nullptr) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd pfd{socket_.native_handle(), POLLIN, 0};
      if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[4096];
      ssize_t n = ::recv(socket_.native_handle(), buf, sizeof buf, 0);
      if (n <= 0) return true;
      if (out != nullptr) out->append(buf, static_cast<size_t>(n));
    }
  }

  // Reads one response with a Content-Length body; "" on timeout or close.
  std::string ReadResponse(std::chrono::milliseconds timeout = 3s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      size_t end = buffer_.find("\r\n\r\n");
      if (end != std::string::npos) {
        size_t length = 0;
        size_t cl = buffer_.find("Content-Length: ");
        if (cl != std::string::npos && cl < end) length = std::stoul(buffer_.substr(cl + 16));
        if (buffer_.size() >= end + 4 + length) {
          std::string response = buffer_.substr(0, end + 4 + length);
          buffer_.erase(0, end + 4 + length);
          return response;
        }
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return {};
      pollfd pfd{socket_.native_handle(), POLLIN, 0};
      if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[4096];
      ssize_t n = ::recv(socket_.native_handle(), buf, sizeof buf, 0);
      if (n <= 0) return {};
      buffer_.append(buf, static_cast<size_t>(n));
    }
  }

 private:
  net::io_context ioc_;
  tcp::socket socket_;
  std::string buffer_;
};

// ------------------------------------------------------------- fixture --

// Counts membership events: what a cluster link turns into journal entries
// (seq numbers) for NATS, every broker and every WatchEvents watcher.
class CountingObserver : public sio::MembershipObserver {
 public:
  void OnConnected(const sio::Socket&) override { events.fetch_add(1); }
  void OnDisconnected(const sio::Socket&, std::string_view) override { events.fetch_add(1); }
  void OnJoined(const sio::Socket&, const std::string&) override { events.fetch_add(1); }
  void OnLeft(const sio::Socket&, const std::string&) override { events.fetch_add(1); }
  std::atomic<uint64_t> events{0};
};

eio::Options CalmEngine() {
  eio::Options options;
  options.ping_interval = 60s;
  options.ping_timeout = 60s;
  return options;
}

class LimitsTest : public ::testing::Test {
 protected:
  struct Setup {
    eio::Options engine = CalmEngine();
    sio::ServerOptions sio;
    edge::HttpOptions http;
    sio::NamespaceLimits nsp_limits;  // of "/"
  };

  void Start(Setup setup) {
    runtime_ = std::make_unique<edge::Runtime>(2);
    setup.http.host = "127.0.0.1";
    setup.http.port = 0;
    http_ = std::make_unique<edge::HttpServer>(*runtime_, setup.http);
    io_ = std::make_unique<sio::Server>(*runtime_, setup.engine, setup.sio);
    sio::Namespace& main = io_->Of("/");
    main.SetLimits(setup.nsp_limits);
    for (sio::Namespace* nsp : {&main, &io_->Of("/a"), &io_->Of("/b"), &io_->Of("/c")}) {
      // "join" ROOM: acks [joined?]; "sync": acks []; "e": acks its arguments.
      nsp->On("join", [](const sio::SocketPtr& socket, std::string_view, Json& args,
                         sio::Ack ack) {
        bool joined = socket->Join(args.at(0).get<std::string>());
        if (ack) ack(Json::array({joined}));
      });
      nsp->On("sync", [](const sio::SocketPtr&, std::string_view, Json&, sio::Ack ack) {
        if (ack) ack(Json::array());
      });
      nsp->On("e", [](const sio::SocketPtr&, std::string_view, Json& args, sio::Ack ack) {
        if (ack) ack(Json::array({args.size()}));
      });
    }
    // "/u": the CONNECT auth's "user" is the user id (set by a middleware).
    sio::Namespace& users = io_->Of("/u");
    users.SetLimits(setup.nsp_limits);
    users.Use([](const sio::SocketPtr& socket, sio::Next next) {
      const Json& auth = socket->auth();
      if (auth.contains("user")) socket->SetUserId(auth["user"].get<std::string>());
      next(std::nullopt);
    });
    // "/auth": every CONNECT is an authentication attempt (counted); only
    // auth {"token":"good"} passes.
    io_->Of("/auth").Use([this](const sio::SocketPtr& socket, sio::Next next) {
      auth_attempts_.fetch_add(1);
      if (socket->auth().value("token", "") == "good") return next(std::nullopt);
      next(sio::ConnectError{"Invalid authentication token", nullptr});
    });
    io_->SetMembershipObserver(&membership_);
    http_->Mount(std::string(kMount), io_->engine());
    ASSERT_TRUE(http_->Listen().ok());
    port_ = http_->port();
    runtime_->Start();
  }

  void TearDown() override {
    if (!runtime_) return;
    io_->engine().CloseAll();
    // Sessions hold their transports (and clients) in cycles until they end.
    WaitUntil([&] { return io_->engine().SessionCount() == 0; });
    runtime_->Stop();
    runtime_->Join();
    io_.reset();
    http_.reset();
    runtime_.reset();
  }

  static bool WaitUntil(const std::function<bool()>& condition,
                        std::chrono::milliseconds timeout = 5s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(5ms);
    }
    return true;
  }

  HttpResult Get(std::string_view target, const Headers& headers = {}) {
    return HttpExchange(port_, http::verb::get, target, {}, headers);
  }
  HttpResult Post(std::string_view target, std::string body, const Headers& headers = {}) {
    return HttpExchange(port_, http::verb::post, target, std::move(body), headers);
  }

  // A polling handshake; its sid, "" with a failure.
  std::string OpenPolling(const Headers& headers = {}) {
    HttpResult res = Get(PollingUrl(kMount), headers);
    EXPECT_EQ(res.status, 200) << res.body;
    if (res.status != 200 || res.body.empty() || res.body[0] != '0') return {};
    return Json::parse(res.body.substr(1)).at("sid").get<std::string>();
  }
  // Client close of a polling session (the GET after it ends the session).
  void ClosePolling(const std::string& sid) {
    EXPECT_EQ(Post(PollingUrl(kMount, sid), "1").body, "ok");
    EXPECT_EQ(Get(PollingUrl(kMount, sid)).body, "6");
  }

  // A WebSocket session that got its open packet.
  std::unique_ptr<WsClient> OpenWs() {
    auto ws = std::make_unique<WsClient>();
    int status = ws->Connect(port_, WebSocketUrl(kMount));
    EXPECT_EQ(status, 101);
    if (status != 101) return nullptr;
    WsMessage open = ws->Read();
    EXPECT_EQ(open.data.substr(0, 1), "0");
    return ws;
  }
  // Sends CONNECT for `nsp` and returns the answer.
  static std::string Connect(WsClient& ws, const std::string& nsp, const std::string& auth = "") {
    std::string packet = "40";
    if (nsp != "/") packet += nsp + ",";
    ws.Send(packet + auth);
    return ws.Read().data;
  }
  static bool IsConnect(const std::string& packet, const std::string& nsp) {
    std::string prefix = nsp == "/" ? "40{" : "40" + nsp + ",{";
    return packet.rfind(prefix, 0) == 0;
  }

  sio::Server::LimitCounters SioCounters() const { return io_->limit_counters(); }
  eio::Server::LimitCounters EioCounters() const { return io_->engine().limit_counters(); }
  edge::HttpServer::LimitCounters HttpCounters() const { return http_->limit_counters(); }

  // Reads until the connection closes; the text messages before that.
  static std::vector<std::string> ReadUntilClosed(WsClient& ws) {
    std::vector<std::string> out;
    for (int i = 0; i < 100000; ++i) {
      WsMessage m = ws.Read();
      if (m.kind != WsMessage::Kind::kText) {
        EXPECT_EQ(m, WsMessage::Closed());
        break;
      }
      out.push_back(std::move(m.data));
    }
    return out;
  }

  CountingObserver membership_;
  std::atomic<uint64_t> auth_attempts_{0};
  std::unique_ptr<edge::Runtime> runtime_;
  std::unique_ptr<edge::HttpServer> http_;
  std::unique_ptr<sio::Server> io_;
  uint16_t port_ = 0;
};

// -------------------------------------------------- the limiter itself --

TEST(KeyedRateLimiterTest, TokenBucketPerKey) {
  eio::KeyedRateLimiter limiter({1, 2}, 100);
  auto t = eio::RateClock::now();
  EXPECT_TRUE(limiter.Allow("a", t));
  EXPECT_TRUE(limiter.Allow("a", t));
  EXPECT_FALSE(limiter.Allow("a", t));
  EXPECT_TRUE(limiter.Allow("b", t));  // another key has its own bucket
  EXPECT_FALSE(limiter.Allow("a", t + 500ms));
  EXPECT_TRUE(limiter.Allow("a", t + 1100ms));  // refilled: 1 per second
  EXPECT_FALSE(limiter.Allow("a", t + 1200ms));
}

TEST(KeyedRateLimiterTest, ZeroRateIsUnlimited) {
  eio::KeyedRateLimiter limiter({0, 1}, 10);
  auto t = eio::RateClock::now();
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(limiter.Allow("a", t));
  EXPECT_EQ(limiter.size(), 0u);
}

TEST(KeyedRateLimiterTest, MemoryStaysBoundedUnderManyAddresses) {
  eio::KeyedRateLimiter limiter({1, 5}, 1000);
  auto t = eio::RateClock::now();
  for (int i = 0; i < 100000; ++i) {
    std::string ip = "10." + std::to_string(i >> 16) + "." + std::to_string((i >> 8) & 255) +
                     "." + std::to_string(i & 255);
    EXPECT_TRUE(limiter.Allow(ip, t + std::chrono::microseconds(i)));  // new: a full bucket
    ASSERT_LE(limiter.size(), 1000u);
  }
  EXPECT_EQ(limiter.size(), 1000u);
  EXPECT_EQ(limiter.evictions(), 99000u);
}

TEST(KeyedRateLimiterTest, IdleAddressesExpire) {
  eio::KeyedRateLimiter limiter({10, 10}, 1000);  // a bucket fills up in 1 s
  auto t = eio::RateClock::now();
  for (int i = 0; i < 500; ++i) limiter.Allow("192.0.2." + std::to_string(i), t);
  EXPECT_EQ(limiter.size(), 500u);
  // Later calls drop what has been idle for a full refill (a few per call).
  for (int i = 0; i < 100; ++i) limiter.Allow("198.51.100.1", t + 2s);
  EXPECT_EQ(limiter.size(), 1u);
  EXPECT_EQ(limiter.evictions(), 0u);
}

TEST(KeyedRateLimiterTest, ClientKeys) {
  EXPECT_EQ(eio::ClientKey("192.0.2.7"), "192.0.2.7");
  EXPECT_EQ(eio::ClientKey("::ffff:192.0.2.7"), "192.0.2.7");
  EXPECT_EQ(eio::ClientKey("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
  EXPECT_EQ(eio::ClientKey("2001:db8:1:2:ffff::1"), "2001:db8:1:2::/64");
  EXPECT_NE(eio::ClientKey("2001:db8:1:3::1"), "2001:db8:1:2::/64");
  EXPECT_EQ(eio::ClientKey("not an address"), "not an address");
}

TEST(TokenBucketTest, RetryAfter) {
  eio::RateOptions rate{2, 1};
  auto t = eio::RateClock::now();
  eio::TokenBucket bucket(rate, t);
  EXPECT_TRUE(bucket.Take(rate, t));
  EXPECT_FALSE(bucket.Take(rate, t + 250ms));
  EXPECT_EQ(bucket.RetryAfterMs(rate), 250);
  EXPECT_TRUE(bucket.Take(rate, t + 500ms));
}

// ------------------------------------------------ Engine.IO handshakes --

TEST_F(LimitsTest, ConnectionsPastMaxConnectionsGet503) {
  Setup setup;
  setup.engine.max_connections = 2;
  Start(setup);
  std::string a = OpenPolling();
  std::string b = OpenPolling();
  ASSERT_FALSE(a.empty());
  ASSERT_FALSE(b.empty());

  HttpResult refused = Get(PollingUrl(kMount));
  EXPECT_EQ(refused.status, 503);
  EXPECT_EQ(refused.Header("Content-Type"), "application/json");
  EXPECT_EQ(refused.body, R"({"code":4,"message":"Server at capacity"})");
  WsClient ws;
  EXPECT_EQ(ws.Connect(port_, WebSocketUrl(kMount)), 503);
  EXPECT_EQ(EioCounters().at_capacity, 2u);
  EXPECT_EQ(io_->engine().SessionCount(), 2u);

  // A slot freed is a slot taken.
  ClosePolling(a);
  ASSERT_TRUE(WaitUntil([&] { return io_->engine().SessionCount() == 1; }));
  auto c = OpenWs();
  ASSERT_TRUE(c);
  EXPECT_TRUE(IsConnect(Connect(*c, "/"), "/"));
  ClosePolling(b);
}

TEST_F(LimitsTest, HandshakesDuringADrainGet503AndOpenSessionsAreClosedOverTheWindow) {
  Setup setup;
  Start(setup);
  std::string a = OpenPolling();
  ASSERT_FALSE(a.empty());
  io_->engine().CloseSpread(std::chrono::milliseconds(200));
  // No new session, over polling or WebSocket (connection closed: the retry goes elsewhere).
  ASSERT_TRUE(WaitUntil([&] { return Get(PollingUrl(kMount)).status == 503; }));
  HttpResult refused = Get(PollingUrl(kMount));
  EXPECT_EQ(refused.status, 503);
  EXPECT_EQ(refused.Header("Connection"), "close");
  EXPECT_EQ(refused.body, R"({"code":4,"message":"Server shutting down"})");
  WsClient ws;
  EXPECT_EQ(ws.Connect(port_, WebSocketUrl(kMount)), 503);
  EXPECT_GE(EioCounters().draining, 3u);
  // The open session is told to go (its next poll carries the close) within the window.
  HttpResult poll = Get(PollingUrl(kMount, a));
  EXPECT_EQ(poll.status, 200);
  EXPECT_EQ(poll.body, "1");
  EXPECT_TRUE(WaitUntil([&] { return io_->engine().SessionCount() == 0; }));
}

TEST_F(LimitsTest, HandshakesPastThePerAddressRateGet429) {
  Setup setup;
  setup.engine.handshake_rate.rate = {0.01, 3};
  Start(setup);
  std::vector<std::string> sids;
  for (int i = 0; i < 3; ++i) sids.push_back(OpenPolling());
  HttpResult refused = Get(PollingUrl(kMount));
  EXPECT_EQ(refused.status, 429);
  EXPECT_EQ(refused.body, R"({"code":4,"message":"Too many requests"})");
  WsClient ws;
  EXPECT_EQ(ws.Connect(port_, WebSocketUrl(kMount)), 429);
  EXPECT_EQ(EioCounters().handshake_rate, 2u);
  EXPECT_EQ(io_->engine().TrackedAddresses(), 1u);
  // Requests of open sessions are not handshakes: unaffected.
  for (const auto& sid : sids) ClosePolling(sid);
}

// --------------------------------------------------------------- CORS --

TEST_F(LimitsTest, OriginsOutsideTheAllowListGet403) {
  Setup setup;
  setup.engine.cors.origins = {"https://good.example"};
  Start(setup);
  const Headers good = {{"Origin", "https://good.example"}};
  const Headers bad = {{"Origin", "https://evil.example"}};
  const std::string forbidden = R"({"code":4,"message":"Forbidden"})";

  // Handshake.
  HttpResult res = Get(PollingUrl(kMount), bad);
  EXPECT_EQ(res.status, 403);
  EXPECT_EQ(res.body, forbidden);
  EXPECT_EQ(res.Header("Access-Control-Allow-Origin"), "");
  std::string sid = OpenPolling(good);
  ASSERT_FALSE(sid.empty());
  std::string anonymous = OpenPolling();  // no Origin: not a browser, allowed
  ASSERT_FALSE(anonymous.empty());

  // Poll and post of an open session.
  res = Get(PollingUrl(kMount, sid), bad);
  EXPECT_EQ(res.status, 403);
  EXPECT_EQ(res.body, forbidden);
  res = Post(PollingUrl(kMount, sid), "40", bad);
  EXPECT_EQ(res.status, 403);
  EXPECT_EQ(res.body, forbidden);
  res = Post(PollingUrl(kMount, sid), "40", good);
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.Header("Access-Control-Allow-Origin"), "https://good.example");
  res = Get(PollingUrl(kMount, sid), good);
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.body.substr(0, 3), "40{");

  // The WebSocket upgrade (a new session, and the upgrade of this one).
  auto upgrade = [&](const std::string& target, const std::string& origin) {
    HttpConnection connection(port_);
    Headers headers = {{"Connection", "Upgrade"},
                       {"Upgrade", "websocket"},
                       {"Sec-WebSocket-Version", "13"},
                       {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                       {"Origin", origin}};
    EXPECT_TRUE(connection.Send(http::verb::get, target, {}, headers));
    return connection.Receive();
  };
  res = upgrade(WebSocketUrl(kMount), "https://evil.example");
  EXPECT_EQ(res.status, 403);
  EXPECT_EQ(res.body, forbidden);
  res = upgrade(WebSocketUrl(kMount, sid), "https://evil.example");
  EXPECT_EQ(res.status, 403);
  EXPECT_EQ(upgrade(WebSocketUrl(kMount), "https://good.example").status, 101);

  EXPECT_EQ(EioCounters().forbidden_origin, 5u);
  ClosePolling(sid);
  ClosePolling(anonymous);
}

// A page the edge serves itself (the Admin UI) connects from the edge's own origin: allowed
// whatever the allow-list, over either scheme (TLS may end before the listener), when the edge
// serves such a page; refused otherwise.
TEST_F(LimitsTest, SameOriginRequestsAreRefusedByAnAllowListByDefault) {
  Setup setup;
  setup.engine.cors.origins = {"https://good.example"};
  Start(setup);
  const std::string origin = "http://127.0.0.1:" + std::to_string(port_);
  EXPECT_EQ(Get(PollingUrl(kMount), {{"Origin", origin}}).status, 403);
}

TEST_F(LimitsTest, SameOriginRequestsPassAnExplicitAllowListWhenTheEdgeServesTheUi) {
  Setup setup;
  setup.engine.cors.origins = {"https://good.example"};
  setup.engine.cors.allow_same_origin = true;
  Start(setup);
  const std::string host = "127.0.0.1:" + std::to_string(port_);
  for (const std::string& origin : {"http://" + host, "https://" + host}) {
    std::string sid = OpenPolling({{"Origin", origin}});
    ASSERT_FALSE(sid.empty()) << origin;
    HttpResult res = Post(PollingUrl(kMount, sid), "40", {{"Origin", origin}});
    EXPECT_EQ(res.status, 200) << origin;
    EXPECT_EQ(Get(PollingUrl(kMount, sid), {{"Origin", origin}}).body.substr(0, 3), "40{");
    ClosePolling(sid);
  }
  // The Host names the listener as the client reached it (a proxy's name, any case).
  const Headers proxied = {{"Host", "Edge.Example:8443"}, {"Origin", "https://edge.example:8443"}};
  std::string proxied_sid = OpenPolling(proxied);
  ASSERT_FALSE(proxied_sid.empty());
  ClosePolling(proxied_sid);

  // Anything else stays refused: another port, another host, a scheme-less or opaque origin.
  const std::vector<Headers> refused = {
      {{"Origin", "http://127.0.0.1:1"}},
      {{"Host", "edge.example"}, {"Origin", "http://evil.example"}},
      {{"Host", "edge.example"}, {"Origin", "http://edge.example.evil"}},
      {{"Host", "edge.example"}, {"Origin", "edge.example"}},
      {{"Host", "edge.example"}, {"Origin", "ws://edge.example"}},
      {{"Origin", "null"}},
  };
  for (const Headers& headers : refused) {
    EXPECT_EQ(Get(PollingUrl(kMount), headers).status, 403) << headers.back().second;
  }
  EXPECT_EQ(EioCounters().forbidden_origin, refused.size());
}

// -------------------------------------------------- Socket.IO admission --

TEST_F(LimitsTest, NamespacesPerConnection) {
  Setup setup;
  setup.sio.limits.max_namespaces_per_connection = 2;
  Start(setup);
  auto ws = OpenWs();
  ASSERT_TRUE(ws);
  EXPECT_TRUE(IsConnect(Connect(*ws, "/"), "/"));
  EXPECT_TRUE(IsConnect(Connect(*ws, "/a"), "/a"));
  EXPECT_EQ(Connect(*ws, "/b"), R"(44/b,{"message":"Too many namespaces"})");
  EXPECT_EQ(SioCounters().too_many_namespaces, 1u);
  // Leaving one makes room for another.
  ws->Send("41/a,");
  EXPECT_TRUE(IsConnect(Connect(*ws, "/c"), "/c"));
  ws->Send("42/c,1[\"sync\"]");
  EXPECT_EQ(ws->Read().data, "43/c,1[]");
}

TEST_F(LimitsTest, SocketsPastMaxSocketsGetServerAtCapacity) {
  Setup setup;
  setup.sio.limits.max_sockets = 1;
  Start(setup);
  auto a = OpenWs();
  auto b = OpenWs();
  ASSERT_TRUE(a && b);
  EXPECT_TRUE(IsConnect(Connect(*a, "/"), "/"));
  EXPECT_EQ(Connect(*b, "/"), R"(44{"message":"Server at capacity"})");
  EXPECT_EQ(Connect(*a, "/a"), R"(44/a,{"message":"Server at capacity"})");
  EXPECT_EQ(SioCounters().server_at_capacity, 2u);
  EXPECT_EQ(io_->SocketCount(), 1u);
  a->Send("41");
  ASSERT_TRUE(WaitUntil([&] { return io_->SocketCount() == 0; }));
  EXPECT_TRUE(IsConnect(Connect(*b, "/"), "/"));
}

TEST_F(LimitsTest, SocketsPerUser) {
  Setup setup;
  setup.nsp_limits.max_sockets_per_user = 2;
  Start(setup);
  auto u1 = OpenWs();
  auto u2 = OpenWs();
  auto u3 = OpenWs();
  auto other = OpenWs();
  ASSERT_TRUE(u1 && u2 && u3 && other);
  EXPECT_TRUE(IsConnect(Connect(*u1, "/u", R"({"user":"u"})"), "/u"));
  EXPECT_TRUE(IsConnect(Connect(*u2, "/u", R"({"user":"u"})"), "/u"));
  EXPECT_EQ(Connect(*u3, "/u", R"({"user":"u"})"),
            R"(44/u,{"message":"Too many connections for this user"})");
  EXPECT_TRUE(IsConnect(Connect(*other, "/u", R"({"user":"v"})"), "/u"));
  EXPECT_TRUE(IsConnect(Connect(*other, "/a"), "/a"));  // anonymous: not limited
  EXPECT_EQ(SioCounters().too_many_user_sockets, 1u);
  u1.reset();  // its connection ends: the user has a slot again
  ASSERT_TRUE(WaitUntil([&] { return io_->Of("/u").SocketCount() == 2; }));
  EXPECT_TRUE(IsConnect(Connect(*u3, "/u", R"({"user":"u"})"), "/u"));
}

// -------------------------------------------------------------- rooms --

TEST_F(LimitsTest, RoomsPerSocketHardCap) {
  Setup setup;
  setup.sio.limits.max_rooms_per_socket = 3;
  Start(setup);
  auto ws = OpenWs();
  ASSERT_TRUE(ws);
  ASSERT_TRUE(IsConnect(Connect(*ws, "/"), "/"));
  for (int i = 0; i < 3; ++i) {
    ws->Send("42" + std::to_string(i) + R"(["join","r)" + std::to_string(i) + "\"]");
    EXPECT_EQ(ws->Read().data, "43" + std::to_string(i) + "[true]");
  }
  ws->Send(R"(427["join","r9"])");
  EXPECT_EQ(ws->Read().data, "437[false]");
  ws->Send(R"(428["join","r1"])");  // already in it
  EXPECT_EQ(ws->Read().data, "438[true]");
  EXPECT_EQ(SioCounters().room_limit, 1u);
}

// --------------------------------------------------------- event rate --

TEST_F(LimitsTest, EventRateDropsNotifiesAndDisconnectsFlooders) {
  Setup setup;
  setup.nsp_limits.event_rate.rate = {0.01, 5};  // no refill during the test
  setup.nsp_limits.event_rate.flood_drops = 20;
  setup.nsp_limits.event_rate.flood_window = 10s;
  Start(setup);
  auto ws = OpenWs();
  auto calm = OpenWs();
  ASSERT_TRUE(ws && calm);
  ASSERT_TRUE(IsConnect(Connect(*ws, "/"), "/"));
  ASSERT_TRUE(IsConnect(Connect(*calm, "/"), "/"));

  // The burst goes through.
  for (int i = 1; i <= 5; ++i) {
    ws->Send("42" + std::to_string(i) + R"(["sync"])");
    EXPECT_EQ(ws->Read().data, "43" + std::to_string(i) + "[]");
  }
  // Then: an error ack, and one notice.
  ws->Send(R"(426["sync"])");
  WsMessage ack = ws->Read();
  ASSERT_EQ(ack.data.substr(0, 3), "436") << ack.data;
  Json error = Json::parse(ack.data.substr(3)).at(0);
  EXPECT_EQ(error["ok"], false);
  EXPECT_EQ(error["error"], "rate-limited");
  EXPECT_GT(error["retryAfterMs"].get<int64_t>(), 0);
  EXPECT_LE(error["retryAfterMs"].get<int64_t>(), 100000);
  WsMessage notice = ws->Read();
  ASSERT_EQ(notice.data.substr(0, 2), "42") << notice.data;
  Json event = Json::parse(notice.data.substr(2));
  EXPECT_EQ(event[0], "rate-limited");
  EXPECT_GT(event[1]["retryAfterMs"].get<int64_t>(), 0);
  ws->Send(R"(427["sync"])");
  EXPECT_EQ(ws->Read().data.substr(0, 3), "437");
  EXPECT_EQ(ws->Read(200ms), WsMessage::Timeout());  // no second notice within a second
  EXPECT_EQ(SioCounters().rate_limited, 2u);

  // Another socket is not affected.
  calm->Send(R"(421["sync"])");
  EXPECT_EQ(calm->Read().data, "431[]");

  // A flood: more than 20 drops in the window disconnects.
  for (int i = 0; i < 30; ++i) ws->Send(R"(42["sync"])");
  bool disconnected = false;
  for (;;) {
    WsMessage m = ws->Read();
    if (m.kind != WsMessage::Kind::kText) {
      EXPECT_EQ(m, WsMessage::Closed());
      break;
    }
    if (m.data == "41") disconnected = true;
  }
  EXPECT_TRUE(disconnected);
  EXPECT_EQ(SioCounters().flood_disconnects, 1u);
  EXPECT_EQ(SioCounters().rate_limited, 2u + 19u);
  calm->Send(R"(422["sync"])");
  EXPECT_EQ(calm->Read().data, "432[]");
}

// ------------------------------------------------------- CONNECT rate --

// 3000 CONNECTs with bad tokens on one WebSocket: the burst is checked, then
// the connection is closed; the rest costs nothing.
TEST_F(LimitsTest, ConnectFloodWithBadTokensIsCutOff) {
  Setup setup;
  setup.sio.limits.connect_rate = {0.01, 10};  // no refill during the test
  Start(setup);
  auto ws = OpenWs();
  auto calm = OpenWs();
  ASSERT_TRUE(ws && calm);
  for (int i = 0; i < 3000; ++i) ws->Send(R"(40/auth,{"token":"bad"})");
  std::vector<std::string> got = ReadUntilClosed(*ws);
  EXPECT_EQ(got.size(), 10u);
  for (const std::string& m : got) {
    EXPECT_EQ(m, R"(44/auth,{"message":"Invalid authentication token"})");
  }
  EXPECT_EQ(auth_attempts_.load(), 10u);
  EXPECT_EQ(SioCounters().connect_rate, 1u);
  EXPECT_TRUE(WaitUntil([&] { return io_->engine().SessionCount() == 1; }));
  // Another connection has its own budget.
  EXPECT_TRUE(IsConnect(Connect(*calm, "/auth", R"({"token":"good"})"), "/auth"));
  EXPECT_EQ(auth_attempts_.load(), 11u);
}

// CONNECT / DISCONNECT pairs: each pair is two membership events for the
// whole cluster; past the budget the connection is closed.
TEST_F(LimitsTest, ConnectDisconnectPairsAreBounded) {
  Setup setup;
  setup.sio.limits.connect_rate = {0.01, 10};
  Start(setup);
  auto ws = OpenWs();
  ASSERT_TRUE(ws);
  for (int i = 0; i < 3000; ++i) {
    ws->Send("40");
    ws->Send("41");
  }
  std::vector<std::string> got = ReadUntilClosed(*ws);
  // Ten CONNECT answers (the tenth socket has left before the eleventh
  // CONNECT closes the connection).
  ASSERT_EQ(got.size(), 10u);
  for (const std::string& m : got) EXPECT_TRUE(IsConnect(m, "/")) << m;
  EXPECT_TRUE(WaitUntil([&] { return io_->SocketCount() == 0; }));
  EXPECT_EQ(membership_.events.load(), 20u);  // 10 connects, 10 disconnects
  EXPECT_EQ(SioCounters().connect_rate, 1u);
}

TEST_F(LimitsTest, ConnectsUnderTheRateAreUnaffected) {
  Setup setup;
  setup.sio.limits.connect_rate = {0.01, 10};
  Start(setup);
  auto ws = OpenWs();
  ASSERT_TRUE(ws);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(IsConnect(Connect(*ws, "/"), "/")) << i;
    ws->Send("41");
  }
  EXPECT_EQ(Connect(*ws, "/auth", R"({"token":"bad"})"),
            R"(44/auth,{"message":"Invalid authentication token"})");
  EXPECT_TRUE(IsConnect(Connect(*ws, "/auth", R"({"token":"good"})"), "/auth"));
  EXPECT_TRUE(IsConnect(Connect(*ws, "/a"), "/a"));
  ws->Send(R"(42/a,1["sync"])");
  EXPECT_EQ(ws->Read().data, "43/a,1[]");
  EXPECT_EQ(SioCounters().connect_rate, 0u);
}

TEST_F(LimitsTest, EventsUnderTheRateAreUnaffected) {
  Setup setup;
  setup.nsp_limits.event_rate.rate = {1000, 200};
  Start(setup);
  auto ws = OpenWs();
  ASSERT_TRUE(ws);
  ASSERT_TRUE(IsConnect(Connect(*ws, "/"), "/"));
  for (int i = 0; i < 150; ++i) ws->Send("42" + std::to_string(i) + R"(["sync"])");
  for (int i = 0; i < 150; ++i) EXPECT_EQ(ws->Read().data, "43" + std::to_string(i) + "[]");
  EXPECT_EQ(SioCounters().rate_limited, 0u);
}

// ------------------------------------------------------------ packets --

class PacketLimitsTest : public LimitsTest {
 protected:
  void SetUp() override {
    Setup setup;
    setup.sio.decoder.max_attachments = 2;
    setup.sio.decoder.max_attachment_bytes = 16;
    setup.sio.decoder.max_json_depth = 4;
    Start(setup);
    ws_ = OpenWs();
    ASSERT_TRUE(ws_);
    ASSERT_TRUE(IsConnect(Connect(*ws_, "/"), "/"));
  }
  void TearDown() override {
    ws_.reset();
    LimitsTest::TearDown();
  }
  // The connection is closed (after anything still queued).
  void ExpectClosed() {
    for (;;) {
      WsMessage m = ws_->Read();
      if (m.kind == WsMessage::Kind::kText) continue;
      EXPECT_EQ(m, WsMessage::Closed());
      return;
    }
  }
  std::unique_ptr<WsClient> ws_;
};

constexpr const char* kTwoPlaceholders =
    R"(452-1["e",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}])";

TEST_F(PacketLimitsTest, UnderTheLimitsPacketsPass) {
  ws_->Send(kTwoPlaceholders);
  ws_->SendBinary(std::string(8, 'x'));
  ws_->SendBinary(std::string(8, 'y'));
  EXPECT_EQ(ws_->Read().data, "431[2]");
  ws_->Send(R"(422["e",[[1]]])");
  EXPECT_EQ(ws_->Read().data, "432[1]");
  auto c = SioCounters();
  EXPECT_EQ(c.attachments + c.attachment_bytes + c.json_depth, 0u);
}

TEST_F(PacketLimitsTest, TooManyAttachmentsClose) {
  ws_->Send(R"(453-["e",{"_placeholder":true,"num":0}])");
  ExpectClosed();
  EXPECT_EQ(SioCounters().attachments, 1u);
}

TEST_F(PacketLimitsTest, AttachmentsTooLargeClose) {
  ws_->Send(kTwoPlaceholders);
  ws_->SendBinary(std::string(8, 'x'));
  ws_->SendBinary(std::string(9, 'y'));  // 17 bytes in all
  ExpectClosed();
  EXPECT_EQ(SioCounters().attachment_bytes, 1u);
}

TEST_F(PacketLimitsTest, NestingTooDeepCloses) {
  ws_->Send(R"(42["e",[[[[1]]]]])");  // 5 levels
  ExpectClosed();
  EXPECT_EQ(SioCounters().json_depth, 1u);
}

TEST_F(LimitsTest, AttachmentBytesDefaultToMaxHttpBufferSize) {
  Setup setup;
  setup.engine.max_http_buffer_size = 12345;
  Start(setup);
  EXPECT_EQ(io_->options().decoder.max_attachment_bytes, 12345u);
}

// --------------------------------------------------------------- HTTP --

TEST_F(LimitsTest, OversizeHeadersGet431) {
  Setup setup;
  setup.http.max_header_bytes = 1024;
  Start(setup);
  HttpResult res = Get(PollingUrl(kMount), {{"X-Filler", std::string(2000, 'a')}});
  EXPECT_EQ(res.status, 431);
  EXPECT_EQ(HttpCounters().header_too_large, 1u);
  std::string sid = OpenPolling({{"X-Filler", std::string(500, 'a')}});
  ASSERT_FALSE(sid.empty());
  ClosePolling(sid);
}

TEST_F(LimitsTest, OversizePayloadsAreRefused) {
  Setup setup;
  setup.engine.max_http_buffer_size = 1000;
  Start(setup);
  std::string sid = OpenPolling();
  ASSERT_FALSE(sid.empty());
  HttpResult res = Post(PollingUrl(kMount, sid), "4" + std::string(1200, 'x'));
  EXPECT_EQ(res.status, 413);
  EXPECT_EQ(EioCounters().payload_too_large, 1u);
  // (The session ends with it.)
  EXPECT_TRUE(WaitUntil([&] { return io_->engine().SessionCount() == 0; }));

  auto ws = OpenWs();
  ASSERT_TRUE(ws);
  ws->Send("4" + std::string(1200, 'x'));
  EXPECT_EQ(ws->Read(), WsMessage::Closed());
  EXPECT_TRUE(WaitUntil([&] { return EioCounters().payload_too_large == 2; }));
}

TEST_F(LimitsTest, SlowHeadersAreClosed) {
  Setup setup;
  setup.http.headers_timeout = 300ms;
  Start(setup);
  auto start = std::chrono::steady_clock::now();
  RawConnection slow(port_);
  slow.Write("GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n");
  RawConnection silent(port_);  // not even a byte
  EXPECT_TRUE(slow.ReadUntilClosed(5s));
  EXPECT_TRUE(silent.ReadUntilClosed(5s));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 250ms);
  // (Counted as the server closes: the client may see the close first.)
  EXPECT_TRUE(WaitUntil([&] { return HttpCounters().headers_timeout == 2; }));
}

TEST_F(LimitsTest, SlowBodiesAreClosed) {
  Setup setup;
  setup.http.body_timeout = 300ms;
  Start(setup);
  std::string sid = OpenPolling();
  ASSERT_FALSE(sid.empty());
  RawConnection slow(port_);
  slow.Write("POST " + PollingUrl(kMount, sid) +
             " HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n40");
  EXPECT_TRUE(slow.ReadUntilClosed(5s));
  EXPECT_TRUE(WaitUntil([&] { return HttpCounters().body_timeout == 1; }));
}

TEST_F(LimitsTest, IdleKeepAliveConnectionsAreClosedLongPollsAreNot) {
  Setup setup;
  setup.http.idle_timeout = 300ms;
  setup.http.headers_timeout = 300ms;
  Start(setup);
  std::string sid = OpenPolling();
  ASSERT_FALSE(sid.empty());

  // Two requests on one connection within the idle time, then silence.
  RawConnection keep(port_);
  std::string poll = "GET " + PollingUrl(kMount, sid) + " HTTP/1.1\r\nHost: x\r\n\r\n";
  keep.Write("POST " + PollingUrl(kMount, sid) +
             " HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n40");
  EXPECT_NE(keep.ReadResponse().find("\r\n\r\nok"), std::string::npos);
  keep.Write(poll);
  EXPECT_NE(keep.ReadResponse().find("\r\n\r\n40{"), std::string::npos);
  auto idle_start = std::chrono::steady_clock::now();
  EXPECT_TRUE(keep.ReadUntilClosed(5s));
  EXPECT_GE(std::chrono::steady_clock::now() - idle_start, 250ms);
  EXPECT_TRUE(WaitUntil([&] { return HttpCounters().idle_timeout == 1; }));

  // A long-poll GET waits past both timeouts: the wait is the server's.
  RawConnection long_poll(port_);
  long_poll.Write(poll);
  std::string nothing;
  EXPECT_FALSE(long_poll.ReadUntilClosed(1s, &nothing));
  EXPECT_EQ(nothing, "");
  EXPECT_EQ(Post(PollingUrl(kMount, sid), R"(421["sync"])").body, "ok");
  EXPECT_NE(long_poll.ReadResponse().find("\r\n\r\n431[]"), std::string::npos);
  ClosePolling(sid);
}

// ------------------------------------------------------------- config --

TEST(LimitsConfigTest, Defaults) {
  auto config = services::ParseConfig("{}");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->engine.max_connections, 10000u);
  EXPECT_EQ(config->engine.handshake_rate.rate.per_second, 20);
  EXPECT_EQ(config->engine.handshake_rate.rate.burst, 100);
  EXPECT_EQ(config->engine.handshake_rate.max_tracked_addresses, 65536u);
  EXPECT_EQ(config->socket_limits.max_sockets, 0u);
  EXPECT_EQ(config->socket_limits.max_namespaces_per_connection, 10u);
  EXPECT_EQ(config->socket_limits.max_rooms_per_socket, 1000u);
  EXPECT_EQ(config->decoder.max_json_depth, 32u);
  EXPECT_EQ(config->decoder.max_attachments, 10u);
  EXPECT_EQ(config->decoder.max_attachment_bytes, 0u);  // = maxHttpBufferSize
  EXPECT_EQ(config->http.max_header_bytes, 16384u);
  EXPECT_EQ(config->http.headers_timeout, 10s);
  EXPECT_EQ(config->http.body_timeout, 10s);
  EXPECT_EQ(config->http.idle_timeout, 30s);
  EXPECT_EQ(config->http.write_timeout, 30s);
  EXPECT_EQ(config->http.max_pending_connections, 10000u);
  EXPECT_EQ(config->socket_limits.connect_rate.per_second, 5);
  EXPECT_EQ(config->socket_limits.connect_rate.burst, 20);
  const auto& nsp = config->namespaces.at(0).limits;
  EXPECT_EQ(nsp.max_sockets_per_user, 0u);
  EXPECT_EQ(nsp.event_rate.rate.per_second, 50);
  EXPECT_EQ(nsp.event_rate.rate.burst, 100);
  EXPECT_EQ(nsp.event_rate.flood_drops, 1000u);
  EXPECT_EQ(nsp.event_rate.flood_window, 10s);
}

TEST(LimitsConfigTest, EveryKey) {
  auto config = services::ParseConfig(R"({
    "limits": {
      "maxConnections": 5, "maxSockets": 6, "maxNamespacesPerConnection": 3,
      "maxRoomsPerSocket": 7, "maxJsonDepth": 8, "maxAttachments": 2,
      "maxAttachmentBytes": 4096,
      "handshakeRate": {"perSecond": 0.5, "burst": 4, "maxTrackedAddresses": 100},
      "connectRate": {"perSecond": 0, "burst": 3},
      "http": {"maxHeaderBytes": 2048, "headersTimeout": 100, "bodyTimeout": 200,
               "idleTimeout": 300, "writeTimeout": 400, "maxPendingConnections": 9}
    },
    "namespaces": {
      "/chat": {"maxSocketsPerUser": 2,
                "eventRate": {"perSecond": 5, "burst": 10, "floodWindow": 2000}},
      "/quiet": {"eventRate": {"perSecond": 0, "floodDrops": 0}}
    }
  })");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->engine.max_connections, 5u);
  EXPECT_EQ(config->socket_limits.max_sockets, 6u);
  EXPECT_EQ(config->socket_limits.max_namespaces_per_connection, 3u);
  EXPECT_EQ(config->socket_limits.max_rooms_per_socket, 7u);
  EXPECT_EQ(config->decoder.max_json_depth, 8u);
  EXPECT_EQ(config->decoder.max_attachments, 2u);
  EXPECT_EQ(config->decoder.max_attachment_bytes, 4096u);
  EXPECT_EQ(config->engine.handshake_rate.rate.per_second, 0.5);
  EXPECT_EQ(config->engine.handshake_rate.rate.burst, 4);
  EXPECT_EQ(config->engine.handshake_rate.max_tracked_addresses, 100u);
  EXPECT_EQ(config->socket_limits.connect_rate.per_second, 0);
  EXPECT_EQ(config->socket_limits.connect_rate.burst, 3);
  EXPECT_EQ(config->http.max_header_bytes, 2048u);
  EXPECT_EQ(config->http.headers_timeout, 100ms);
  EXPECT_EQ(config->http.body_timeout, 200ms);
  EXPECT_EQ(config->http.idle_timeout, 300ms);
  EXPECT_EQ(config->http.write_timeout, 400ms);
  EXPECT_EQ(config->http.max_pending_connections, 9u);
  const policy::NamespacePolicy* chat = nullptr;
  const policy::NamespacePolicy* quiet = nullptr;
  for (const auto& p : config->namespaces) {
    if (p.name == "/chat") chat = &p;
    if (p.name == "/quiet") quiet = &p;
  }
  ASSERT_TRUE(chat && quiet);
  EXPECT_EQ(chat->limits.max_sockets_per_user, 2u);
  EXPECT_EQ(chat->limits.event_rate.rate.per_second, 5);
  EXPECT_EQ(chat->limits.event_rate.rate.burst, 10);
  EXPECT_EQ(chat->limits.event_rate.flood_drops, 100u);  // 10 bursts
  EXPECT_EQ(chat->limits.event_rate.flood_window, 2s);
  EXPECT_EQ(quiet->limits.event_rate.rate.per_second, 0);
  EXPECT_EQ(quiet->limits.event_rate.flood_drops, 0u);
}

TEST(LimitsConfigTest, Errors) {
  auto error = [](std::string_view text) {
    auto config = services::ParseConfig(text);
    return config.ok() ? std::string("ok") : std::string(config.status().message());
  };
  EXPECT_EQ(error(R"({"limits": {"maxConections": 1}})").substr(0, 35),
            "limits.maxConections: unknown key (");
  EXPECT_EQ(error(R"({"limits": {"http": {"idleTimeout": "1s"}}})"),
            "limits.http.idleTimeout: expected an integer, got string");
  EXPECT_EQ(error(R"({"limits": {"handshakeRate": {"burst": 0}}})"),
            "limits.handshakeRate.burst: must be between 1 and 10000000, got 0");
  EXPECT_EQ(error(R"({"limits": {"connectRate": {"burst": 0}}})"),
            "limits.connectRate.burst: must be between 1 and 10000000, got 0");
  EXPECT_EQ(error(R"({"limits": {"connectRate": {"perSecond": 1, "flood": 2}}})").substr(0, 37),
            "limits.connectRate.flood: unknown key");
  EXPECT_EQ(error(R"({"limits": {"maxJsonDepth": 0}})"),
            "limits.maxJsonDepth: must be between 1 and 256, got 0");
  EXPECT_EQ(error(R"({"namespaces": {"/": {"eventRate": {"perSecond": -1}}}})"),
            "namespaces[\"/\"].eventRate.perSecond: must be between 0 and 1000000, got -1");
  EXPECT_EQ(error(R"({"namespaces": {"/": {"eventRate": 5}}})"),
            "namespaces[\"/\"].eventRate: expected an object {perSecond, burst, ...}, got "
            "integer");
}

}  // namespace
}  // namespace switchboard
