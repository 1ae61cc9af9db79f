// Polling through any edge (cluster/poll_relay.h): two Engine.IO echo edges,
// each with its own runtime, listener and relay, on one in-process bus. A
// client makes its handshake on edge A, then sends its GETs and POSTs to edge
// B with A's sid, over real HTTP: every rule of local polling holds.
#include "cluster/poll_relay.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "bus/inproc_bus.h"
#include "edge/engineio/server.h"
#include "edge/http/server.h"
#include "edge/runtime.h"
#include "tests/edge/protocol_fixture.h"

namespace switchboard {
namespace {

namespace http = boost::beast::http;
using protocol_test::Headers;
using protocol_test::HttpConnection;
using protocol_test::HttpResult;
using namespace std::chrono_literals;

constexpr char kRs = '\x1e';
constexpr char kOrigin[] = "https://app.example";

std::string ErrorBody(int code, std::string_view message) {
  return "{\"code\":" + std::to_string(code) + ",\"message\":\"" + std::string(message) + "\"}";
}

// One edge: an Engine.IO echo server named `id` at /engine.io/, its relay.
struct Edge {
  Edge(bus::Bus& bus, std::string id, std::chrono::milliseconds ping_interval)
      : runtime(2),
        server(runtime, MakeOptions(id, ping_interval)),
        http(runtime, {"127.0.0.1", 0}) {
    http.Mount("/engine.io/", server);
    server.OnConnection([](const eio::SessionPtr& session) {
      std::weak_ptr<eio::Session> weak = session;
      session->OnMessage([weak](eio::Packet&& packet) {
        if (auto s = weak.lock())
          s->Send(eio::MakeTextFrame(eio::PacketType::kMessage, packet.data));
      });
    });
    auto started = cluster::PollRelay::Start(bus, runtime, server, {.edge_id = id});
    EXPECT_TRUE(started.ok()) << started.status();
    if (started.ok()) relay = std::move(*started);
    EXPECT_TRUE(http.Listen().ok());
    runtime.Start();
  }
  ~Edge() { Stop(); }

  static eio::Options MakeOptions(const std::string& id, std::chrono::milliseconds ping_interval) {
    eio::Options options;
    options.node_id = id;
    options.ping_interval = ping_interval;
    options.ping_timeout = 1000ms;
    options.max_http_buffer_size = 100;
    options.cors.origins = {kOrigin};
    options.cors.credentials = true;
    return options;
  }

  // Stops serving: its sessions end with the runtime, and the relay stops
  // answering for them (an edge that died).
  void Stop() {
    if (stopped) return;
    stopped = true;
    server.CloseAll();
    std::this_thread::sleep_for(100ms);
    runtime.Stop();
    runtime.Join();
    relay.reset();
  }

  uint16_t port() const { return http.port(); }

  edge::Runtime runtime;
  eio::Server server;
  edge::HttpServer http;
  std::unique_ptr<cluster::PollRelay> relay;
  bool stopped = false;
};

class PollRelayTest : public ::testing::Test {
 protected:
  // A calm heartbeat by default: no ping lands in a GET a test inspects.
  void StartEdges(std::chrono::milliseconds ping_interval = 60s) {
    a_ = std::make_unique<Edge>(bus_, "edge-a", ping_interval);
    b_ = std::make_unique<Edge>(bus_, "edge-b", ping_interval);
  }
  void TearDown() override {
    b_.reset();
    a_.reset();
  }

  static std::string Url(std::string_view sid) {
    return "/engine.io/?EIO=4&transport=polling&sid=" + std::string(sid);
  }
  static HttpResult Request(uint16_t port, http::verb method, std::string_view target,
                            std::string body = {}, const Headers& headers = {}) {
    HttpConnection connection(port);
    if (!connection.Send(method, target, std::move(body), headers)) return {};
    return connection.Receive();
  }
  static HttpResult Get(const Edge& edge, std::string_view sid, const Headers& headers = {}) {
    return Request(edge.port(), http::verb::get, Url(sid), {}, headers);
  }
  static HttpResult Post(const Edge& edge, std::string_view sid, std::string body,
                         const Headers& headers = {}) {
    return Request(edge.port(), http::verb::post, Url(sid), std::move(body), headers);
  }
  // A GET left pending.
  static std::unique_ptr<HttpConnection> StartGet(const Edge& edge, std::string_view sid) {
    auto connection = std::make_unique<HttpConnection>(edge.port());
    EXPECT_TRUE(connection->Send(http::verb::get, Url(sid)));
    return connection;
  }
  // A polling handshake on `edge`; returns the sid of its open packet.
  static std::string Open(const Edge& edge) {
    HttpResult res = Request(edge.port(), http::verb::get, "/engine.io/?EIO=4&transport=polling");
    EXPECT_EQ(res.status, 200) << res.body;
    if (res.body.empty() || res.body[0] != '0') return {};
    return sio::Json::parse(res.body.substr(1)).at("sid").get<std::string>();
  }
  static bool WaitUntil(const std::function<bool()>& condition) {
    for (int i = 0; i < 300; ++i) {
      if (condition()) return true;
      std::this_thread::sleep_for(10ms);
    }
    return condition();
  }

  bus::InProcessBus bus_;
  std::unique_ptr<Edge> a_;
  std::unique_ptr<Edge> b_;
};

TEST_F(PollRelayTest, SidNamesTheEdgeThatMadeTheHandshake) {
  StartEdges();
  std::string sid = Open(*a_);
  ASSERT_EQ(edge::EdgeOfSocketId(sid), "edge-a") << sid;
  EXPECT_EQ(sid.size(), std::string("edge-a.").size() + edge::kIdLength);
  EXPECT_EQ(edge::EdgeOfSocketId(Open(*b_)), "edge-b");
}

TEST_F(PollRelayTest, MessagesThroughAnotherEdgeKeepTheirOrder) {
  StartEdges();
  std::string sid = Open(*a_);
  // POSTs alternate between the owner and the other edge.
  EXPECT_EQ(Post(*b_, sid, "4one").body, "ok");
  EXPECT_EQ(Post(*a_, sid, "4two").body, "ok");
  EXPECT_EQ(Post(*b_, sid, std::string("4three") + kRs + "4four").body, "ok");
  HttpResult get = Get(*b_, sid);
  EXPECT_EQ(get.status, 200);
  EXPECT_EQ(get.body, std::string("4one") + kRs + "4two" + kRs + "4three" + kRs + "4four");
  // A GET held on the owner for the other edge is answered when data comes.
  auto held = StartGet(*b_, sid);
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(Post(*a_, sid, "4late").body, "ok");
  EXPECT_EQ(held->Receive().body, "4late");
  EXPECT_EQ(a_->relay->served(), 4u);
  EXPECT_EQ(b_->relay->sent(), 4u);
  EXPECT_EQ(a_->server.SessionCount(), 1u);
  EXPECT_EQ(b_->server.SessionCount(), 0u);
}

TEST_F(PollRelayTest, HeartbeatsCrossEdges) {
  StartEdges(/*ping_interval=*/200ms);
  std::string sid = Open(*a_);
  // Three pings, each fetched and answered through the other edge: the
  // session outlives several ping intervals + timeouts' worth of pings.
  for (int i = 0; i < 3; ++i) {
    HttpResult ping = Get(*b_, sid);
    ASSERT_EQ(ping.status, 200) << ping.body;
    ASSERT_EQ(ping.body, "2");
    ASSERT_EQ(Post(*b_, sid, "3").body, "ok");
  }
  EXPECT_EQ(Post(*b_, sid, "4still").body, "ok");
  EXPECT_EQ(Get(*b_, sid).body, "4still");
  EXPECT_EQ(a_->server.SessionCount(), 1u);
}

TEST_F(PollRelayTest, ASecondConcurrentGetThroughAnotherEdgeEndsTheSession) {
  StartEdges();
  std::string sid = Open(*a_);
  auto first = StartGet(*b_, sid);
  ASSERT_TRUE(WaitUntil([&] { return a_->relay->served() == 1; }));
  std::this_thread::sleep_for(50ms);
  HttpResult second = Get(*b_, sid);
  EXPECT_EQ(second.status, 400);
  EXPECT_EQ(second.body, ErrorBody(3, "Bad request"));
  // The pending one is answered with a close packet, as locally.
  HttpResult pending = first->Receive();
  EXPECT_EQ(pending.status, 200);
  EXPECT_EQ(pending.body, "1");
  HttpResult after = Get(*b_, sid);
  EXPECT_EQ(after.status, 400);
  EXPECT_EQ(after.body, ErrorBody(1, "Session ID unknown"));
  EXPECT_TRUE(WaitUntil([&] { return a_->server.SessionCount() == 0; }));
}

TEST_F(PollRelayTest, APostOverMaxHttpBufferSizeThroughAnotherEdgeIs413AndEndsTheSession) {
  StartEdges();
  std::string sid = Open(*a_);
  HttpResult post = Post(*b_, sid, "4" + std::string(200, 'x'));
  EXPECT_EQ(post.status, 413);
  EXPECT_EQ(post.body, "Payload too large");
  EXPECT_EQ(a_->server.limit_counters().payload_too_large, 1u);
  HttpResult after = Get(*a_, sid);
  EXPECT_EQ(after.status, 400);
  EXPECT_EQ(after.body, ErrorBody(1, "Session ID unknown"));
}

TEST_F(PollRelayTest, ForwardedAnswersCarryCorsHeaders) {
  StartEdges();
  std::string sid = Open(*a_);
  Headers origin = {{"Origin", kOrigin}};
  HttpResult post = Post(*b_, sid, "4hi", origin);
  EXPECT_EQ(post.body, "ok");
  HttpResult get = Get(*b_, sid, origin);
  EXPECT_EQ(get.body, "4hi");
  for (const HttpResult* res : {&post, &get}) {
    EXPECT_EQ(res->Header("Access-Control-Allow-Origin"), kOrigin);
    EXPECT_EQ(res->Header("Access-Control-Allow-Credentials"), "true");
  }
  EXPECT_EQ(get.Header("Content-Type"), "text/plain; charset=UTF-8");
  // An origin not allowed is refused by the receiving edge, before any relay.
  HttpResult forbidden = Get(*b_, sid, {{"Origin", "https://evil.example"}});
  EXPECT_EQ(forbidden.status, 403);
  EXPECT_EQ(b_->relay->sent(), 2u);
}

TEST_F(PollRelayTest, AnAbortedGetThroughAnotherEdgeClosesTheSession) {
  StartEdges();
  std::string sid = Open(*a_);
  auto held = StartGet(*b_, sid);
  ASSERT_TRUE(WaitUntil([&] { return a_->relay->served() == 1; }));
  std::this_thread::sleep_for(50ms);
  held->Abort();
  // As a local long poll whose client went away: "transport close".
  EXPECT_TRUE(WaitUntil([&] { return a_->server.SessionCount() == 0; }));
}

TEST_F(PollRelayTest, AGoneOwnerIsSessionIdUnknown) {
  StartEdges();
  std::string sid = Open(*a_);
  ASSERT_EQ(Post(*b_, sid, "4x").body, "ok");
  a_->Stop();
  for (http::verb method : {http::verb::get, http::verb::post}) {
    HttpResult res = Request(b_->port(), method, Url(sid), "4y");
    EXPECT_EQ(res.status, 400);
    EXPECT_EQ(res.body, ErrorBody(1, "Session ID unknown"));
  }
}

TEST_F(PollRelayTest, UnknownSidsAreSessionIdUnknown) {
  StartEdges();
  std::string sid = Open(*a_);
  std::string local(sid.substr(sid.find('.') + 1));
  for (const std::string& bad :
       {std::string("nonsense"), local, "edge-zz." + local, "edge-a." + std::string(20, 'A'),
        std::string("edge-a.x.y"), std::string(".") + local}) {
    for (const Edge* edge : {a_.get(), b_.get()}) {
      HttpResult res = Get(*edge, bad);
      EXPECT_EQ(res.status, 400) << bad;
      EXPECT_EQ(res.body, ErrorBody(1, "Session ID unknown")) << bad;
    }
  }
  EXPECT_EQ(a_->server.SessionCount(), 1u);
}

}  // namespace
}  // namespace switchboard
