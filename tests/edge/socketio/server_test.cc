// Socket.IO v5 over the wire: namespaces, CONNECT / CONNECT_ERROR /
// DISCONNECT, events, acks in both directions, binary attachments, parser
// errors, middleware, rooms and broadcast, checked byte for byte against an
// in-process server (see tests/edge/protocol_fixture.h for its handlers).
#include <set>
#include <string>
#include <vector>

#include "edge/socketio/server.h"
#include "tests/edge/protocol_fixture.h"

namespace switchboard::protocol_test {
namespace {

using namespace std::chrono_literals;
using Json = sio::Json;

constexpr char kRs = '\x1e';

class SocketIoTest : public ProtocolTest {
 protected:
  // A WebSocket to the Socket.IO endpoint, past the Engine.IO open packet.
  std::unique_ptr<WsClient> OpenEngine(std::string_view mount = "/socket.io/",
                                       std::string* engine_sid = nullptr) {
    auto ws = ConnectWs(WebSocketUrl(mount));
    if (!ws) return nullptr;
    WsMessage open = ws->Read();
    if (open.kind != WsMessage::Kind::kText || open.data.empty() || open.data[0] != '0') {
      ADD_FAILURE() << "expected an open packet, got " << ::testing::PrintToString(open);
      return nullptr;
    }
    if (engine_sid != nullptr) {
      *engine_sid = Json::parse(open.data.substr(1)).at("sid").get<std::string>();
    }
    return ws;
  }

  // Sends CONNECT for `nsp` ("/" or "/custom"...) with `auth` (JSON text or
  // "") and expects the CONNECT reply and the "auth" event echoing it.
  // Returns the socket id ("" with a test failure otherwise).
  std::string Join(WsClient& ws, std::string_view nsp = "/", std::string_view auth = "") {
    std::string prefix = nsp == "/" ? "" : std::string(nsp) + ",";
    ws.Send("40" + prefix + std::string(auth));
    std::string sid = ExpectConnectReply(ws.Read(), prefix);
    std::string echoed = auth.empty() ? "{}" : std::string(auth);
    EXPECT_EQ(ws.Read(), WsMessage::Text("42" + prefix + "[\"auth\"," + echoed + "]"));
    return sid;
  }

  // An Engine.IO connection joined to the main namespace.
  std::unique_ptr<WsClient> Connected(std::string_view mount = "/socket.io/") {
    auto ws = OpenEngine(mount);
    if (ws && Join(*ws).empty()) return nullptr;
    return ws;
  }

  // `message` must be exactly 40<prefix>{"sid":"<non-empty id>"}.
  static std::string ExpectConnectReply(const WsMessage& message, std::string_view prefix) {
    std::string head = "40" + std::string(prefix);
    if (message.kind != WsMessage::Kind::kText || !message.data.starts_with(head)) {
      ADD_FAILURE() << "expected a CONNECT reply " << head << "{...}, got "
                    << ::testing::PrintToString(message);
      return {};
    }
    Json body = Json::parse(message.data.substr(head.size()), nullptr, false);
    if (!body.is_object() || body.size() != 1 || !body.contains("sid") ||
        !body["sid"].is_string() || body["sid"].get<std::string>().empty()) {
      ADD_FAILURE() << "bad CONNECT reply " << Printable(message.data);
      return {};
    }
    std::string sid = body["sid"].get<std::string>();
    EXPECT_EQ(message.data, head + "{\"sid\":\"" + sid + "\"}");
    return sid;
  }

  // Emits `42<nsp,><id><array>` and returns every frame that arrived before
  // the `43<nsp,><id>[]` ack.
  std::vector<WsMessage> Call(WsClient& ws, std::string_view array, std::string_view nsp = "/") {
    std::string prefix = nsp == "/" ? "" : std::string(nsp) + ",";
    std::string id = std::to_string(next_ack_id_++);
    ws.Send("42" + prefix + id + std::string(array));
    std::vector<WsMessage> before;
    const WsMessage ack = WsMessage::Text("43" + prefix + id + "[]");
    while (true) {
      WsMessage message = ws.Read();
      if (message == ack) return before;
      if (message.kind == WsMessage::Kind::kClosed || message.kind == WsMessage::Kind::kTimeout) {
        ADD_FAILURE() << "no ack for " << array << ": " << ::testing::PrintToString(message);
        return before;
      }
      before.push_back(std::move(message));
    }
  }

  // Barrier: the frames that reach this client before the ack of a "sync"
  // sent now. The server handles a connection's packets in order, and a
  // broadcast is queued to every shard before the handler that made it
  // returns, so anything an earlier, acknowledged request broadcast to this
  // client is in the result.
  std::vector<WsMessage> Drain(WsClient& ws, std::string_view nsp = "/") {
    return Call(ws, "[\"sync\"]", nsp);
  }

  // Splits a polling GET body into packets, answering and dropping pings.
  std::vector<std::string> PollPackets(std::string_view mount, const std::string& sid) {
    HttpResult get = HttpGet(PollingUrl(mount, sid));
    EXPECT_EQ(get.status, 200);
    std::vector<std::string> packets;
    size_t start = 0;
    while (start <= get.body.size()) {
      size_t end = get.body.find(kRs, start);
      if (end == std::string::npos) end = get.body.size();
      packets.push_back(get.body.substr(start, end - start));
      start = end + 1;
    }
    std::erase(packets, "2");
    return packets;
  }

  uint64_t next_ack_id_ = 1000;
};

std::vector<WsMessage> Texts(std::initializer_list<const char*> texts) {
  std::vector<WsMessage> out;
  for (const char* text : texts) out.push_back(WsMessage::Text(text));
  return out;
}

// ----------------------------------------------------------------- connect --

TEST_F(SocketIoTest, ConnectToMainNamespace) {
  std::string engine_sid;
  auto ws = OpenEngine("/socket.io/", &engine_sid);
  ASSERT_TRUE(ws);
  ws->Send("40");
  std::string sid = ExpectConnectReply(ws->Read(), "");
  EXPECT_EQ(ws->Read(), WsMessage::Text("42[\"auth\",{}]"));
  // v5: the socket id is not the Engine.IO session id.
  EXPECT_NE(sid, engine_sid);
  EXPECT_EQ(io_->Of("/").SocketCount(), 1u);
}

TEST_F(SocketIoTest, ConnectToMainNamespaceWithAuthPayload) {
  auto ws = OpenEngine();
  ASSERT_TRUE(ws);
  ws->Send("40{\"token\":\"123\"}");
  ExpectConnectReply(ws->Read(), "");
  EXPECT_EQ(ws->Read(), WsMessage::Text("42[\"auth\",{\"token\":\"123\"}]"));
}

TEST_F(SocketIoTest, ConnectToCustomNamespace) {
  auto ws = OpenEngine();
  ASSERT_TRUE(ws);
  ws->Send("40/custom,");
  ExpectConnectReply(ws->Read(), "/custom,");
  EXPECT_EQ(ws->Read(), WsMessage::Text("42/custom,[\"auth\",{}]"));
  EXPECT_EQ(io_->Of("/custom").SocketCount(), 1u);
  EXPECT_EQ(io_->Of("/").SocketCount(), 0u);
}

TEST_F(SocketIoTest, ConnectToCustomNamespaceWithAuthPayload) {
  auto ws = OpenEngine();
  ASSERT_TRUE(ws);
  ws->Send("40/custom,{\"token\":\"abc\"}");
  ExpectConnectReply(ws->Read(), "/custom,");
  EXPECT_EQ(ws->Read(), WsMessage::Text("42/custom,[\"auth\",{\"token\":\"abc\"}]"));
}

TEST_F(SocketIoTest, OneConnectionJoinsSeveralNamespaces) {
  auto ws = OpenEngine();
  ASSERT_TRUE(ws);
  std::string main_sid = Join(*ws);
  std::string custom_sid = Join(*ws, "/custom", "{\"k\":[1,2]}");
  EXPECT_FALSE(main_sid.empty());
  EXPECT_NE(main_sid, custom_sid);
  // Events are routed by namespace.
  ws->Send("42/custom,[\"message\",\"to custom\"]");
  EXPECT_EQ(ws->Read(), WsMessage::Text("42/custom,[\"message-back\",\"to custom\"]"));
  ws->Send("42[\"message\",\"to main\"]");
  EXPECT_EQ(ws->Read(), WsMessage::Text("42[\"message-back\",\"to main\"]"));
}

TEST_F(SocketIoTest, UnknownNamespaceIsRefused) {
  auto ws = OpenEngine();
  ASSERT_TRUE(ws);
  ws->Send("40/random");
  EXPECT_EQ(ws->Read(), WsMessage::Text("44/random,{\"message\":\"Invalid namespace\"}"));
  // The connection stays usable.
  EXPECT_FALSE(Join(*ws).empty());
}

TEST_F(SocketIoTest, InvalidHandshakeClosesConnection) {
  auto ws = OpenEngine();
  ASSERT_TRUE(ws);
  ws->Send("4abc");
  EXPECT_EQ(ws->Read(), WsMessage::Closed());
  EXPECT_TRUE(WaitUntil([&] { return io_->engine().SessionCount() == 0; }));
}

TEST_F(SocketIoTest, NoConnectWithinConnectTimeoutClosesConnection) {
  // Pings are answered, so only the 1 s connect timeout can end this.
  auto ws = OpenEngine();
  ASSERT_TRUE(ws);
  EXPECT_EQ(ws->Read(), WsMessage::Closed());
  EXPECT_TRUE(WaitUntil([&] { return io_->engine().SessionCount() == 0; }));
}

TEST_F(SocketIoTest, ConnectErrorOnlyDoesNotCountAsConnect) {
  // A refused CONNECT does not stop the connect timeout.
  auto ws = OpenEngine();
  ASSERT_TRUE(ws);
  ws->Send("40/random");
  EXPECT_EQ(ws->Read(), WsMessage::Text("44/random,{\"message\":\"Invalid namespace\"}"));
  EXPECT_EQ(ws->Read(), WsMessage::Closed());
}

TEST_F(SocketIoTest, ConnectTimeoutEndsWithTheFirstNamespaceJoined) {
  // Joined, then left: the connection stays past the 1 s connect timeout
  // (as with the reference server) and can join again.
  auto ws = Connected();
  ASSERT_TRUE(ws);
  ws->Send("41");
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ws->Send("40");
  WsMessage answer = ws->Read();
  ASSERT_EQ(answer.kind, WsMessage::Kind::kText);
  EXPECT_EQ(answer.data.substr(0, 2), "40");
}

// -------------------------------------------------------------- disconnect --

TEST_F(SocketIoTest, DisconnectFromMainNamespaceKeepsEngineOpen) {
  auto ws = Connected();
  ASSERT_TRUE(ws);
  ws->set_auto_pong(false);
  ws->Send("41");
  // Nothing but the next heartbeat: no reply, no close.
  EXPECT_EQ(ws->Read(), WsMessage::Text("2"));
  ws->Send("3");
  EXPECT_TRUE(WaitUntil([&] { return io_->Of("/").SocketCount() == 0; }));
  // Events for the namespace left are dropped; joining again works.
  ws->Send("42[\"message\",\"dropped\"]");
  ws->Send("40");
  ExpectConnectReply(ws->ReadSkippingPings(), "");
  EXPECT_EQ(ws->ReadSkippingPings(), WsMessage::Text("42[\"auth\",{}]"));
  EXPECT_EQ(io_->engine().SessionCount(), 1u);
}

TEST_F(SocketIoTest, ConnectThenDisconnectFromCustomNamespace) {
  auto ws = Connected();
  ASSERT_TRUE(ws);
  Join(*ws, "/custom");
  ws->Send("41/custom,");
  ws->Send("42/custom,[\"message\",\"dropped\"]");
  ws->Send("42[\"message\",\"message to main namespace\"]");
  EXPECT_EQ(ws->Read(), WsMessage::Text("42[\"message-back\",\"message to main namespace\"]"));
  EXPECT_EQ(io_->Of("/custom").SocketCount(), 0u);
}

// ------------------------------------------------------------------ events --

TEST_F(SocketIoTest, EventIsEchoed) {
  auto ws = Connected();
  ASSERT_TRUE(ws);
  ws->Send("42[\"message\",1,\"2\",{\"3\":[true]}]");
  EXPECT_EQ(ws->Read(), WsMessage::Text("42[\"message-back\",1,\"2\",{\"3\":[true]}]"));
  ws->Send("42[\"message\"]");
  EXPECT_EQ(ws->Read(), WsMessage::Text("42[\"message-back\"]"));
}

TEST_F(SocketIoTest, EventOnCustomNamespaceIsEchoed) {
  auto ws = OpenEngine();
  ASSERT_TRUE(ws);
  Join(*ws, "/custom");
  ws->Send("42/custom,[\"message\",null,1.5,\"x\"]");
  EXPECT_EQ(ws->Read(), WsMessage::Text("42/custom,[\"message-back\",null,1.5,\"x\"]"));
}

TEST_F(SocketIoTest, JsonKeyOrderIsKept) {
  auto ws = Connected();
  ASSERT_TRUE(ws);
  const char* kArgs = "{\"b\":1,\"a\":2,\"c\":{\"z\":[],\"y\":{\"d\":0,\"c\":1}}}";
  ws->Send(std::string("42[\"message\",") + kArgs + "]");
  EXPECT_EQ(ws->Read(), WsMessage::Text(std::string("42[\"message-back\",") + kArgs + "]"));
}

TEST_F(SocketIoTest, EventWithAck) {
  auto ws = Connected();
  ASSERT_TRUE(ws);
  ws->Send("42456[\"message-with-ack\",1,\"2\",{\"3\":[false]}]");
  EXPECT_EQ(ws->Read(), WsMessage::Text("43456[1,\"2\",{\"3\":[false]}]"));
  ws->Send("420[\"message-with-ack\"]");
  EXPECT_EQ(ws->Read(), WsMessage::Text("430[]"));
}

// The official client's socket.emit(1, "x"): the reference parser takes a
// number for an event name and the server's listeners get it as "1".
TEST_F(SocketIoTest, NumericEventNamesAreEventsNamedByTheirDecimalForm) {
  auto ws = Connected();
  ASSERT_TRUE(ws);
  ws->Send("421[1,\"x\"]");
  EXPECT_EQ(ws->Read(), WsMessage::Text("431[\"1\",[\"x\"]]"));
  ws->Send("422[1.0]");
  EXPECT_EQ(ws->Read(), WsMessage::Text("432[\"1\",[]]"));
  ws->Send("42[2,\"no handler\"]");
  ws->Send("423[\"sync\"]");  // the connection is still up
  EXPECT_EQ(ws->Read(), WsMessage::Text("433[]"));
}

TEST_F(SocketIoTest, EventWithAckOnCustomNamespace) {
  auto ws = OpenEngine();
  ASSERT_TRUE(ws);
  Join(*ws, "/custom");
  ws->Send("42/custom,7[\"message-with-ack\",{\"b\":1,\"a\":2}]");
  EXPECT_EQ(ws->Read(), WsMessage::Text("43/custom,7[{\"b\":1,\"a\":2}]"));
}

TEST_F(SocketIoTest, BinaryEventIsEchoedWithAttachments) {
  auto ws = Connected();
  ASSERT_TRUE(ws);
  ws->Send(
      "452-[\"message\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]");
  ws->SendBinary(std::string("\x01\x02\x03", 3));
  ws->SendBinary(std::string("\x04\x05\x06", 3));
  EXPECT_EQ(ws->Read(),
            WsMessage::Text("452-[\"message-back\",{\"_placeholder\":true,\"num\":0},"
                            "{\"_placeholder\":true,\"num\":1}]"));
  EXPECT_EQ(ws->Read(), WsMessage::Binary(std::string("\x01\x02\x03", 3)));
  EXPECT_EQ(ws->Read(), WsMessage::Binary(std::string("\x04\x05\x06", 3)));
}

TEST_F(SocketIoTest, BinaryEventWithNestedAndReorderedPlaceholders) {
  auto ws = Connected();
  ASSERT_TRUE(ws);
  // Attachments referenced out of order and nested: the echo renumbers them
  // depth-first and sends the bytes in that order.
  ws->Send(
      "452-[\"message\",{\"x\":{\"_placeholder\":true,\"num\":1}},"
      "[{\"_placeholder\":true,\"num\":0}]]");
  ws->SendBinary("first");
  ws->SendBinary("second");
  EXPECT_EQ(ws->Read(), WsMessage::Text("452-[\"message-back\",{\"x\":{\"_placeholder\":true,"
                                        "\"num\":0}},[{\"_placeholder\":true,\"num\":1}]]"));
  EXPECT_EQ(ws->Read(), WsMessage::Binary("second"));
  EXPECT_EQ(ws->Read(), WsMessage::Binary("first"));
}

TEST_F(SocketIoTest, BinaryEventWithAck) {
  auto ws = Connected();
  ASSERT_TRUE(ws);
  ws->Send(
      "452-789[\"message-with-ack\",{\"_placeholder\":true,\"num\":0},"
      "{\"_placeholder\":true,\"num\":1}]");
  ws->SendBinary(std::string("\x01\x02\x03", 3));
  ws->SendBinary(std::string("\x04\x05\x06", 3));
  EXPECT_EQ(ws->Read(), WsMessage::Text("462-789[{\"_placeholder\":true,\"num\":0},"
                                        "{\"_placeholder\":true,\"num\":1}]"));
  EXPECT_EQ(ws->Read(), WsMessage::Binary(std::string("\x01\x02\x03", 3)));
  EXPECT_EQ(ws->Read(), WsMessage::Binary(std::string("\x04\x05\x06", 3)));
}

TEST_F(SocketIoTest, BinaryEventOverPolling) {
  // Heartbeat-free endpoint: the polling client here answers no ping.
  constexpr std::string_view kMount = "/sio-calm/";
  std::string sid;
  ASSERT_FALSE(OpenPolling(kMount, &sid).empty());
  ASSERT_EQ(HttpPost(PollingUrl(kMount, sid), "40").body, "ok");
  std::vector<std::string> connect = PollPackets(kMount, sid);
  ASSERT_EQ(connect.size(), 2u) << Printable(connect.empty() ? "" : connect[0]);
  ExpectConnectReply(WsMessage::Text(connect[0]), "");
  EXPECT_EQ(connect[1], "42[\"auth\",{}]");

  // Attachments travel as base64 'b' packets in the same payload.
  std::string body = std::string(
                         "452-[\"message\",{\"_placeholder\":true,\"num\":0},"
                         "{\"_placeholder\":true,\"num\":1}]") +
                     kRs + "bAQID" + kRs + "bBAUG";
  HttpResult post = HttpPost(PollingUrl(kMount, sid), body);
  EXPECT_EQ(post.status, 200);
  EXPECT_EQ(post.body, "ok");
  std::vector<std::string> echo = PollPackets(kMount, sid);
  EXPECT_EQ(echo, (std::vector<std::string>{
                      "452-[\"message-back\",{\"_placeholder\":true,\"num\":0},"
                      "{\"_placeholder\":true,\"num\":1}]",
                      "bAQID", "bBAUG"}));

  // Plain event with ack over polling too.
  ASSERT_EQ(HttpPost(PollingUrl(kMount, sid), "4212[\"message-with-ack\",\"p\"]").body, "ok");
  EXPECT_EQ(PollPackets(kMount, sid), (std::vector<std::string>{"4312[\"p\"]"}));

  // Client close: the next GET gets a noop and the session is gone.
  ASSERT_EQ(HttpPost(PollingUrl(kMount, sid), "1").body, "ok");
  HttpResult last = HttpGet(PollingUrl(kMount, sid));
  EXPECT_EQ(last.status, 200);
  EXPECT_EQ(last.body, "6");
  EXPECT_EQ(HttpGet(PollingUrl(kMount, sid)).status, 400);
}

// ------------------------------------------------------------ bad packets --

TEST_F(SocketIoTest, MalformedPacketsCloseTheConnection) {
  const std::vector<std::string> kBad = {
      "4abc",                                                 // unknown packet type
      "49",                                                   // unknown packet type
      "42{}",                                                 // payload is not an array
      "42abc[\"message-with-ack\",1,\"2\",{\"3\":[false]}]",  // invalid ack id
      "42[]",                                                 // no event name
      "42[null]",                                             // event name not a string
      "42[{}]",                                               // nor a number
      "42[[\"a\"]]",
      "42[\"message\"",                   // truncated JSON
      "44{\"message\":\"from client\"}",  // CONNECT_ERROR from a client
  };
  for (const std::string& bad : kBad) {
    SCOPED_TRACE(bad);
    auto ws = Connected();
    ASSERT_TRUE(ws);
    ws->Send(bad);
    EXPECT_EQ(ws->Read(), WsMessage::Closed());
  }
  EXPECT_TRUE(WaitUntil([&] { return io_->engine().SessionCount() == 0; }));
}

TEST_F(SocketIoTest, UnexpectedBinaryFrameClosesTheConnection) {
  auto ws = Connected();
  ASSERT_TRUE(ws);
  ws->SendBinary("stray");
  EXPECT_EQ(ws->Read(), WsMessage::Closed());
}

TEST_F(SocketIoTest, TextWhileAttachmentsArePendingClosesTheConnection) {
  auto ws = Connected();
  ASSERT_TRUE(ws);
  ws->Send("451-[\"message\",{\"_placeholder\":true,\"num\":0}]");
  ws->Send("42[\"message\",\"too early\"]");
  EXPECT_EQ(ws->Read(), WsMessage::Closed());
}

// --------------------------------------------------- server -> client acks --

// "42<id>[...]" -> id, or -1.
int64_t AckIdOf(const WsMessage& message, std::string_view expected_rest) {
  if (message.kind != WsMessage::Kind::kText || !message.data.starts_with("42")) return -1;
  size_t end = message.data.find('[');
  if (end == std::string::npos || end == 2) return -1;
  std::string digits = message.data.substr(2, end - 2);
  if (digits.find_first_not_of("0123456789") != std::string::npos) return -1;
  EXPECT_EQ(message.data.substr(end), expected_rest);
  return std::stoll(digits);
}

TEST_F(SocketIoTest, ServerAckIsAnswered) {
  auto ws = Connected();
  ASSERT_TRUE(ws);
  ws->Send("42[\"ask\",5000,\"q\",{\"n\":1}]");
  WsMessage question = ws->Read();
  int64_t id = AckIdOf(question, "[\"question\",\"q\",{\"n\":1}]");
  ASSERT_GE(id, 0) << ::testing::PrintToString(question);
  ws->Send("43" + std::to_string(id) + "[\"yes\",2]");
  EXPECT_EQ(ws->Read(), WsMessage::Text("42[\"answer\",\"yes\",2]"));

  // A second request gets another id.
  ws->Send("42[\"ask\",5000]");
  WsMessage question2 = ws->Read();
  int64_t id2 = AckIdOf(question2, "[\"question\"]");
  ASSERT_GE(id2, 0) << ::testing::PrintToString(question2);
  EXPECT_NE(id2, id);
  ws->Send("43" + std::to_string(id2) + "[]");
  EXPECT_EQ(ws->Read(), WsMessage::Text("42[\"answer\"]"));
}

TEST_F(SocketIoTest, ServerAckWithBinaryAnswer) {
  auto ws = Connected();
  ASSERT_TRUE(ws);
  ws->Send("42[\"ask\",5000]");
  int64_t id = AckIdOf(ws->Read(), "[\"question\"]");
  ASSERT_GE(id, 0);
  ws->Send("461-" + std::to_string(id) + "[{\"_placeholder\":true,\"num\":0}]");
  ws->SendBinary(std::string("\x00\x01", 2));
  EXPECT_EQ(ws->Read(),
            WsMessage::Text("451-[\"answer\",{\"_placeholder\":true,\"num\":0}]"));
  EXPECT_EQ(ws->Read(), WsMessage::Binary(std::string("\x00\x01", 2)));
}

TEST_F(SocketIoTest, ServerAckTimesOut) {
  auto ws = Connected();
  ASSERT_TRUE(ws);
  ws->Send("42[\"ask\",200,\"q\"]");
  int64_t id = AckIdOf(ws->Read(), "[\"question\",\"q\"]");
  ASSERT_GE(id, 0);
  // No answer.
  EXPECT_EQ(ws->Read(), WsMessage::Text("42[\"no-answer\",\"DEADLINE_EXCEEDED\"]"));
  // A late answer is ignored.
  ws->Send("43" + std::to_string(id) + "[\"late\"]");
  EXPECT_EQ(Drain(*ws), std::vector<WsMessage>{});
  // An ack for an id never used too.
  ws->Send("4399999[\"bogus\"]");
  EXPECT_EQ(Drain(*ws), std::vector<WsMessage>{});
}

TEST_F(SocketIoTest, ServerAcksAnsweredOutOfOrder) {
  auto ws = Connected();
  ASSERT_TRUE(ws);
  // Three questions awaiting answers at once; the last is never answered.
  ws->Send("42[\"ask\",5000,\"a\"]");
  int64_t a = AckIdOf(ws->Read(), "[\"question\",\"a\"]");
  ws->Send("42[\"ask\",5000,\"b\"]");
  int64_t b = AckIdOf(ws->Read(), "[\"question\",\"b\"]");
  ws->Send("42[\"ask\",300,\"c\"]");
  int64_t c = AckIdOf(ws->Read(), "[\"question\",\"c\"]");
  ASSERT_TRUE(a >= 0 && b >= 0 && c >= 0);
  // Each answer reaches its own question, whatever the order.
  ws->Send("43" + std::to_string(b) + "[\"to-b\"]");
  EXPECT_EQ(ws->Read(), WsMessage::Text("42[\"answer\",\"to-b\"]"));
  ws->Send("43" + std::to_string(b) + "[\"again\"]");  // answered already: ignored
  ws->Send("43" + std::to_string(a) + "[\"to-a\"]");
  EXPECT_EQ(ws->Read(), WsMessage::Text("42[\"answer\",\"to-a\"]"));
  EXPECT_EQ(ws->Read(), WsMessage::Text("42[\"no-answer\",\"DEADLINE_EXCEEDED\"]"));
  ws->Send("43" + std::to_string(c) + "[\"late\"]");
  EXPECT_EQ(Drain(*ws), std::vector<WsMessage>{});
}

// -------------------------------------------------------------- middleware --

TEST_F(SocketIoTest, MiddlewareRejectsWithData) {
  auto ws = OpenEngine();
  ASSERT_TRUE(ws);
  ws->Send("40/private,{\"token\":\"bad\"}");
  EXPECT_EQ(ws->Read(),
            WsMessage::Text("44/private,{\"message\":\"not authorized\",\"data\":{\"code\":"
                            "\"E_AUTH\"}}"));
  EXPECT_EQ(io_->Of("/private").SocketCount(), 0u);
  // The refused namespace gets nothing; the connection lives on.
  ws->Send("42/private,[\"message\",\"x\"]");
  Join(*ws, "/private", "{\"token\":\"good\"}");
  EXPECT_EQ(io_->Of("/private").SocketCount(), 1u);
}

TEST_F(SocketIoTest, MiddlewareRejectsWithoutData) {
  auto ws = OpenEngine();
  ASSERT_TRUE(ws);
  ws->Send("40/private,{\"token\":\"plain\"}");
  EXPECT_EQ(ws->Read(), WsMessage::Text("44/private,{\"message\":\"go away\"}"));
}

TEST_F(SocketIoTest, MiddlewareMayAdmitAsynchronously) {
  auto ws = OpenEngine();
  ASSERT_TRUE(ws);
  EXPECT_FALSE(Join(*ws, "/private", "{\"token\":\"later\"}").empty());
  EXPECT_EQ(io_->Of("/private").SocketCount(), 1u);
}

// --------------------------------------------------------- rooms/broadcast --

TEST_F(SocketIoTest, RoomsAndBroadcast) {
  // Three connections, spread over both shards by the acceptor.
  auto a = Connected();
  auto b = Connected();
  auto c = Connected();
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(Call(*a, "[\"join\",\"red\"]"), std::vector<WsMessage>{});
  EXPECT_EQ(Call(*b, "[\"join\",\"red\"]"), std::vector<WsMessage>{});
  EXPECT_EQ(Call(*b, "[\"join\",\"blue\"]"), std::vector<WsMessage>{});
  EXPECT_EQ(Call(*c, "[\"join\",\"blue\"]"), std::vector<WsMessage>{});

  // red except blue: only a (the sender is included by To()).
  EXPECT_EQ(Call(*a, "[\"shout\",[\"red\"],[\"blue\"],\"r-b\"]"),
            Texts({"42[\"shouted\",\"r-b\"]"}));
  EXPECT_EQ(Drain(*b), std::vector<WsMessage>{});
  EXPECT_EQ(Drain(*c), std::vector<WsMessage>{});

  // blue, sent by a who is not in it: b and c.
  EXPECT_EQ(Call(*a, "[\"shout\",[\"blue\"],[],\"b\"]"), std::vector<WsMessage>{});
  EXPECT_EQ(Drain(*b), Texts({"42[\"shouted\",\"b\"]"}));
  EXPECT_EQ(Drain(*c), Texts({"42[\"shouted\",\"b\"]"}));

  // red + blue: everyone, b only once.
  EXPECT_EQ(Call(*c, "[\"shout\",[\"red\",\"blue\"],[],\"all\"]"),
            Texts({"42[\"shouted\",\"all\"]"}));
  EXPECT_EQ(Drain(*a), Texts({"42[\"shouted\",\"all\"]"}));
  EXPECT_EQ(Drain(*b), Texts({"42[\"shouted\",\"all\"]"}));

  // A room nobody is in: nobody.
  EXPECT_EQ(Call(*a, "[\"shout\",[\"green\"],[],\"none\"]"), std::vector<WsMessage>{});
  EXPECT_EQ(Drain(*b), std::vector<WsMessage>{});
  EXPECT_EQ(Drain(*c), std::vector<WsMessage>{});

  // socket.broadcast: everyone in the namespace but the sender.
  EXPECT_EQ(Call(*c, "[\"others\",\"hi\"]"), std::vector<WsMessage>{});
  EXPECT_EQ(Drain(*a), Texts({"42[\"from-other\",\"hi\"]"}));
  EXPECT_EQ(Drain(*b), Texts({"42[\"from-other\",\"hi\"]"}));
  EXPECT_EQ(Drain(*c), std::vector<WsMessage>{});

  // A socket id is a room of its own.
  std::string d_sid;
  {
    auto d = OpenEngine();
    ASSERT_TRUE(d);
    d_sid = Join(*d);
    ASSERT_FALSE(d_sid.empty());
    EXPECT_EQ(Call(*a, "[\"shout\",[\"" + d_sid + "\"],[],\"direct\"]"),
              std::vector<WsMessage>{});
    EXPECT_EQ(Drain(*d), Texts({"42[\"shouted\",\"direct\"]"}));
    EXPECT_EQ(Drain(*b), std::vector<WsMessage>{});
    EXPECT_EQ(Drain(*c), std::vector<WsMessage>{});
    d->Close();
    EXPECT_EQ(d->Read(), WsMessage::Closed());
  }

  // A closed connection leaves its rooms: c goes, blue is b alone.
  c->Close();
  EXPECT_EQ(c->Read(), WsMessage::Closed());
  EXPECT_TRUE(WaitUntil([&] { return io_->Of("/").SocketCount() == 2; }));
  EXPECT_EQ(Call(*a, "[\"shout\",[\"blue\"],[],\"after\"]"), std::vector<WsMessage>{});
  EXPECT_EQ(Drain(*b), Texts({"42[\"shouted\",\"after\"]"}));
}

TEST_F(SocketIoTest, BroadcastStaysInItsNamespace) {
  auto main_only = Connected();
  auto custom = OpenEngine();
  ASSERT_TRUE(main_only && custom);
  Join(*custom, "/custom");
  auto custom_sender = OpenEngine();
  ASSERT_TRUE(custom_sender);
  Join(*custom_sender, "/custom");
  EXPECT_EQ(Call(*custom_sender, "[\"others\",\"ns\"]", "/custom"), std::vector<WsMessage>{});
  EXPECT_EQ(Drain(*custom, "/custom"), Texts({"42/custom,[\"from-other\",\"ns\"]"}));
  EXPECT_EQ(Drain(*main_only), std::vector<WsMessage>{});
}

}  // namespace
}  // namespace switchboard::protocol_test
