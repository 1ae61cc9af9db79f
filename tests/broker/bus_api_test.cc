// The brokers' bus API (sb.v1.api.<Method>) on the in-process bus, asked with
// raw bus requests: the answers are the Broker's, errors travel as ApiReply
// codes, and a Publish completing after the BusApi is gone is harmless.
#include "broker/bus_api.h"

#include "tests/broker/broker_fixture.h"

namespace switchboard::broker {
namespace {

class BrokerBusApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    broker_ = StartBroker(bus_);
    ASSERT_NE(broker_, nullptr);
    auto api = BusApi::Start(bus_, *broker_);
    ASSERT_TRUE(api.ok()) << api.status();
    api_ = std::move(*api);
  }

  // Sends `payload` to sb.v1.api.<method> and returns the parsed ApiReply.
  absl::StatusOr<v1::ApiReply> Ask(const std::string& method, const std::string& payload,
                                   std::chrono::milliseconds timeout = kWait) {
    std::promise<absl::StatusOr<bus::Message>> answer;
    bus_.Request(bus::ApiSubject(method), payload, timeout,
                 [&](absl::StatusOr<bus::Message> m) { answer.set_value(std::move(m)); });
    auto message = answer.get_future().get();
    if (!message.ok()) return message.status();
    v1::ApiReply reply;
    if (!reply.ParseFromString(message->payload)) return absl::InternalError("not an ApiReply");
    return reply;
  }

  bus::InProcessBus bus_;
  std::unique_ptr<Broker> broker_;
  std::unique_ptr<BusApi> api_;
};

TEST_F(BrokerBusApiTest, AnswersWithTheBrokersResponse) {
  Cluster cluster(bus_);
  ASSERT_TRUE(Eventually([&] { return cluster.Indexed(*broker_); }));
  v1::ListSocketsRequest request;
  request.set_namespace_("/");
  request.set_room("r1");
  auto reply = Ask("ListSockets", request.SerializeAsString());
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->code(), 0) << reply->message();
  v1::ListSocketsResponse response;
  ASSERT_TRUE(response.ParseFromString(reply->response()));
  Ids ids;
  for (const auto& socket : response.sockets()) ids.push_back(socket.id());
  EXPECT_EQ(ids, Concat({cluster.a}, {cluster.c}));
}

TEST_F(BrokerBusApiTest, TheBrokersErrorsKeepTheirCode) {
  v1::ListSocketsRequest request;
  request.set_page_token("not a token");
  auto reply = Ask("ListSockets", request.SerializeAsString());
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_FALSE(reply->message().empty());
  EXPECT_TRUE(reply->response().empty());
}

TEST_F(BrokerBusApiTest, AnUnparsablePayloadIsInvalidArgument) {
  for (const std::string method : {"ListSockets", "Publish"}) {
    auto reply = Ask(method, "\xff\xff\xff\xff");
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(reply->code(), static_cast<int>(absl::StatusCode::kInvalidArgument)) << method;
    EXPECT_NE(reply->message().find(method), std::string::npos) << reply->message();
  }
}

TEST_F(BrokerBusApiTest, AnUnknownMethodIsUnimplementedByName) {
  auto reply = Ask("ListRoomz", "");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->code(), static_cast<int>(absl::StatusCode::kUnimplemented));
  EXPECT_NE(reply->message().find("ListRoomz"), std::string::npos) << reply->message();
}

TEST_F(BrokerBusApiTest, APublishWithAcksIsAnsweredWhenItCompletes) {
  Cluster cluster(bus_);
  ASSERT_TRUE(Eventually([&] { return cluster.Indexed(*broker_); }));
  v1::PublishRequest request;
  request.set_event("ask");
  request.mutable_target()->add_rooms("r1");
  request.set_ack_timeout_ms(100);  // the fake edges never report
  auto start = std::chrono::steady_clock::now();
  auto reply = Ask("Publish", request.SerializeAsString());
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_GE(std::chrono::steady_clock::now() - start, 100ms);
  ASSERT_EQ(reply->code(), 0) << reply->message();
  v1::PublishResponse response;
  ASSERT_TRUE(response.ParseFromString(reply->response()));
  // With acks, the recipients are those the edges reported: none here.
  EXPECT_EQ(response.recipients(), 0u);
  EXPECT_EQ(response.acks_size(), 0);
}

// The BusApi goes while a Publish waits for acks: its completion, later,
// neither replies nor touches what is gone (ASan would say).
TEST_F(BrokerBusApiTest, APublishCompletingAfterTheApiIsGoneIsNotAnswered) {
  Cluster cluster(bus_);
  ASSERT_TRUE(Eventually([&] { return cluster.Indexed(*broker_); }));
  v1::PublishRequest request;
  request.set_event("ask");
  request.mutable_target()->add_rooms("r1");
  request.set_ack_timeout_ms(200);
  std::atomic<bool> delivered{false};
  auto tap = bus_.Subscribe(bus::RoomSubject("/", "r1"), [&](bus::Message) { delivered = true; });
  ASSERT_TRUE(tap.ok());
  std::promise<absl::StatusOr<bus::Message>> answer;
  bus_.Request(bus::ApiSubject("Publish"), request.SerializeAsString(), 800ms,
               [&](absl::StatusOr<bus::Message> m) { answer.set_value(std::move(m)); });
  // The broker published the delivery: it is waiting for acks now.
  ASSERT_TRUE(Eventually([&] { return delivered.load(); }));
  api_.reset();
  EXPECT_EQ(answer.get_future().get().status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST_F(BrokerBusApiTest, RequestsGoToTheBrokersQueueGroup) {
  // Another member of the group: the two share the requests, none is
  // answered twice.
  auto other_broker = StartBroker(bus_, [] {
    BrokerOptions options = Options();
    options.broker_id = "b2";
    return options;
  }());
  ASSERT_NE(other_broker, nullptr);
  auto other = BusApi::Start(bus_, *other_broker);
  ASSERT_TRUE(other.ok()) << other.status();
  std::atomic<int> replies{0};
  auto inbox = bus_.Subscribe("test.inbox", [&](bus::Message) { replies.fetch_add(1); });
  ASSERT_TRUE(inbox.ok());
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(bus_.Publish(bus::ApiSubject("GetStats"), "", "test.inbox").ok());
  }
  ASSERT_TRUE(Eventually([&] { return replies.load() >= 20; }));
  std::this_thread::sleep_for(100ms);
  Flush(bus_);
  EXPECT_EQ(replies.load(), 20);
}

// A request without a reply subject is ignored: not even a Publish is made.
TEST_F(BrokerBusApiTest, ARequestWithoutAReplySubjectIsIgnored) {
  std::mutex mu;
  std::vector<std::string> events;
  auto tap = bus_.Subscribe(bus::NamespaceSubject("/"), [&](bus::Message message) {
    v1::EdgeMessage edge_message;
    ASSERT_TRUE(edge_message.ParseFromString(message.payload));
    std::lock_guard lock(mu);
    events.push_back(edge_message.delivery().event());
  });
  ASSERT_TRUE(tap.ok());
  v1::PublishRequest request;
  request.set_event("unasked");
  ASSERT_TRUE(bus_.Publish(bus::ApiSubject("Publish"), request.SerializeAsString()).ok());
  request.set_event("asked");
  auto reply = Ask("Publish", request.SerializeAsString());
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->code(), 0) << reply->message();
  Flush(bus_);
  std::lock_guard lock(mu);
  EXPECT_EQ(events, Ids{"asked"});
}

}  // namespace
}  // namespace switchboard::broker
