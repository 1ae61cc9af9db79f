// The edge link against a real Socket.IO server (WebSocket clients) and the
// in-process bus: what arrives on target subjects reaches exactly the right
// local sockets once; commands act on local sockets; acks are reported; the
// edge's own broadcasts leave for the other edges; subscriptions follow local
// interest.
#include "cluster/edge_link.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "bus/inproc_bus.h"
#include "bus/routing.h"
#include "edge/socketio/socket.h"
#include "switchboard/v1/bus.pb.h"
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
using namespace std::chrono_literals;

constexpr char kEdge[] = "edge-a";

class EdgeLinkTest : public EdgeTest {
 protected:
  EdgeLinkTest() : EdgeTest({}, NamedEdge(kEdge)) {}

  void SetUp() override {
    // The user id is the auth payload's "user", as userIdFromAuth would set it.
    server_.io().Of("/").Use([](const sio::SocketPtr& socket, sio::Next next) {
      if (socket->auth().contains("user")) socket->SetUserId(socket->auth()["user"]);
      next(std::nullopt);
    });
    // Broadcasts from the edge's own handlers: "shout" ROOM TEXT.
    server_.io().Of("/").On("shout", [](const sio::SocketPtr& socket, std::string_view, Json& args,
                                        sio::Ack) {
      socket->nsp().To(args.at(0).get<std::string>()).Emit("shouted", Json::array({args.at(1)}));
    });
    cluster::EdgeLink::Options options;
    options.edge_id = kEdge;
    options.heartbeat_interval = 100ms;
    auto link = cluster::EdgeLink::Start(bus_, server_.io(), options);
    ASSERT_TRUE(link.ok()) << link.status();
    link_ = std::move(*link);
    server_.Start();
  }
  void TearDown() override {
    server_.Stop();
    link_.reset();
  }

  void Send(const std::string& subject, const v1::EdgeMessage& message) {
    ASSERT_TRUE(bus_.Publish(subject, message.SerializeAsString()).ok());
  }

  static v1::EdgeMessage MakeDelivery(const std::string& id, const std::string& event) {
    v1::EdgeMessage message;
    message.mutable_delivery()->set_id(id);
    message.mutable_delivery()->set_event(event);
    message.mutable_delivery()->add_args()->set_json(R"({"n":1})");
    return message;
  }

  bus::InProcessBus bus_;
  std::unique_ptr<cluster::EdgeLink> link_;
};

TEST_F(EdgeLinkTest, SocketIdsNameTheEdge) {
  BlockingClient client(server_.port());
  std::string id = JoinRoom(client, "r");
  EXPECT_EQ(bus::EdgeOfSocketId(id), kEdge);
}

TEST_F(EdgeLinkTest, HeartbeatsCountMessagesPerNamespace) {
  BlockingClient client(server_.port());
  JoinRoom(client, "r");  // one event in, its ack out
  Send(bus::NamespaceSubject("/"), MakeDelivery("broker-1:1", "news"));
  EXPECT_EQ(client.Read(), R"(42["news",{"n":1}])");
  // The shard counts a packet once it has handed it to the transport, which
  // may be after the client read it.
  v1::Heartbeat heartbeat;
  EXPECT_TRUE(Eventually([&] {
    heartbeat = link_->journal().BuildSnapshot().heartbeat();
    return heartbeat.totals().messages_out() == 2;
  }));
  EXPECT_EQ(heartbeat.totals().messages_in(), 1u);
  EXPECT_EQ(heartbeat.totals().messages_out(), 2u);
  ASSERT_EQ(heartbeat.namespaces_size(), 1);
  EXPECT_EQ(heartbeat.namespaces(0).counts().messages_in(), 1u);
  EXPECT_EQ(heartbeat.namespaces(0).counts().messages_out(), 2u);
}

TEST_F(EdgeLinkTest, ADeliveryOnTwoRoomSubjectsReachesAMemberOfBothOnce) {
  BlockingClient both(server_.port());
  BlockingClient only_b(server_.port());
  BlockingClient outsider(server_.port());
  JoinRoom(both, "a");
  JoinRoom(both, "b");
  JoinRoom(only_b, "b");
  JoinRoom(outsider, "c");

  v1::EdgeMessage message = MakeDelivery("broker-1:1", "news");
  message.mutable_delivery()->mutable_target()->add_rooms("a");
  message.mutable_delivery()->mutable_target()->add_rooms("b");
  Send(bus::RoomSubject("/", "a"), message);
  Send(bus::RoomSubject("/", "b"), message);
  // A marker after it: whatever arrives before the marker is all there is.
  v1::EdgeMessage marker = MakeDelivery("broker-1:2", "marker");
  Send(bus::NamespaceSubject("/"), marker);

  EXPECT_EQ(both.Read(), R"(42["news",{"n":1}])");
  EXPECT_EQ(both.Read(), R"(42["marker",{"n":1}])");
  EXPECT_EQ(only_b.Read(), R"(42["news",{"n":1}])");
  EXPECT_EQ(only_b.Read(), R"(42["marker",{"n":1}])");
  EXPECT_EQ(outsider.Read(), R"(42["marker",{"n":1}])");
}

TEST_F(EdgeLinkTest, UserTargetsReachEverySocketOfTheUser) {
  BlockingClient alice_1(server_.port(), false, R"(40{"user":"alice"})");
  BlockingClient alice_2(server_.port(), false, R"(40{"user":"alice"})");
  BlockingClient bob(server_.port(), false, R"(40{"user":"bob"})");
  JoinRoom(alice_1, "a");  // in a targeted room too: still once
  JoinRoom(alice_2, "x");
  JoinRoom(bob, "x");
  EXPECT_TRUE(Eventually([&] { return link_->journal().socket_count() == 3; }));
  EXPECT_EQ(link_->journal().BuildSnapshot().heartbeat().totals().users(), 2u);

  v1::EdgeMessage message = MakeDelivery("broker-1:1", "for-alice");
  message.mutable_delivery()->mutable_target()->add_user_ids("alice");
  message.mutable_delivery()->mutable_target()->add_rooms("a");
  Send(bus::UserSubject("/", "alice"), message);
  Send(bus::RoomSubject("/", "a"), message);
  Send(bus::NamespaceSubject("/"), MakeDelivery("broker-1:2", "marker"));

  EXPECT_EQ(alice_1.Read(), R"(42["for-alice",{"n":1}])");
  EXPECT_EQ(alice_1.Read(), R"(42["marker",{"n":1}])");
  EXPECT_EQ(alice_2.Read(), R"(42["for-alice",{"n":1}])");
  EXPECT_EQ(bob.Read(), R"(42["marker",{"n":1}])");
}

TEST_F(EdgeLinkTest, ExceptListsAndSocketIds) {
  BlockingClient first(server_.port());
  BlockingClient second(server_.port());
  std::string first_id = JoinRoom(first, "r");
  std::string second_id = JoinRoom(second, "r");

  v1::EdgeMessage to_second = MakeDelivery("broker-1:1", "direct");
  to_second.mutable_delivery()->mutable_target()->add_socket_ids(second_id);
  Send(bus::SocketSubject(second_id), to_second);

  v1::EdgeMessage all_but_first = MakeDelivery("broker-1:2", "most");
  all_but_first.mutable_delivery()->mutable_target()->add_except_socket_ids(first_id);
  Send(bus::NamespaceSubject("/"), all_but_first);

  v1::EdgeMessage marker = MakeDelivery("broker-1:3", "marker");
  Send(bus::NamespaceSubject("/"), marker);

  EXPECT_EQ(first.Read(), R"(42["marker",{"n":1}])");
  EXPECT_EQ(second.Read(), R"(42["direct",{"n":1}])");
  EXPECT_EQ(second.Read(), R"(42["most",{"n":1}])");
  EXPECT_EQ(second.Read(), R"(42["marker",{"n":1}])");
}

TEST_F(EdgeLinkTest, StampedDeliveriesAreObservedOnceInTheLatencyHistogram) {
  BlockingClient client(server_.port());
  JoinRoom(client, "r");
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  // Published 30 ms ago, sent on two subjects: observed once, at least 30 ms.
  v1::EdgeMessage stamped = MakeDelivery("broker-1:1", "news");
  stamped.mutable_delivery()->set_published_unix_nanos(now - 30'000'000);
  Send(bus::NamespaceSubject("/"), stamped);
  Send(bus::RoomSubject("/", "r"), stamped);
  // Unstamped (an older broker): not observed.
  Send(bus::NamespaceSubject("/"), MakeDelivery("broker-1:2", "marker"));
  EXPECT_EQ(client.Read(), R"(42["news",{"n":1}])");
  EXPECT_EQ(client.Read(), R"(42["marker",{"n":1}])");

  cluster::LatencyHistogram::Snapshot read = link_->delivery_latency().Read();
  EXPECT_EQ(read.count, 1u);
  EXPECT_GE(read.sum_seconds, 0.030);
  EXPECT_LT(read.sum_seconds, 5.0);
  // In a bucket above 25 ms (the 50 ms one, unless this machine was very slow).
  uint64_t fast = 0;
  for (size_t i = 0; i < cluster::LatencyHistogram::kBoundsSeconds.size(); ++i) {
    if (cluster::LatencyHistogram::kBoundsSeconds[i] <= 0.025) fast += read.buckets[i];
  }
  EXPECT_EQ(fast, 0u);
}

TEST(LatencyHistogramTest, BucketsCountSumAndNegativeDurations) {
  cluster::LatencyHistogram histogram;
  histogram.Observe(std::chrono::microseconds(500));  // on the first bound: le 0.0005
  histogram.Observe(std::chrono::milliseconds(3));    // le 0.005
  histogram.Observe(std::chrono::seconds(11));        // +Inf
  histogram.Observe(std::chrono::milliseconds(-2));   // clocks disagree: 0
  cluster::LatencyHistogram::Snapshot read = histogram.Read();
  EXPECT_EQ(read.count, 4u);
  EXPECT_DOUBLE_EQ(read.sum_seconds, 0.0005 + 0.003 + 11);
  EXPECT_EQ(read.buckets[0], 2u);
  EXPECT_EQ(read.buckets[3], 1u);
  EXPECT_EQ(read.buckets.back(), 1u);
  uint64_t total = 0;
  for (uint64_t n : read.buckets) total += n;
  EXPECT_EQ(total, 4u);
}

TEST_F(EdgeLinkTest, BinaryArgumentsBecomeAttachments) {
  BlockingClient client(server_.port());
  JoinRoom(client, "r");
  v1::EdgeMessage message;
  message.mutable_delivery()->set_id("broker-1:1");
  message.mutable_delivery()->set_event("file");
  message.mutable_delivery()->add_args()->set_binary(std::string("\x01\x00\x02", 3));
  Send(bus::NamespaceSubject("/"), message);
  EXPECT_EQ(client.Read(), R"(451-["file",{"_placeholder":true,"num":0}])");
}

TEST_F(EdgeLinkTest, SubscriptionsFollowLocalInterest) {
  size_t base = link_->subscription_count();  // the edge subject
  BlockingClient client(server_.port());
  JoinRoom(client, "r1");
  JoinRoom(client, "r2");
  // + namespace + two rooms
  EXPECT_TRUE(Eventually([&] { return link_->subscription_count() == base + 3; }));
  client.Send(R"(421["leave","r1"])");
  EXPECT_EQ(client.Read(), "431[]");
  EXPECT_EQ(link_->subscription_count(), base + 2);
  client.Close();
  EXPECT_TRUE(Eventually([&] { return link_->subscription_count() == base; }));
}

TEST_F(EdgeLinkTest, CommandsJoinLeaveAndDisconnectLocalSockets) {
  BlockingClient client(server_.port());
  std::string id = JoinRoom(client, "r");

  v1::EdgeMessage join;
  join.mutable_command()->set_id("broker-1:1");
  join.mutable_command()->mutable_selector()->add_socket_ids(id);
  join.mutable_command()->mutable_join()->add_rooms("vip");
  Send(bus::SocketSubject(id), join);
  EXPECT_TRUE(Eventually(
      [&] { return link_->journal().BuildSnapshot().sockets(0).socket().rooms_size() == 2; }));

  v1::EdgeMessage news = MakeDelivery("broker-1:2", "vip-news");
  news.mutable_delivery()->mutable_target()->add_rooms("vip");
  Send(bus::RoomSubject("/", "vip"), news);
  EXPECT_EQ(client.Read(), R"(42["vip-news",{"n":1}])");

  v1::EdgeMessage disconnect;
  disconnect.mutable_command()->set_id("broker-1:3");
  disconnect.mutable_command()->mutable_selector()->add_rooms("vip");
  disconnect.mutable_command()->set_disconnect_close(false);
  Send(bus::RoomSubject("/", "vip"), disconnect);
  EXPECT_EQ(client.Read(), "41");
  EXPECT_TRUE(Eventually([&] { return link_->journal().socket_count() == 0; }));
}

TEST_F(EdgeLinkTest, AnEmptySelectorActsOnNobody) {
  BlockingClient client(server_.port());
  JoinRoom(client, "r");
  v1::EdgeMessage disconnect;
  disconnect.mutable_command()->set_id("broker-1:1");
  disconnect.mutable_command()->mutable_selector();  // nothing selected, not all_sockets
  disconnect.mutable_command()->set_disconnect_close(true);
  Send(bus::NamespaceSubject("/"), disconnect);
  Send(bus::NamespaceSubject("/"), MakeDelivery("broker-1:2", "still-here"));
  EXPECT_EQ(client.Read(), R"(42["still-here",{"n":1}])");
}

TEST_F(EdgeLinkTest, AcksAreCollectedAndReported) {
  std::promise<v1::AckReport> reported;
  auto sub = bus_.Subscribe("sb.v1.ack.broker-1", [&](bus::Message message) {
    v1::AckReport report;
    ASSERT_TRUE(report.ParseFromString(message.payload));
    reported.set_value(report);
  });
  ASSERT_TRUE(sub.ok());
  BlockingClient answering(server_.port());
  BlockingClient silent(server_.port());
  std::string answering_id = JoinRoom(answering, "r");
  std::string silent_id = JoinRoom(silent, "r");

  v1::EdgeMessage message = MakeDelivery("broker-1:1", "question");
  message.mutable_delivery()->mutable_target()->add_rooms("r");
  message.mutable_delivery()->set_ack_timeout_ms(300);
  message.mutable_delivery()->set_ack_subject("sb.v1.ack.broker-1");
  Send(bus::RoomSubject("/", "r"), message);

  std::string asked = answering.Read();
  ASSERT_EQ(asked.rfind("42", 0), 0u) << asked;
  std::string ack_id = asked.substr(2, asked.find('[') - 2);
  answering.Send("43" + ack_id + R"(["yes",2])");
  EXPECT_EQ(silent.Read().rfind("42", 0), 0u);  // asked too, never answers

  auto future = reported.get_future();
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  v1::AckReport report = future.get();
  EXPECT_EQ(report.delivery_id(), "broker-1:1");
  EXPECT_EQ(report.edge_id(), kEdge);
  EXPECT_EQ(report.recipients(), 2u);
  ASSERT_EQ(report.acks_size(), 2);
  for (const v1::Ack& ack : report.acks()) {
    if (ack.socket_id() == answering_id) {
      EXPECT_EQ(ack.error(), "");
      ASSERT_EQ(ack.args_size(), 2);
      EXPECT_EQ(ack.args(0).json(), R"("yes")");
      EXPECT_EQ(ack.args(1).json(), "2");
    } else {
      EXPECT_EQ(ack.socket_id(), silent_id);
      EXPECT_EQ(ack.error(), "timeout");
    }
  }
}

TEST_F(EdgeLinkTest, LocalBroadcastsAreRelayedPreEncodedAndTheirEchoIgnored) {
  std::mutex mu;
  std::vector<v1::EdgeMessage> relayed;
  auto sub = bus_.Subscribe(bus::RoomSubject("/", "r"), [&](bus::Message message) {
    v1::EdgeMessage parsed;
    ASSERT_TRUE(parsed.ParseFromString(message.payload));
    std::lock_guard lock(mu);
    relayed.push_back(parsed);
  });
  ASSERT_TRUE(sub.ok());
  BlockingClient member(server_.port());
  BlockingClient sender(server_.port());
  JoinRoom(member, "r");
  sender.Send(R"(42["shout","r","hi"])");
  EXPECT_EQ(member.Read(), R"(42["shouted","hi"])");

  ASSERT_TRUE(Eventually([&] {
    std::lock_guard lock(mu);
    return relayed.size() == 1;
  }));
  const v1::Delivery& delivery = relayed[0].delivery();
  EXPECT_EQ(delivery.origin_edge(), kEdge);
  EXPECT_EQ(delivery.target().namespace_(), "/");
  ASSERT_EQ(delivery.target().rooms_size(), 1);
  EXPECT_EQ(delivery.target().rooms(0), "r");
  ASSERT_EQ(delivery.frames_size(), 1);
  EXPECT_EQ(delivery.frames(0), R"(42["shouted","hi"])");
  // The edge got its own relay back on the room subject (the in-process bus
  // echoes): the member must not see it twice.
  Send(bus::NamespaceSubject("/"), MakeDelivery("broker-1:9", "marker"));
  EXPECT_EQ(member.Read(), R"(42["marker",{"n":1}])");
}

TEST_F(EdgeLinkTest, AnotherEdgesRelayIsDeliveredAsIs) {
  BlockingClient member(server_.port());
  JoinRoom(member, "r");
  v1::EdgeMessage message;
  v1::Delivery* delivery = message.mutable_delivery();
  delivery->set_id("edge-b:x:1");
  delivery->set_origin_edge("edge-b");
  delivery->mutable_target()->add_rooms("r");
  delivery->add_frames(R"(42["shouted","from b"])");
  Send(bus::RoomSubject("/", "r"), message);
  EXPECT_EQ(member.Read(), R"(42["shouted","from b"])");
}

}  // namespace
}  // namespace switchboard
