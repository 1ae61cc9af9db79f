// The forwarder against a real Socket.IO server (WebSocket clients): client
// events reach backends on the forward subjects with everything a backend
// needs; client acks are answered by a reply on the bus message or by a
// ForwardAck (the API's Ack), once; time-outs, missing backends and a full
// ack table answer the client with an error and count. The queue-group case
// runs on a real nats-server.
#include "cluster/forwarder.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bus/inproc_bus.h"
#include "bus/nats_bus.h"
#include "bus/routing.h"
#include "edge/socketio/socket.h"
#include "switchboard/v1/bus.pb.h"
#include "tests/bus/nats_server.h"
#include "tests/support/edge_test.h"
#include "tests/support/eventually.h"

namespace switchboard {
namespace {

using sio::Json;
using testing_support::BlockingClient;
using testing_support::EdgeTest;
using testing_support::Eventually;
using testing_support::JoinRoom;
using testing_support::NamedEdge;
using testing_support::TestServer;
using namespace std::chrono_literals;

constexpr char kEdge[] = "edge-f";

// What a backend subscription received.
struct Received {
  std::mutex mu;
  std::vector<bus::Message> messages;

  void Add(bus::Message message) {
    std::lock_guard lock(mu);
    messages.push_back(std::move(message));
  }
  size_t size() {
    std::lock_guard lock(mu);
    return messages.size();
  }
  v1::ForwardedEvent Event(size_t i) {
    std::lock_guard lock(mu);
    v1::ForwardedEvent event;
    EXPECT_TRUE(event.ParseFromString(messages.at(i).payload));
    return event;
  }
  std::string ReplyTo(size_t i) {
    std::lock_guard lock(mu);
    return messages.at(i).reply_to;
  }
};

// Reads until an ACK packet (431...) and returns its payload.
std::string ReadAck(BlockingClient& client) {
  for (;;) {
    std::string message = client.Read();
    if (message.rfind("431", 0) == 0) return message.substr(3);
  }
}

class ForwarderTest : public EdgeTest {
 protected:
  ForwarderTest() : EdgeTest({}, NamedEdge(kEdge)) {}

  void Start(size_t max_pending_acks = 100) {
    policy_.ack_timeout = 300ms;
    if (policy_.headers.empty()) policy_.headers = {"host", "x-absent"};
    cluster::Forwarder::Options options;
    options.edge_id = kEdge;
    options.max_pending_acks = max_pending_acks;
    auto forwarder = cluster::Forwarder::Start(bus_, server_.runtime(), options);
    ASSERT_TRUE(forwarder.ok()) << forwarder.status();
    forwarder_ = std::move(*forwarder);
    server_.io().Of("/").OnAnyEvent(
        [this](const sio::SocketPtr& socket, std::string_view event, Json& args, sio::Ack ack) {
          forwarder_->Forward(*socket, event, args, policy_, std::move(ack));
        });
    server_.Start();
  }
  void TearDown() override {
    server_.Stop();
    forwarder_.reset();
  }

  void Backend(const std::string& queue = "workers") {
    auto sub = bus_.Subscribe(
        bus::kAllForwarded, [this](bus::Message message) { received_.Add(std::move(message)); },
        queue);
    ASSERT_TRUE(sub.ok()) << sub.status();
    subs_.push_back(std::move(*sub));
  }

  v1::ForwardStats Stats() {
    v1::ForwardStats stats;
    forwarder_->FillStats(&stats);
    return stats;
  }

  // Answers an ack the way the broker does for the API's Ack.
  bool ForwardAck(const std::string& ref, const std::string& json_arg) {
    v1::ForwardAck request;
    request.set_ack_ref(ref);
    request.mutable_reply()->add_args()->set_json(json_arg);
    std::promise<bool> delivered;
    bus_.Request(bus::ForwardAckSubject(kEdge), request.SerializeAsString(), 2s,
                 [&](absl::StatusOr<bus::Message> reply) {
                   v1::ForwardAckResult result;
                   delivered.set_value(reply.ok() && result.ParseFromString(reply->payload) &&
                                       result.delivered());
                 });
    return delivered.get_future().get();
  }

  bus::InProcessBus bus_;
  cluster::ForwardPolicy policy_;
  std::unique_ptr<cluster::Forwarder> forwarder_;
  Received received_;
  std::vector<bus::SubscriptionPtr> subs_;
};

TEST_F(ForwarderTest, AnEventCarriesWhatABackendNeeds) {
  Start();
  Backend();
  BlockingClient client(server_.port());
  std::string id = JoinRoom(client, "lobby");
  client.Send(R"(42["hello",{"a":1},"two"])");
  ASSERT_TRUE(Eventually([&] { return received_.size() == 1; }));
  v1::ForwardedEvent forwarded = received_.Event(0);
  EXPECT_EQ(forwarded.edge_id(), kEdge);
  EXPECT_GT(forwarded.time().seconds(), 0);
  const v1::ClientEvent& event = forwarded.event();
  EXPECT_EQ(event.socket_id(), id);
  EXPECT_EQ(event.namespace_(), "/");
  EXPECT_EQ(event.event(), "hello");
  ASSERT_EQ(event.args_size(), 2);
  EXPECT_EQ(event.args(0).json(), R"({"a":1})");
  EXPECT_EQ(event.args(1).json(), R"("two")");
  ASSERT_EQ(event.rooms_size(), 1);  // not its own-id room
  EXPECT_EQ(event.rooms(0), "lobby");
  EXPECT_EQ(event.handshake().address(), "127.0.0.1");
  EXPECT_EQ(event.handshake().headers().size(), 1u);
  EXPECT_EQ(event.handshake().headers().at("host").rfind("127.0.0.1", 0), 0u);
  EXPECT_EQ(event.handshake().query().count("EIO"), 0u);
  EXPECT_FALSE(event.wants_ack());
  EXPECT_TRUE(event.ack_ref().empty());
  EXPECT_TRUE(received_.ReplyTo(0).empty());
  EXPECT_EQ(Stats().forwarded(), 1u);
  // The subject names the namespace and the event.
  std::lock_guard lock(received_.mu);
  EXPECT_EQ(received_.messages[0].subject, bus::ForwardSubject("/", "hello"));
}

// A token in the query string or an Authorization header stays on the edge:
// backends get the rest of the handshake, even when the policy names
// `authorization` among its headers.
TEST_F(ForwarderTest, TokensInTheHandshakeStayOnTheEdge) {
  policy_.headers = {"authorization", "x-team"};
  policy_.hidden_query = {"token", "jwt"};
  Start();
  Backend();
  boost::asio::io_context ioc;
  boost::beast::websocket::stream<boost::asio::ip::tcp::socket> ws(ioc);
  ws.next_layer().connect(
      {boost::asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(server_.port())});
  ws.set_option(boost::beast::websocket::stream_base::decorator(
      [](boost::beast::websocket::request_type& request) {
        request.set(boost::beast::http::field::authorization, "Bearer secret.jwt.value");
        request.set("X-Team", "red");
      }));
  ws.handshake("127.0.0.1",
               "/socket.io/?EIO=4&transport=websocket&token=secret.jwt.value&room=blue&jwt=x");
  auto read = [&ws] {
    boost::beast::flat_buffer buffer;
    ws.read(buffer);
    return boost::beast::buffers_to_string(buffer.data());
  };
  ASSERT_EQ(read().substr(0, 1), "0");
  ws.write(boost::asio::buffer(std::string("40")));
  ASSERT_EQ(read().substr(0, 2), "40");
  ws.write(boost::asio::buffer(std::string(R"(42["hello"])")));
  ASSERT_TRUE(Eventually([&] { return received_.size() == 1; }));
  const v1::ForwardedEvent forwarded = received_.Event(0);
  const v1::Handshake& handshake = forwarded.event().handshake();
  EXPECT_EQ(handshake.query().count("token"), 0u);
  EXPECT_EQ(handshake.query().count("jwt"), 0u);
  EXPECT_EQ(handshake.query().at("room"), "blue");
  EXPECT_EQ(handshake.headers().count("authorization"), 0u);
  EXPECT_EQ(handshake.headers().at("x-team"), "red");
  ws.close(boost::beast::websocket::close_code::normal);
}

TEST_F(ForwarderTest, AReplyOnTheMessageAnswersTheClient) {
  Start();
  auto sub = bus_.Subscribe(
      bus::ForwardSubject("/", "ask"),
      [this](bus::Message message) {
        v1::ForwardReply reply;
        reply.add_args()->set_json(R"({"answer":42})");
        ASSERT_TRUE(bus_.Publish(message.reply_to, reply.SerializeAsString()).ok());
      },
      "workers");
  ASSERT_TRUE(sub.ok());
  BlockingClient client(server_.port());
  client.Send(R"(427["ask",1])");
  EXPECT_EQ(client.Read(), R"(437[{"answer":42}])");
  EXPECT_EQ(Stats().acks_answered(), 1u);
  EXPECT_EQ(forwarder_->pending_acks(), 0u);
}

TEST_F(ForwarderTest, AnErrorReplyBecomesAnErrorAck) {
  Start();
  auto sub = bus_.Subscribe(bus::kAllForwarded, [this](bus::Message message) {
    v1::ForwardReply reply;
    reply.set_error("nope");
    ASSERT_TRUE(bus_.Publish(message.reply_to, reply.SerializeAsString()).ok());
  });
  ASSERT_TRUE(sub.ok());
  BlockingClient client(server_.port());
  client.Send(R"(421["ask"])");
  EXPECT_EQ(client.Read(), R"(431[{"ok":false,"error":"nope"}])");
}

TEST_F(ForwarderTest, AForwardAckAnswersOnceAndTheLateReplyIsIgnored) {
  Start();
  Backend();
  BlockingClient client(server_.port());
  client.Send(R"(421["ask",{"q":1}])");
  ASSERT_TRUE(Eventually([&] { return received_.size() == 1; }));
  v1::ForwardedEvent forwarded = received_.Event(0);
  ASSERT_TRUE(forwarded.event().wants_ack());
  const std::string ref = forwarded.event().ack_ref();
  EXPECT_EQ(bus::EdgeOfSocketId(ref.substr(0, ref.rfind('.'))), kEdge);
  EXPECT_TRUE(ForwardAck(ref, R"("first")"));
  EXPECT_EQ(ReadAck(client), R"(["first"])");
  // At most once: a second answer, by either way, finds nothing.
  EXPECT_FALSE(ForwardAck(ref, R"("second")"));
  v1::ForwardReply late;
  late.add_args()->set_json(R"("late")");
  ASSERT_TRUE(bus_.Publish(received_.ReplyTo(0), late.SerializeAsString()).ok());
  EXPECT_FALSE(ForwardAck(kEdge + std::string(".nonce.1"), R"("forged")"));
  // The client still talks, and has had one ack only.
  client.Send(R"(42["ping"])");
  ASSERT_TRUE(Eventually([&] { return received_.size() == 2; }));
  v1::ForwardStats stats = Stats();
  EXPECT_EQ(stats.acks_answered(), 1u);
  EXPECT_EQ(stats.acks_timed_out(), 0u);
}

TEST_F(ForwarderTest, NoAnswerInTimeIsAnErrorAck) {
  Start();
  Backend();
  BlockingClient client(server_.port());
  auto start = std::chrono::steady_clock::now();
  client.Send(R"(421["ask"])");
  EXPECT_EQ(ReadAck(client), R"([{"ok":false,"error":"timeout"}])");
  EXPECT_GE(std::chrono::steady_clock::now() - start, 250ms);
  EXPECT_EQ(Stats().acks_timed_out(), 1u);
  // Too late now.
  ASSERT_EQ(received_.size(), 1u);
  EXPECT_FALSE(ForwardAck(received_.Event(0).event().ack_ref(), "1"));
}

TEST_F(ForwarderTest, NoBackendDropsAndCounts) {
  Start();
  BlockingClient client(server_.port());
  client.Send(R"(421["ask"])");
  EXPECT_EQ(ReadAck(client), R"([{"ok":false,"error":"no backend"}])");
  v1::ForwardStats stats = Stats();
  EXPECT_EQ(stats.dropped(), 1u);
  EXPECT_EQ(stats.forwarded(), 0u);
  EXPECT_EQ(forwarder_->pending_acks(), 0u);
}

TEST_F(ForwarderTest, TheAckTableIsBounded) {
  Start(/*max_pending_acks=*/1);
  Backend();  // takes events, never answers
  BlockingClient client(server_.port());
  client.Send(R"(421["first"])");
  ASSERT_TRUE(Eventually([&] { return forwarder_->pending_acks() == 1; }));
  client.Send(R"(422["second"])");
  EXPECT_EQ(client.Read(), R"(432[{"ok":false,"error":"backend busy"}])");
  EXPECT_EQ(Stats().dropped(), 1u);
  EXPECT_EQ(Stats().acks_pending(), 1u);
  EXPECT_EQ(client.Read(), R"(431[{"ok":false,"error":"timeout"}])");
}

TEST(ForwardPolicyTest, AllOrByName) {
  cluster::ForwardPolicy all;
  EXPECT_TRUE(all.Forwards("anything"));
  cluster::ForwardPolicy some;
  some.events = std::vector<std::string>{"a", "b"};
  EXPECT_TRUE(some.Forwards("b"));
  EXPECT_FALSE(some.Forwards("c"));
}

// Two backend workers in one NATS queue group on a real nats-server: every
// event is handled exactly once, and acks come back through NATS replies.
TEST(ForwarderNatsTest, TwoWorkersInAQueueGroupEachEventOnce) {
  bus::testing::NatsServer nats;
  ASSERT_TRUE(nats.Start());
  auto connect = [&](const std::string& name) {
    bus::NatsBus::Options options;
    options.urls = {nats.url()};
    options.name = name;
    auto bus = bus::NatsBus::Connect(options);
    EXPECT_TRUE(bus.ok()) << bus.status();
    return std::move(*bus);
  };
  auto edge_bus = connect("edge");
  std::unique_ptr<bus::Bus> workers[2] = {connect("worker-1"), connect("worker-2")};

  std::mutex mu;
  std::map<std::string, int> seen;  // event payload -> times handled
  int per_worker[2] = {0, 0};
  std::vector<bus::SubscriptionPtr> subs;
  for (int w = 0; w < 2; ++w) {
    bus::Bus* worker = workers[w].get();
    auto sub = worker->Subscribe(
        bus::ForwardNamespacePattern("/"),
        [&, w, worker](bus::Message message) {
          v1::ForwardedEvent forwarded;
          ASSERT_TRUE(forwarded.ParseFromString(message.payload));
          {
            std::lock_guard lock(mu);
            ++seen[forwarded.event().args(0).json()];
            ++per_worker[w];
          }
          if (!message.reply_to.empty()) {
            v1::ForwardReply reply;
            reply.add_args()->set_json(absl::StrCat(R"({"worker":)", w, "}"));
            EXPECT_TRUE(worker->Publish(message.reply_to, reply.SerializeAsString()).ok());
          }
        },
        "sb-backends");
    ASSERT_TRUE(sub.ok()) << sub.status();
    subs.push_back(std::move(*sub));
    // A round trip on the worker's connection: the server has its
    // subscription once the answer (no responders) comes back, so no event
    // can go to the other worker only because this one was not there yet.
    std::promise<void> synced;
    worker->Request("sb.test.sync", "", 2s,
                    [&](absl::StatusOr<bus::Message>) { synced.set_value(); });
    ASSERT_EQ(synced.get_future().wait_for(5s), std::future_status::ready);
  }

  TestServer server({}, NamedEdge(kEdge));
  cluster::ForwardPolicy policy;
  policy.ack_timeout = 2s;
  cluster::Forwarder::Options options;
  options.edge_id = kEdge;
  auto forwarder = cluster::Forwarder::Start(*edge_bus, server.runtime(), options);
  ASSERT_TRUE(forwarder.ok());
  server.io().Of("/").OnAnyEvent(
      [&](const sio::SocketPtr& socket, std::string_view event, Json& args, sio::Ack ack) {
        (*forwarder)->Forward(*socket, event, args, policy, std::move(ack));
      });
  server.Start();
  {
    BlockingClient client(server.port());
    constexpr int kEvents = 40;
    for (int i = 0; i < kEvents; ++i) client.Send(absl::StrCat(R"(42["tick",)", i, "]"));
    client.Send(R"(421["ask","with-ack"])");
    std::string ack = ReadAck(client);
    EXPECT_TRUE(ack == R"([{"worker":0}])" || ack == R"([{"worker":1}])") << ack;
    ASSERT_TRUE(Eventually([&] {
      std::lock_guard lock(mu);
      return seen.size() == kEvents + 1;
    }));
    std::this_thread::sleep_for(200ms);  // a duplicate would show by now
    std::lock_guard lock(mu);
    for (const auto& [payload, times] : seen) EXPECT_EQ(times, 1) << payload;
    EXPECT_EQ(per_worker[0] + per_worker[1], kEvents + 1);
    EXPECT_GT(per_worker[0], 0);
    EXPECT_GT(per_worker[1], 0);
  }
  server.Stop();
  forwarder->reset();
  subs.clear();
}

}  // namespace
}  // namespace switchboard
