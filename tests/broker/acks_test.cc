// Acks both ways: the edges' reports of a Publish with acks, and the API's
// answers to forwarded events' acks.
#include "tests/broker/broker_fixture.h"

namespace switchboard::broker {
namespace {

class AckingEdges {
 public:
  AckingEdges(bus::Bus& bus, Cluster& cluster, std::vector<std::string> edges, int copies = 1)
      : bus_(bus) {
    auto sub = bus.Subscribe(
        bus::RoomSubject("/", "r1"), [this, &cluster, edges, copies](bus::Message message) {
          v1::EdgeMessage edge_message;
          ASSERT_TRUE(edge_message.ParseFromString(message.payload));
          const v1::Delivery& delivery = edge_message.delivery();
          ack_subject_ = delivery.ack_subject();
          for (const std::string& edge : edges) {
            v1::AckReport report;
            report.set_delivery_id(delivery.id());
            report.set_edge_id(edge);
            report.set_recipients(1);
            v1::Ack* ack = report.add_acks();
            ack->set_socket_id(edge == "e1" ? cluster.a : cluster.c);
            *ack->add_args() = Json(R"("ok")");
            for (int i = 0; i < copies; ++i) {
              EXPECT_TRUE(bus_.Publish(delivery.ack_subject(), report.SerializeAsString()).ok());
            }
          }
          // Noise: a report for a delivery nobody waits for.
          v1::AckReport stray;
          stray.set_delivery_id("b1:999");
          stray.set_edge_id("e1");
          stray.set_recipients(5);
          EXPECT_TRUE(bus_.Publish(delivery.ack_subject(), stray.SerializeAsString()).ok());
        });
    EXPECT_TRUE(sub.ok());
    if (sub.ok()) sub_ = std::move(*sub);
  }
  std::string ack_subject_;

 private:
  bus::Bus& bus_;
  bus::SubscriptionPtr sub_;
};

v1::PublishRequest AckRequest(uint32_t timeout_ms) {
  v1::PublishRequest request;
  request.set_event("ask");
  request.mutable_target()->add_rooms("r1");
  request.set_ack_timeout_ms(timeout_ms);
  return request;
}

TEST(BrokerAckTest, CompletesAsSoonAsEveryEdgeReported) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);
  Cluster cluster(bus);
  ASSERT_TRUE(Eventually([&] { return cluster.Indexed(*broker); }));
  AckingEdges acking(bus, cluster, {"e1", "e2"}, /*copies=*/2);
  TargetTap tap(bus);

  PublishWaiter waiter;
  auto start = std::chrono::steady_clock::now();
  broker->Publish(AckRequest(5000), waiter.Done());
  ASSERT_TRUE(waiter.Wait());
  EXPECT_LT(waiter.at - start, 2s);
  ASSERT_TRUE(waiter.result->ok()) << waiter.result->status();
  const v1::PublishResponse& response = **waiter.result;
  EXPECT_EQ(response.recipients(), 2u);  // duplicates and strays ignored
  ASSERT_EQ(response.acks_size(), 2);
  std::set<std::string> acked = {response.acks(0).socket_id(), response.acks(1).socket_id()};
  EXPECT_EQ(acked, (std::set<std::string>{cluster.a, cluster.c}));
  EXPECT_EQ(response.acks(0).args(0).json(), R"("ok")");

  Flush(bus);
  std::vector<bus::Message> sent = tap.Take();
  ASSERT_EQ(sent.size(), 1u);
  v1::EdgeMessage message;
  ASSERT_TRUE(message.ParseFromString(sent[0].payload));
  EXPECT_EQ(message.delivery().ack_timeout_ms(), 5000u);
  EXPECT_EQ(message.delivery().ack_subject(), bus::AckSubject("b1"));
  EXPECT_EQ(acking.ack_subject_, "sb.v1.ack.b1");
  std::this_thread::sleep_for(50ms);
  std::lock_guard lock(waiter.mu);
  EXPECT_EQ(waiter.calls, 1);
}

TEST(BrokerAckTest, CompletesAtTheTimeoutWithWhatArrived) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);  // ack_grace 50 ms
  Cluster cluster(bus);
  ASSERT_TRUE(Eventually([&] { return cluster.Indexed(*broker); }));
  AckingEdges acking(bus, cluster, {"e1"});  // e2 never reports

  PublishWaiter waiter;
  auto start = std::chrono::steady_clock::now();
  broker->Publish(AckRequest(200), waiter.Done());
  ASSERT_TRUE(waiter.Wait());
  EXPECT_GE(waiter.at - start, 250ms);
  EXPECT_LT(waiter.at - start, 2s);
  ASSERT_TRUE(waiter.result->ok());
  EXPECT_EQ((*waiter.result)->recipients(), 1u);
  ASSERT_EQ((*waiter.result)->acks_size(), 1);
  EXPECT_EQ((*waiter.result)->acks(0).socket_id(), cluster.a);
  std::this_thread::sleep_for(50ms);
  std::lock_guard lock(waiter.mu);
  EXPECT_EQ(waiter.calls, 1);
}

TEST(BrokerAckTest, NoRecipientsCompletesAtOnce) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);
  PublishWaiter waiter;
  broker->Publish(AckRequest(5000), waiter.Done());
  ASSERT_TRUE(waiter.Done_());
  ASSERT_TRUE(waiter.result->ok());
  EXPECT_EQ((*waiter.result)->recipients(), 0u);
}

TEST(BrokerAckTest, DestroyingTheBrokerCompletesPendingPublishes) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);
  Cluster cluster(bus);
  ASSERT_TRUE(Eventually([&] { return cluster.Indexed(*broker); }));
  AckingEdges acking(bus, cluster, {"e2"});

  PublishWaiter waiter;
  broker->Publish(AckRequest(30'000), waiter.Done());
  Flush(bus);  // the delivery and e2's report are handled
  Flush(bus);
  EXPECT_FALSE(waiter.Done_());
  broker.reset();
  ASSERT_TRUE(waiter.Done_());
  ASSERT_TRUE(waiter.result->ok());
  EXPECT_EQ((*waiter.result)->recipients(), 1u);
  ASSERT_EQ((*waiter.result)->acks_size(), 1);
  EXPECT_EQ((*waiter.result)->acks(0).socket_id(), cluster.c);
  std::lock_guard lock(waiter.mu);
  EXPECT_EQ(waiter.calls, 1);
}

// ---------------------------------------------------------------------------
// Commands.

TEST(BrokerAckTest, AcksGoToTheEdgeTheRefNames) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);
  auto ack = [&](const std::string& ref, const std::string& json = "1") {
    v1::AckRequest request;
    request.set_ack_ref(ref);
    request.add_args()->set_json(json);
    std::promise<absl::Status> result;
    broker->Ack(request, [&](absl::Status status) { result.set_value(status); });
    return result.get_future().get();
  };
  EXPECT_EQ(ack("no-dots").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ack("e1.n.x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ack("bad edge.n.1").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ack("e1.n.1", "{not json").code(), absl::StatusCode::kInvalidArgument);
  // Nobody serves e1: its edge is gone.
  EXPECT_EQ(ack("e1.n.1").code(), absl::StatusCode::kNotFound);

  // A fake edge that knows ack 1 once.
  std::mutex mu;
  std::vector<v1::ForwardAck> got;
  auto sub = bus.Subscribe(bus::ForwardAckSubject("e1"), [&](bus::Message message) {
    v1::ForwardAck request;
    ASSERT_TRUE(request.ParseFromString(message.payload));
    v1::ForwardAckResult result;
    {
      std::lock_guard lock(mu);
      result.set_delivered(request.ack_ref() == "e1.n.1" && got.empty());
      got.push_back(request);
    }
    ASSERT_TRUE(bus.Publish(message.reply_to, result.SerializeAsString()).ok());
  });
  ASSERT_TRUE(sub.ok());
  EXPECT_TRUE(ack("e1.n.1", R"({"ok":true})").ok());
  absl::Status again = ack("e1.n.1");
  EXPECT_EQ(again.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(again.message().find("already answered"), absl::string_view::npos) << again;
  std::lock_guard lock(mu);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].reply().args(0).json(), R"({"ok":true})");
}

}  // namespace
}  // namespace switchboard::broker
