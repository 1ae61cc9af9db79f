// Engine.IO v4 over the wire: handshake, HTTP long-polling, WebSocket,
// heartbeat, close, upgrade, size limits and CORS, checked byte for byte
// against an in-process server (see tests/edge/protocol_fixture.h).
#include "edge/engineio/server.h"

#include <set>
#include <string>
#include <thread>

#include "edge/ids.h"
#include "tests/edge/protocol_fixture.h"

namespace switchboard::protocol_test {
namespace {

namespace http = boost::beast::http;
using namespace std::chrono_literals;
using Json = sio::Json;

// Endpoint with a 60 s heartbeat: no ping lands in a GET a test inspects.
constexpr std::string_view kCalm = "/eio-calm/";

// A polling session on the calm endpoint, upgraded to WebSocket. The echo of
// "4hello" proves the server processed "5" before anything the caller does.
class EngineIoTest : public ProtocolTest {
 protected:
  std::unique_ptr<WsClient> OpenUpgraded(std::string* sid);
};

std::unique_ptr<WsClient> EngineIoTest::OpenUpgraded(std::string* sid) {
  if (OpenPolling(kCalm, sid).empty()) return nullptr;
  auto ws = ConnectWs(WebSocketUrl(kCalm, *sid));
  if (!ws) return nullptr;
  ws->Send("2probe");
  if (ws->Read() != WsMessage::Text("3probe")) return nullptr;
  ws->Send("5");
  ws->Send("4hello");
  if (ws->Read() != WsMessage::Text("4hello")) return nullptr;
  return ws;
}

constexpr char kRs = '\x1e';

std::string ErrorBody(int code, std::string_view message) {
  return "{\"code\":" + std::to_string(code) + ",\"message\":\"" + std::string(message) + "\"}";
}

// Checks an open packet's JSON (without the leading '0'): exactly the five
// v4 fields, with these values. Returns the sid.
std::string CheckOpenPacket(std::string_view json, const Json& upgrades,
                            int64_t max_payload = 1'000'000, int64_t ping_interval = 300,
                            int64_t ping_timeout = 200) {
  Json open = Json::parse(json, nullptr, false);
  EXPECT_TRUE(open.is_object()) << json;
  if (!open.is_object()) return {};
  std::set<std::string> keys;
  for (const auto& [key, value] : open.items()) keys.insert(key);
  EXPECT_EQ(keys,
            (std::set<std::string>{"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}))
      << json;
  EXPECT_TRUE(open["sid"].is_string()) << json;
  if (!open["sid"].is_string()) return {};
  std::string sid = open["sid"].get<std::string>();
  EXPECT_FALSE(sid.empty());
  EXPECT_EQ(open["upgrades"], upgrades) << json;
  EXPECT_EQ(open["pingInterval"], ping_interval) << json;
  EXPECT_EQ(open["pingTimeout"], ping_timeout) << json;
  EXPECT_EQ(open["maxPayload"], max_payload) << json;
  return sid;
}

// Reads the open packet of a WebSocket-only session; returns its sid.
std::string ReadOpenPacket(WsClient& ws, int64_t max_payload = 1'000'000) {
  WsMessage open = ws.Read();
  EXPECT_EQ(open.kind, WsMessage::Kind::kText);
  if (open.kind != WsMessage::Kind::kText || open.data.empty() || open.data[0] != '0') {
    ADD_FAILURE() << "expected an open packet, got " << ::testing::PrintToString(open);
    return {};
  }
  return CheckOpenPacket(std::string_view(open.data).substr(1), Json::array(), max_payload);
}

// --------------------------------------------------------------- handshake --

TEST_F(EngineIoTest, PollingHandshakeOpensSession) {
  HttpResult res = HttpGet("/engine.io/?EIO=4&transport=polling");
  EXPECT_EQ(res.status, 200);
  ASSERT_FALSE(res.body.empty());
  EXPECT_EQ(res.body[0], '0');
  std::string sid = CheckOpenPacket(std::string_view(res.body).substr(1), Json{"websocket"});
  EXPECT_EQ(echo_->SessionCount(), 1u);

  // Each handshake opens a new session with a new id.
  std::string sid2;
  ASSERT_FALSE(OpenPolling("/engine.io/", &sid2).empty());
  EXPECT_NE(sid, sid2);
  EXPECT_EQ(echo_->SessionCount(), 2u);
  // Without a node id (standalone) the sid is the bare local id.
  EXPECT_EQ(sid.find('.'), std::string::npos) << sid;
  EXPECT_EQ(sid.size(), edge::kIdLength);
}

// A cluster edge (Options::node_id) names itself in its sids, and serves its
// own sessions by them; the bare local id is no sid of it.
TEST(EngineIoNodeIdTest, OpenPacketSidNamesTheEdge) {
  edge::Runtime runtime(2);
  eio::Options options;
  options.node_id = "edge-7";
  options.ping_interval = 60s;
  eio::Server server(runtime, options);
  edge::HttpServer listener(runtime, {"127.0.0.1", 0});
  listener.Mount("/engine.io/", server);
  server.OnConnection([](const eio::SessionPtr& session) {
    std::weak_ptr<eio::Session> weak = session;
    session->OnMessage([weak](eio::Packet&& packet) {
      if (auto s = weak.lock()) s->Send(eio::MakeTextFrame(eio::PacketType::kMessage, packet.data));
    });
  });
  ASSERT_TRUE(listener.Listen().ok());
  runtime.Start();
  auto request = [&](http::verb method, const std::string& target, std::string body = {}) {
    HttpConnection connection(listener.port());
    EXPECT_TRUE(connection.Send(method, target, std::move(body)));
    return connection.Receive();
  };
  HttpResult open = request(http::verb::get, "/engine.io/?EIO=4&transport=polling");
  ASSERT_EQ(open.status, 200);
  ASSERT_FALSE(open.body.empty());
  std::string sid = CheckOpenPacket(std::string_view(open.body).substr(1), Json{"websocket"},
                                    1'000'000, 60000, 20000);
  ASSERT_EQ(sid.rfind("edge-7.", 0), 0u) << sid;
  std::string local = sid.substr(7);
  EXPECT_EQ(local.size(), edge::kIdLength);
  EXPECT_EQ(edge::EdgeOfSocketId(sid), "edge-7");
  EXPECT_EQ(server.PublicSid(local), sid);

  EXPECT_EQ(request(http::verb::post, PollingUrl("/engine.io/", sid), "4hi").body, "ok");
  EXPECT_EQ(request(http::verb::get, PollingUrl("/engine.io/", sid)).body, "4hi");
  HttpResult bare = request(http::verb::get, PollingUrl("/engine.io/", local));
  EXPECT_EQ(bare.status, 400);
  EXPECT_EQ(bare.body, ErrorBody(1, "Session ID unknown"));
  // Another edge's sid, with no relay installed (OnForeignPoll unset).
  HttpResult foreign = request(http::verb::get, PollingUrl("/engine.io/", "edge-8." + local));
  EXPECT_EQ(foreign.status, 400);
  EXPECT_EQ(foreign.body, ErrorBody(1, "Session ID unknown"));

  server.CloseAll();
  std::this_thread::sleep_for(100ms);
  runtime.Stop();
  runtime.Join();
}

TEST_F(EngineIoTest, WebSocketHandshakeOpensSessionWithoutUpgrades) {
  auto ws = ConnectWs("/engine.io/?EIO=4&transport=websocket", /*auto_pong=*/false);
  ASSERT_TRUE(ws);
  std::string sid = ReadOpenPacket(*ws);
  EXPECT_FALSE(sid.empty());
  EXPECT_EQ(echo_->SessionCount(), 1u);
}

TEST_F(EngineIoTest, MaxPayloadReflectsMaxHttpBufferSize) {
  std::string sid;
  std::string open = OpenPolling("/small/", &sid);
  ASSERT_FALSE(open.empty());
  CheckOpenPacket(open, Json{"websocket"}, 100, 60000, 60000);
}

TEST_F(EngineIoTest, UnknownTransportIs400WithCode0) {
  for (const char* target :
       {"/engine.io/?EIO=4", "/engine.io/?EIO=4&transport=abc", "/engine.io/?EIO=4&transport="}) {
    HttpResult res = HttpGet(target);
    EXPECT_EQ(res.status, 400) << target;
    EXPECT_EQ(res.body, ErrorBody(0, "Transport unknown")) << target;
    EXPECT_EQ(res.Header("Content-Type"), "application/json") << target;
  }
  // Over WebSocket the upgrade is refused.
  for (const char* target : {"/engine.io/?EIO=4", "/engine.io/?EIO=4&transport=abc"}) {
    WsClient ws;
    EXPECT_EQ(ws.Connect(port(), target), 400) << target;
  }
  EXPECT_EQ(echo_->SessionCount(), 0u);
}

TEST_F(EngineIoTest, UnsupportedProtocolVersionIs400WithCode5) {
  for (const char* target :
       {"/engine.io/?transport=polling", "/engine.io/?EIO=abc&transport=polling",
        "/engine.io/?EIO=3&transport=polling", "/engine.io/?EIO=5&transport=polling"}) {
    HttpResult res = HttpGet(target);
    EXPECT_EQ(res.status, 400) << target;
    EXPECT_EQ(res.body, ErrorBody(5, "Unsupported protocol version")) << target;
  }
  for (const char* target :
       {"/engine.io/?transport=websocket", "/engine.io/?EIO=abc&transport=websocket",
        "/engine.io/?EIO=3&transport=websocket"}) {
    WsClient ws;
    EXPECT_EQ(ws.Connect(port(), target), 400) << target;
  }
  EXPECT_EQ(echo_->SessionCount(), 0u);
}

TEST_F(EngineIoTest, HandshakeWithOtherMethodThanGetIs400WithCode2) {
  for (http::verb method : {http::verb::post, http::verb::put, http::verb::delete_}) {
    HttpResult res = HttpRequest(method, "/engine.io/?EIO=4&transport=polling");
    EXPECT_EQ(res.status, 400) << method;
    EXPECT_EQ(res.body, ErrorBody(2, "Bad handshake method")) << method;
  }
  HttpResult with_body = HttpPost("/engine.io/?EIO=4&transport=polling", "4hello");
  EXPECT_EQ(with_body.status, 400);
  EXPECT_EQ(with_body.body, ErrorBody(2, "Bad handshake method"));
  EXPECT_EQ(echo_->SessionCount(), 0u);
}

TEST_F(EngineIoTest, UnknownSidIs400WithCode1) {
  // A well-formed id of no session, and ids that cannot be ours.
  std::string sid;
  ASSERT_FALSE(OpenPolling("/engine.io/", &sid).empty());
  std::string other = sid;
  other.back() = other.back() == 'A' ? 'B' : 'A';
  for (const std::string& bad : {other, std::string("nope"), std::string("0")}) {
    HttpResult get = HttpGet(PollingUrl("/engine.io/", bad));
    EXPECT_EQ(get.status, 400) << bad;
    EXPECT_EQ(get.body, ErrorBody(1, "Session ID unknown")) << bad;
    HttpResult post = HttpPost(PollingUrl("/engine.io/", bad), "4hello");
    EXPECT_EQ(post.status, 400) << bad;
    EXPECT_EQ(post.body, ErrorBody(1, "Session ID unknown")) << bad;
  }
  // A sid is only valid on the endpoint that issued it.
  HttpResult elsewhere = HttpGet(PollingUrl("/eio-calm/", sid));
  EXPECT_EQ(elsewhere.status, 400);
  EXPECT_EQ(elsewhere.body, ErrorBody(1, "Session ID unknown"));
}

// ------------------------------------------------------------ long-polling --

TEST_F(EngineIoTest, PollingEchoesOneTextPacket) {
  std::string sid;
  ASSERT_FALSE(OpenPolling("/engine.io/", &sid).empty());
  HttpResult post = HttpPost(PollingUrl("/engine.io/", sid), "4hello");
  EXPECT_EQ(post.status, 200);
  EXPECT_EQ(post.body, "ok");
  HttpResult get = HttpGet(PollingUrl("/engine.io/", sid));
  EXPECT_EQ(get.status, 200);
  EXPECT_EQ(get.body, "4hello");
}

TEST_F(EngineIoTest, PollingEchoesSeveralPacketsJoinedByRecordSeparator) {
  std::string sid;
  ASSERT_FALSE(OpenPolling("/engine.io/", &sid).empty());
  const std::string payload = std::string("4test1") + kRs + "4test2" + kRs + "4test3";
  HttpResult post = HttpPost(PollingUrl("/engine.io/", sid), payload);
  EXPECT_EQ(post.status, 200);
  EXPECT_EQ(post.body, "ok");
  HttpResult get = HttpGet(PollingUrl("/engine.io/", sid));
  EXPECT_EQ(get.status, 200);
  EXPECT_EQ(Printable(get.body), Printable(payload));
}

TEST_F(EngineIoTest, PollingEchoesBinaryPacketAsBase64) {
  std::string sid;
  ASSERT_FALSE(OpenPolling("/engine.io/", &sid).empty());
  const std::string payload = std::string("4hello") + kRs + "bAQIDBA==";
  HttpResult post = HttpPost(PollingUrl("/engine.io/", sid), payload);
  EXPECT_EQ(post.status, 200);
  EXPECT_EQ(post.body, "ok");
  HttpResult get = HttpGet(PollingUrl("/engine.io/", sid));
  EXPECT_EQ(get.status, 200);
  EXPECT_EQ(Printable(get.body), Printable(payload));
}

TEST_F(EngineIoTest, PollingEchoesEmptyAndUtf8TextPackets) {
  std::string sid;
  ASSERT_FALSE(OpenPolling("/eio-calm/", &sid).empty());
  const std::string payload = std::string("4") + kRs + "4h\xc3\xa9llo";
  ASSERT_EQ(HttpPost(PollingUrl("/eio-calm/", sid), payload).body, "ok");
  HttpResult get = HttpGet(PollingUrl("/eio-calm/", sid));
  EXPECT_EQ(get.status, 200);
  EXPECT_EQ(Printable(get.body), Printable(payload));
}

TEST_F(EngineIoTest, PollingInvalidPacketClosesSession) {
  std::string sid;
  ASSERT_FALSE(OpenPolling("/engine.io/", &sid).empty());
  HttpResult post = HttpPost(PollingUrl("/engine.io/", sid), "abc");
  EXPECT_EQ(post.status, 400);
  EXPECT_EQ(post.body, ErrorBody(3, "Bad request"));
  HttpResult get = HttpGet(PollingUrl("/engine.io/", sid));
  EXPECT_EQ(get.status, 400);
  EXPECT_EQ(get.body, ErrorBody(1, "Session ID unknown"));
  EXPECT_EQ(echo_->SessionCount(), 0u);
}

TEST_F(EngineIoTest, PollingInvalidBase64ClosesSession) {
  std::string sid;
  ASSERT_FALSE(OpenPolling("/eio-calm/", &sid).empty());
  HttpResult post = HttpPost(PollingUrl("/eio-calm/", sid), "b!!!!");
  EXPECT_EQ(post.status, 400);
  HttpResult get = HttpGet(PollingUrl("/eio-calm/", sid));
  EXPECT_EQ(get.status, 400);
  EXPECT_EQ(get.body, ErrorBody(1, "Session ID unknown"));
}

TEST_F(EngineIoTest, DuplicatePollClosesSession) {
  // Heartbeat-free endpoint: a ping must not answer the first GET early.
  std::string sid;
  ASSERT_FALSE(OpenPolling("/eio-calm/", &sid).empty());
  auto first = StartGet(PollingUrl("/eio-calm/", sid));
  std::this_thread::sleep_for(50ms);
  auto second = StartGet(PollingUrl("/eio-calm/", sid) + "&t=burst");
  HttpResult a = first->Receive();
  HttpResult b = second->Receive();
  // Whichever GET the server saw second is refused; the pending one is
  // answered with a close packet.
  if (a.status != 200) std::swap(a, b);
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.body, "1");
  EXPECT_EQ(b.status, 400);
  EXPECT_EQ(b.body, ErrorBody(3, "Bad request"));

  HttpResult after = HttpGet(PollingUrl("/eio-calm/", sid));
  EXPECT_EQ(after.status, 400);
  EXPECT_EQ(after.body, ErrorBody(1, "Session ID unknown"));
  EXPECT_EQ(calm_echo_->SessionCount(), 0u);
}

// Like engine.io's "data request overlap": a POST while another one's body
// is still arriving gets 400, and the session ends, cutting the first off.
TEST_F(EngineIoTest, OverlappingPostsAre400AndCloseTheSession) {
  std::string sid;
  ASSERT_FALSE(OpenPolling("/eio-calm/", &sid).empty());
  HttpConnection first(port());
  ASSERT_TRUE(first.Send(http::verb::post, PollingUrl("/eio-calm/", sid), "4a",
                         {{"Content-Length", "10"}}));  // 8 bytes never come
  std::this_thread::sleep_for(100ms);                   // its header is read first
  HttpResult second = HttpPost(PollingUrl("/eio-calm/", sid), "4b");
  EXPECT_EQ(second.status, 400);
  EXPECT_EQ(second.body, "data request overlap");
  EXPECT_EQ(first.Receive().status, 0);  // closed without an answer
  HttpResult after = HttpGet(PollingUrl("/eio-calm/", sid));
  EXPECT_EQ(after.status, 400);
  EXPECT_EQ(after.body, ErrorBody(1, "Session ID unknown"));
  EXPECT_EQ(calm_echo_->SessionCount(), 0u);
}

// One POST after the other, each answered before the next, is the norm.
TEST_F(EngineIoTest, SequentialPostsAreAccepted) {
  std::string sid;
  ASSERT_FALSE(OpenPolling("/eio-calm/", &sid).empty());
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(HttpPost(PollingUrl("/eio-calm/", sid), "4m" + std::to_string(i)).body, "ok");
  }
  EXPECT_EQ(HttpGet(PollingUrl("/eio-calm/", sid)).body,
            "4m0\x1e"
            "4m1\x1e"
            "4m2");
}

TEST_F(EngineIoTest, AbortedPollClosesSession) {
  std::string sid;
  ASSERT_FALSE(OpenPolling("/eio-calm/", &sid).empty());
  ASSERT_EQ(calm_echo_->SessionCount(), 1u);
  auto pending = StartGet(PollingUrl("/eio-calm/", sid));
  std::this_thread::sleep_for(50ms);
  pending->Abort();
  // This endpoint has no heartbeat: only the abort can end the session.
  EXPECT_TRUE(WaitUntil([&] { return calm_echo_->SessionCount() == 0; }));
  HttpResult after = HttpGet(PollingUrl("/eio-calm/", sid));
  EXPECT_EQ(after.status, 400);
  EXPECT_EQ(after.body, ErrorBody(1, "Session ID unknown"));
}

TEST_F(EngineIoTest, PendingPollIsAnsweredWhenAMessageArrives) {
  std::string sid;
  ASSERT_FALSE(OpenPolling("/eio-calm/", &sid).empty());
  auto pending = StartGet(PollingUrl("/eio-calm/", sid));
  std::this_thread::sleep_for(50ms);
  HttpResult post = HttpPost(PollingUrl("/eio-calm/", sid), "4wake");
  EXPECT_EQ(post.body, "ok");
  HttpResult get = pending->Receive();
  EXPECT_EQ(get.status, 200);
  EXPECT_EQ(get.body, "4wake");
}

// --------------------------------------------------------------- WebSocket --

TEST_F(EngineIoTest, WebSocketEchoesTextPacket) {
  auto ws = ConnectWs(WebSocketUrl("/engine.io/"));
  ASSERT_TRUE(ws);
  ReadOpenPacket(*ws);
  ws->Send("4hello");
  EXPECT_EQ(ws->Read(), WsMessage::Text("4hello"));
  ws->Send("4");
  EXPECT_EQ(ws->Read(), WsMessage::Text("4"));
}

TEST_F(EngineIoTest, WebSocketEchoesBinaryPacket) {
  auto ws = ConnectWs(WebSocketUrl("/engine.io/"));
  ASSERT_TRUE(ws);
  ReadOpenPacket(*ws);
  ws->SendBinary(std::string("\x01\x02\x03\x04", 4));
  EXPECT_EQ(ws->Read(), WsMessage::Binary(std::string("\x01\x02\x03\x04", 4)));
  // Binary data is raw: no 'b' prefix, no base64, NUL bytes kept.
  ws->SendBinary(std::string("\x00\xff", 2));
  EXPECT_EQ(ws->Read(), WsMessage::Binary(std::string("\x00\xff", 2)));
}

TEST_F(EngineIoTest, WebSocketInvalidPacketClosesConnection) {
  auto ws = ConnectWs(WebSocketUrl("/engine.io/"));
  ASSERT_TRUE(ws);
  ReadOpenPacket(*ws);
  ws->Send("abc");
  EXPECT_EQ(ws->Read(), WsMessage::Closed());
  EXPECT_TRUE(WaitUntil([&] { return echo_->SessionCount() == 0; }));
}

// --------------------------------------------------------------- heartbeat --

TEST_F(EngineIoTest, PollingPingPong) {
  std::string sid;
  ASSERT_FALSE(OpenPolling("/engine.io/", &sid).empty());
  for (int i = 0; i < 3; ++i) {
    HttpResult get = HttpGet(PollingUrl("/engine.io/", sid));
    EXPECT_EQ(get.status, 200) << i;
    EXPECT_EQ(get.body, "2") << i;
    HttpResult post = HttpPost(PollingUrl("/engine.io/", sid), "3");
    EXPECT_EQ(post.status, 200) << i;
    EXPECT_EQ(post.body, "ok") << i;
  }
  EXPECT_EQ(echo_->SessionCount(), 1u);
}

TEST_F(EngineIoTest, PollingPingTimeoutClosesSession) {
  std::string sid;
  ASSERT_FALSE(OpenPolling("/engine.io/", &sid).empty());
  HttpResult ping = HttpGet(PollingUrl("/engine.io/", sid));
  EXPECT_EQ(ping.status, 200);
  EXPECT_EQ(ping.body, "2");
  // No pong: the next GET waits for the timeout and is answered with a close
  // packet (or, if it reaches the server after the deadline, refused).
  HttpResult close = HttpGet(PollingUrl("/engine.io/", sid));
  if (close.status == 200) {
    EXPECT_EQ(close.body, "1");
  } else {
    EXPECT_EQ(close.status, 400);
    EXPECT_EQ(close.body, ErrorBody(1, "Session ID unknown"));
  }
  HttpResult after = HttpGet(PollingUrl("/engine.io/", sid));
  EXPECT_EQ(after.status, 400);
  EXPECT_EQ(after.body, ErrorBody(1, "Session ID unknown"));
  EXPECT_EQ(echo_->SessionCount(), 0u);
}

TEST_F(EngineIoTest, WebSocketPingPong) {
  auto ws = ConnectWs(WebSocketUrl("/engine.io/"), /*auto_pong=*/false);
  ASSERT_TRUE(ws);
  ReadOpenPacket(*ws);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(ws->Read(), WsMessage::Text("2")) << i;
    ws->Send("3");
  }
  // Still open: messages flow.
  ws->Send("4still here");
  EXPECT_EQ(ws->ReadSkippingPings(), WsMessage::Text("4still here"));
}

TEST_F(EngineIoTest, WebSocketPingTimeoutClosesConnection) {
  auto ws = ConnectWs(WebSocketUrl("/engine.io/"), /*auto_pong=*/false);
  ASSERT_TRUE(ws);
  ReadOpenPacket(*ws);
  EXPECT_EQ(ws->Read(), WsMessage::Text("2"));
  EXPECT_EQ(ws->Read(), WsMessage::Closed());
  EXPECT_TRUE(WaitUntil([&] { return echo_->SessionCount() == 0; }));
}

// In v4 only the server pings: engine.io 6 answers a client's ping with
// "invalid heartbeat direction" and closes the session.
TEST_F(EngineIoTest, PollingClientPingClosesSession) {
  std::string sid;
  ASSERT_FALSE(OpenPolling("/eio-calm/", &sid).empty());
  HttpPost(PollingUrl("/eio-calm/", sid), "2");
  EXPECT_TRUE(WaitUntil([&] { return calm_echo_->SessionCount() == 0; }));
  HttpResult after = HttpGet(PollingUrl("/eio-calm/", sid));
  EXPECT_EQ(after.status, 400);
  EXPECT_EQ(after.body, ErrorBody(1, "Session ID unknown"));
}

TEST_F(EngineIoTest, WebSocketClientPingClosesConnection) {
  auto ws = ConnectWs(WebSocketUrl("/eio-calm/"));
  ASSERT_TRUE(ws);
  EXPECT_EQ(ws->Read().data.substr(0, 1), "0");
  ws->Send("2");
  EXPECT_EQ(ws->Read(), WsMessage::Closed());
  EXPECT_TRUE(WaitUntil([&] { return calm_echo_->SessionCount() == 0; }));
}

TEST_F(EngineIoTest, SilentSessionTimesOutWhileOthersOnTheShardKeepTheirHeartbeat) {
  // Sessions share their shard's heartbeat queues: one that stops answering
  // leaves them, the others go on being pinged on time.
  auto live = ConnectWs(WebSocketUrl("/engine.io/"), /*auto_pong=*/false);
  auto silent = ConnectWs(WebSocketUrl("/engine.io/"), /*auto_pong=*/false);
  auto late = ConnectWs(WebSocketUrl("/engine.io/"), /*auto_pong=*/false);
  ASSERT_TRUE(live && silent && late);
  ReadOpenPacket(*live);
  ReadOpenPacket(*silent);
  ReadOpenPacket(*late);
  EXPECT_EQ(late->Read(), WsMessage::Text("2"));
  late->Close();  // gone before its pong is due
  EXPECT_EQ(silent->Read(), WsMessage::Text("2"));
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(live->Read(), WsMessage::Text("2")) << i;
    live->Send("3");
  }
  EXPECT_EQ(silent->Read(), WsMessage::Closed());
  live->Send("4alive");
  EXPECT_EQ(live->ReadSkippingPings(), WsMessage::Text("4alive"));
  EXPECT_TRUE(WaitUntil([&] { return echo_->SessionCount() == 1; }));
}

// ------------------------------------------------------------------- close --

TEST_F(EngineIoTest, PollingClientCloseAnswersPendingPollWithNoop) {
  std::string sid;
  ASSERT_FALSE(OpenPolling("/eio-calm/", &sid).empty());
  auto pending = StartGet(PollingUrl("/eio-calm/", sid));
  HttpResult post = HttpPost(PollingUrl("/eio-calm/", sid), "1");
  EXPECT_EQ(post.status, 200);
  EXPECT_EQ(post.body, "ok");
  HttpResult poll = pending->Receive();
  EXPECT_EQ(poll.status, 200);
  EXPECT_EQ(poll.body, "6");
  HttpResult after = HttpGet(PollingUrl("/eio-calm/", sid));
  EXPECT_EQ(after.status, 400);
  EXPECT_EQ(after.body, ErrorBody(1, "Session ID unknown"));
  EXPECT_EQ(calm_echo_->SessionCount(), 0u);
}

TEST_F(EngineIoTest, PollingPacketsAfterCloseInTheSamePayloadAreIgnored) {
  std::string sid;
  ASSERT_FALSE(OpenPolling("/eio-calm/", &sid).empty());
  HttpResult post = HttpPost(PollingUrl("/eio-calm/", sid), std::string("1") + kRs + "4too late");
  EXPECT_EQ(post.body, "ok");
  HttpResult poll = HttpGet(PollingUrl("/eio-calm/", sid));
  EXPECT_EQ(poll.status, 200);
  EXPECT_EQ(poll.body, "6");
}

TEST_F(EngineIoTest, WebSocketClientCloseClosesConnection) {
  auto ws = ConnectWs(WebSocketUrl("/engine.io/"));
  ASSERT_TRUE(ws);
  ReadOpenPacket(*ws);
  ws->Send("1");
  EXPECT_EQ(ws->Read(), WsMessage::Closed());
  EXPECT_TRUE(WaitUntil([&] { return echo_->SessionCount() == 0; }));
}

// ----------------------------------------------------------------- upgrade --

TEST_F(EngineIoTest, UpgradeReleasesPendingPollWithNoop) {
  std::string sid;
  ASSERT_FALSE(OpenPolling(kCalm, &sid).empty());
  auto pending = StartGet(PollingUrl(kCalm, sid));
  auto ws = ConnectWs(WebSocketUrl(kCalm, sid));
  ASSERT_TRUE(ws);
  ws->Send("2probe");
  EXPECT_EQ(ws->Read(), WsMessage::Text("3probe"));
  HttpResult poll = pending->Receive();
  EXPECT_EQ(poll.status, 200);
  EXPECT_EQ(poll.body, "6");
  ws->Send("5");
  ws->Send("4hello");
  EXPECT_EQ(ws->Read(), WsMessage::Text("4hello"));
  ws->SendBinary(std::string("\x01\x02", 2));
  EXPECT_EQ(ws->Read(), WsMessage::Binary(std::string("\x01\x02", 2)));
  EXPECT_EQ(calm_echo_->SessionCount(), 1u);
}

TEST_F(EngineIoTest, UpgradeAnswersNextPollWithNoop) {
  std::string sid;
  ASSERT_FALSE(OpenPolling(kCalm, &sid).empty());
  auto ws = ConnectWs(WebSocketUrl(kCalm, sid));
  ASSERT_TRUE(ws);
  ws->Send("2probe");
  EXPECT_EQ(ws->Read(), WsMessage::Text("3probe"));
  HttpResult poll = HttpGet(PollingUrl(kCalm, sid));
  EXPECT_EQ(poll.status, 200);
  EXPECT_EQ(poll.body, "6");
  ws->Send("5");
  ws->Send("4hello");
  EXPECT_EQ(ws->Read(), WsMessage::Text("4hello"));
}

TEST_F(EngineIoTest, MessagesPostedBeforeUpgradeAreNotLost) {
  std::string sid;
  ASSERT_FALSE(OpenPolling(kCalm, &sid).empty());
  // Echoed into the polling queue, not fetched before the upgrade starts.
  ASSERT_EQ(HttpPost(PollingUrl(kCalm, sid), "4before").body, "ok");
  auto ws = ConnectWs(WebSocketUrl(kCalm, sid));
  ASSERT_TRUE(ws);
  ws->Send("2probe");
  EXPECT_EQ(ws->Read(), WsMessage::Text("3probe"));
  // The queued echo goes out on the last GET...
  HttpResult poll = HttpGet(PollingUrl(kCalm, sid));
  EXPECT_EQ(poll.status, 200);
  EXPECT_EQ(poll.body, "4before");
  ws->Send("5");
  ws->Send("4after");
  EXPECT_EQ(ws->Read(), WsMessage::Text("4after"));
}

TEST_F(EngineIoTest, PollingRequestsAfterUpgradeAre400) {
  std::string sid;
  auto ws = OpenUpgraded(&sid);
  ASSERT_TRUE(ws);

  HttpResult get = HttpGet(PollingUrl(kCalm, sid));
  EXPECT_EQ(get.status, 400);
  EXPECT_EQ(get.body, ErrorBody(3, "Bad request"));
  HttpResult post = HttpPost(PollingUrl(kCalm, sid), "4ignored");
  EXPECT_EQ(post.status, 400);
  EXPECT_EQ(post.body, ErrorBody(3, "Bad request"));

  // The session itself is unaffected.
  ws->Send("4again");
  EXPECT_EQ(ws->Read(), WsMessage::Text("4again"));
}

TEST_F(EngineIoTest, SecondWebSocketForUpgradedSessionIsClosed) {
  std::string sid;
  auto ws = OpenUpgraded(&sid);
  ASSERT_TRUE(ws);

  auto ws2 = ConnectWs(WebSocketUrl(kCalm, sid));
  ASSERT_TRUE(ws2);
  EXPECT_EQ(ws2->Read(), WsMessage::Closed());

  ws->Send("4still");
  EXPECT_EQ(ws->Read(), WsMessage::Text("4still"));
  EXPECT_EQ(calm_echo_->SessionCount(), 1u);
}

TEST_F(EngineIoTest, WebSocketWithSidOfWebSocketSessionIsClosed) {
  auto ws = ConnectWs(WebSocketUrl(kCalm));
  ASSERT_TRUE(ws);
  WsMessage open = ws->Read();
  ASSERT_EQ(open.kind, WsMessage::Kind::kText);
  std::string sid = CheckOpenPacket(std::string_view(open.data).substr(1), Json::array(), 1'000'000,
                                    60000, 60000);
  auto ws2 = ConnectWs(WebSocketUrl(kCalm, sid));
  ASSERT_TRUE(ws2);
  EXPECT_EQ(ws2->Read(), WsMessage::Closed());
  ws->Send("4ok");
  EXPECT_EQ(ws->Read(), WsMessage::Text("4ok"));
}

// ------------------------------------------------------------------ limits --

TEST_F(EngineIoTest, PollingBodyUpToMaxHttpBufferSizeIsAccepted) {
  std::string sid;
  ASSERT_FALSE(OpenPolling("/small/", &sid).empty());
  const std::string body = "4" + std::string(99, 'x');  // exactly 100 bytes
  HttpResult post = HttpPost(PollingUrl("/small/", sid), body);
  EXPECT_EQ(post.status, 200);
  EXPECT_EQ(post.body, "ok");
  HttpResult get = HttpGet(PollingUrl("/small/", sid));
  EXPECT_EQ(get.status, 200);
  EXPECT_EQ(get.body, body);
}

TEST_F(EngineIoTest, PollingBodyOverMaxHttpBufferSizeIs413) {
  std::string sid;
  ASSERT_FALSE(OpenPolling("/small/", &sid).empty());
  HttpResult post = HttpPost(PollingUrl("/small/", sid), "4" + std::string(100, 'x'));
  EXPECT_EQ(post.status, 413);
  EXPECT_EQ(post.body, "Payload too large");
  // ...and the session is closed.
  HttpResult get = HttpGet(PollingUrl("/small/", sid));
  EXPECT_EQ(get.status, 400);
  EXPECT_EQ(get.body, ErrorBody(1, "Session ID unknown"));
  EXPECT_EQ(small_echo_->SessionCount(), 0u);
}

TEST_F(EngineIoTest, PollingDeclaredLengthOverMaxHttpBufferSizeIs413BeforeTheBody) {
  // Only the header (and one byte) is sent: the length alone is refused.
  std::string sid;
  ASSERT_FALSE(OpenPolling("/small/", &sid).empty());
  HttpResult post = HttpPost(PollingUrl("/small/", sid), "4", {{"Content-Length", "101"}});
  EXPECT_EQ(post.status, 413);
  EXPECT_EQ(post.body, "Payload too large");
  EXPECT_EQ(HttpGet(PollingUrl("/small/", sid)).status, 400);
}

// A declared length past Beast's own default limit (1 MiB) is still a clean
// 413, not a dropped connection.
TEST_F(EngineIoTest, PollingDeclaredLengthOverOneMebibyteIs413) {
  std::string sid;
  ASSERT_FALSE(OpenPolling("/eio-calm/", &sid).empty());
  HttpResult post = HttpPost(PollingUrl("/eio-calm/", sid), "4", {{"Content-Length", "1048577"}});
  EXPECT_EQ(post.status, 413);
  EXPECT_EQ(post.body, "Payload too large");
}

TEST_F(EngineIoTest, PollingChunkedBodyOverMaxHttpBufferSizeIs413) {
  std::string sid;
  ASSERT_FALSE(OpenPolling("/small/", &sid).empty());
  HttpResult post = HttpPost(PollingUrl("/small/", sid), "4" + std::string(100, 'x'),
                             {{"Transfer-Encoding", "chunked"}});
  EXPECT_EQ(post.status, 413);
  EXPECT_EQ(post.body, "Payload too large");
  HttpResult get = HttpGet(PollingUrl("/small/", sid));
  EXPECT_EQ(get.status, 400);
  EXPECT_EQ(get.body, ErrorBody(1, "Session ID unknown"));
  EXPECT_EQ(small_echo_->SessionCount(), 0u);
}

TEST_F(EngineIoTest, PollingChunkedBodyUpToMaxHttpBufferSizeIsAccepted) {
  std::string sid;
  ASSERT_FALSE(OpenPolling("/small/", &sid).empty());
  const std::string body = "4" + std::string(99, 'x');
  HttpResult post = HttpPost(PollingUrl("/small/", sid), body, {{"Transfer-Encoding", "chunked"}});
  EXPECT_EQ(post.status, 200);
  EXPECT_EQ(post.body, "ok");
  EXPECT_EQ(HttpGet(PollingUrl("/small/", sid)).body, body);
}

TEST_F(EngineIoTest, WebSocketMessageOverMaxHttpBufferSizeClosesConnection) {
  auto ws = ConnectWs(WebSocketUrl("/small/"));
  ASSERT_TRUE(ws);
  WsMessage open = ws->Read();
  ASSERT_EQ(open.kind, WsMessage::Kind::kText);
  CheckOpenPacket(std::string_view(open.data).substr(1), Json::array(), 100, 60000, 60000);

  const std::string fits = "4" + std::string(99, 'y');  // 100 bytes
  ws->Send(fits);
  EXPECT_EQ(ws->Read(), WsMessage::Text(fits));
  ws->Send("4" + std::string(100, 'z'));  // 101 bytes
  EXPECT_EQ(ws->Read(), WsMessage::Closed());
  EXPECT_TRUE(WaitUntil([&] { return small_echo_->SessionCount() == 0; }));
}

// -------------------------------------------------------------- HTTP misc --

TEST_F(EngineIoTest, CorsPreflightIsAnswered204) {
  HttpResult res = HttpRequest(http::verb::options, "/engine.io/?EIO=4&transport=polling", {},
                               {{"Origin", "https://example.com"},
                                {"Access-Control-Request-Method", "POST"},
                                {"Access-Control-Request-Headers", "content-type"}});
  EXPECT_EQ(res.status, 204);
  EXPECT_EQ(res.body, "");
  EXPECT_EQ(res.Header("Access-Control-Allow-Origin"), "*");
  EXPECT_EQ(res.Header("Access-Control-Allow-Methods"), "GET,HEAD,PUT,PATCH,POST,DELETE");
  EXPECT_EQ(res.Header("Access-Control-Allow-Headers"), "content-type");
  EXPECT_EQ(echo_->SessionCount(), 0u);
}

TEST_F(EngineIoTest, CorsHeaderOnHandshakeAndErrors) {
  Headers origin = {{"Origin", "https://example.com"}};
  HttpResult handshake = HttpGet("/engine.io/?EIO=4&transport=polling", origin);
  EXPECT_EQ(handshake.status, 200);
  EXPECT_EQ(handshake.Header("Access-Control-Allow-Origin"), "*");
  HttpResult error = HttpGet("/engine.io/?EIO=4&transport=abc", origin);
  EXPECT_EQ(error.status, 400);
  EXPECT_EQ(error.Header("Access-Control-Allow-Origin"), "*");
}

TEST_F(EngineIoTest, UnknownPathIs404) {
  for (const char* target : {"/", "/nope/?EIO=4&transport=polling", "/engine.i/"}) {
    HttpResult res = HttpGet(target);
    EXPECT_EQ(res.status, 404) << target;
    EXPECT_EQ(res.body, "Not found") << target;
  }
  WsClient ws;
  EXPECT_EQ(ws.Connect(port(), "/nope/?EIO=4&transport=websocket"), 404);
  EXPECT_EQ(echo_->SessionCount(), 0u);
}

}  // namespace
}  // namespace switchboard::protocol_test
