// Publishes to a namespace with connection state recovery in a cluster: the
// broker writes them once to the namespace's JetStream log (the real
// services::BrokerEventLog on a real nats-server with JetStream) instead of
// the core subjects, and answers after the log's ack.
#include <grpcpp/grpcpp.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include "bus/js_range.h"
#include "bus/js_stream.h"
#include "services/api_server.h"
#include "services/broker_event_log.h"
#include "services/broker_process.h"
#include "services/health.h"
#include "switchboard/v1/switchboard.grpc.pb.h"
#include "tests/broker/broker_fixture.h"
#include "tests/bus/jetstream_server.h"

namespace switchboard::broker {
namespace {

constexpr auto kQuiet = 300ms;  // how long "nothing arrives" is watched for

class BrokerRecoveryLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start());
    broker_bus_ = server_.Connect();
    edge_bus_ = server_.Connect();
    ASSERT_NE(broker_bus_, nullptr);
    ASSERT_NE(edge_bus_, nullptr);
    auto js = bus::JetStream::Create(edge_bus_->native_connection());
    ASSERT_TRUE(js.ok()) << js.status();
    js_ = std::move(*js);
    auto log = services::BrokerEventLog::Create(*broker_bus_);
    ASSERT_TRUE(log.ok()) << log.status();
    log_ = std::move(*log);
  }
  void TearDown() override {
    edge_.reset();
    broker_.reset();
    log_.reset();
  }

  void StartBrokerWithLog(BrokerOptions options = Options()) {
    options.event_log = log_.get();
    broker_ = StartBroker(*broker_bus_, std::move(options));
    ASSERT_NE(broker_, nullptr);
    // The server has the broker's subscriptions (sent before this round trip
    // on the same connection) before any edge speaks.
    Flush(*broker_bus_);
  }

  // Edge e1 with socket "a" in room "room1" of `nsp`, announcing recovery
  // for `announced`, known to the broker.
  void StartEdge(const std::string& nsp, std::vector<std::string> announced) {
    edge_ = std::make_unique<FakeEdge>(*edge_bus_, "e1");
    edge_->ServeSnapshots();
    Flush(*edge_bus_);  // its snapshot subscription is in place
    socket_ = edge_->Connect("a", nsp);
    edge_->Join(socket_, "room1");
    edge_->SetRecoveryNamespaces(announced);
    edge_->Heartbeat();
    ASSERT_TRUE(Eventually([&] { return ListedIds(*broker_).size() == 1; }));
    for (const std::string& n : announced) {
      ASSERT_TRUE(Eventually([&] { return broker_->Recoverable(n); })) << n;
    }
  }

  void CreateLog(const std::string& nsp) {
    bus::StreamConfig config;
    config.name = bus::LogStream(nsp);
    config.subject = bus::LogSubject(nsp);
    config.storage = bus::JsStorage::kMemory;
    ASSERT_TRUE(bus::EnsureStream(*js_, config).ok());
  }

  uint64_t LastSeq(const std::string& nsp) {
    auto bounds = bus::GetStreamBounds(*js_, bus::LogStream(nsp));
    EXPECT_TRUE(bounds.ok()) << bounds.status();
    return bounds.ok() ? bounds->last_seq : 0;
  }

  static v1::PublishRequest ToRoom(const std::string& nsp, const std::string& event) {
    v1::PublishRequest request;
    request.mutable_target()->set_namespace_(nsp);
    request.mutable_target()->add_rooms("room1");
    request.set_event(event);
    *request.add_args() = Json(R"({"n":1})");
    return request;
  }

  // Records what arrives on room1's and the namespace's core subjects;
  // subscribed (the server has the subscriptions) before it returns. Not a
  // wildcard over sb.v1.>: that would also answer the log subject, and a
  // publish to a log without a stream would then wait for an ack instead of
  // finding no responder.
  class CoreTap {
   public:
    CoreTap(bus::Bus& bus, const std::string& nsp) {
      for (const std::string& subject :
           {bus::RoomSubject(nsp, "room1"), bus::NamespaceSubject(nsp)}) {
        auto sub = bus.Subscribe(subject, [this](bus::Message message) {
          std::lock_guard lock(mu_);
          messages_.push_back(std::move(message));
        });
        EXPECT_TRUE(sub.ok()) << sub.status();
        if (sub.ok()) subs_.push_back(std::move(*sub));
      }
      Flush(bus);
    }
    std::vector<bus::Message> Take() {
      std::lock_guard lock(mu_);
      return std::exchange(messages_, {});
    }

   private:
    std::mutex mu_;
    std::vector<bus::Message> messages_;
    std::vector<bus::SubscriptionPtr> subs_;
  };
  std::unique_ptr<CoreTap> Tap(const std::string& nsp) {
    return std::make_unique<CoreTap>(*edge_bus_, nsp);
  }

  bus::testing::JetStreamServer server_;
  std::unique_ptr<bus::NatsBus> broker_bus_, edge_bus_;
  std::unique_ptr<bus::JetStream> js_;
  std::unique_ptr<services::BrokerEventLog> log_;
  std::unique_ptr<Broker> broker_;
  std::unique_ptr<FakeEdge> edge_;
  std::string socket_;
};

TEST_F(BrokerRecoveryLogTest, NatsAnAnnouncedNamespacesPublishIsStoredOnceAndNotOnCoreSubjects) {
  StartBrokerWithLog();
  CreateLog("/r");
  StartEdge("/r", {"/r"});
  auto tap = Tap("/r");

  PublishWaiter waiter;
  std::optional<uint64_t> seq_at_answer;
  broker_->Publish(ToRoom("/r", "hello"), [&](absl::StatusOr<v1::PublishResponse> r) {
    // Answered after the store's ack: the message is in the stream by now.
    seq_at_answer = LastSeq("/r");
    waiter.Done()(std::move(r));
  });
  ASSERT_TRUE(waiter.Wait());
  ASSERT_TRUE(waiter.result->ok()) << waiter.result->status();
  EXPECT_EQ((*waiter.result)->recipients(), 1u);
  EXPECT_EQ(seq_at_answer, 1u);

  auto range = bus::ReadRange(*js_, bus::LogStream("/r"), bus::LogSubject("/r"), 0, LastSeq("/r"));
  ASSERT_TRUE(range.ok()) << range.status();
  ASSERT_EQ(range->messages.size(), 1u);
  v1::EdgeMessage message;
  ASSERT_TRUE(message.ParseFromString(range->messages[0].payload));
  ASSERT_TRUE(message.has_delivery());
  EXPECT_EQ(message.delivery().event(), "hello");
  EXPECT_EQ(message.delivery().target().namespace_(), "/r");
  EXPECT_EQ(message.delivery().target().rooms(0), "room1");
  EXPECT_EQ(message.delivery().id(), "b1:1");

  std::this_thread::sleep_for(kQuiet);
  EXPECT_TRUE(tap->Take().empty()) << "the recoverable publish also went on a core subject";
  EXPECT_EQ(broker_->counters().log_stored, 1u);
  EXPECT_EQ(broker_->counters().log_fallback, 0u);
  EXPECT_EQ(Stats(*broker_).recovery().log_appends(), 1u);
}

TEST_F(BrokerRecoveryLogTest, NatsPublishesAreStoredInOrderEachAnsweredAfterItsAck) {
  StartBrokerWithLog();
  CreateLog("/r");
  StartEdge("/r", {"/r"});
  constexpr int kCount = 20;
  std::vector<PublishWaiter> waiters(kCount);
  std::vector<uint64_t> seen(kCount, 0);
  for (int i = 0; i < kCount; ++i) {
    broker_->Publish(ToRoom("/r", absl::StrCat("e", i)),
                     [&, i](absl::StatusOr<v1::PublishResponse> r) {
                       seen[i] = LastSeq("/r");
                       waiters[i].Done()(std::move(r));
                     });
  }
  for (int i = 0; i < kCount; ++i) {
    ASSERT_TRUE(waiters[i].Wait()) << i;
    ASSERT_TRUE(waiters[i].result->ok()) << waiters[i].result->status();
    EXPECT_GE(seen[i], static_cast<uint64_t>(i + 1)) << "answered before its ack: " << i;
  }
  auto range = bus::ReadRange(*js_, bus::LogStream("/r"), bus::LogSubject("/r"), 0, LastSeq("/r"));
  ASSERT_TRUE(range.ok()) << range.status();
  ASSERT_EQ(range->messages.size(), static_cast<size_t>(kCount));
  for (int i = 0; i < kCount; ++i) {
    v1::EdgeMessage message;
    ASSERT_TRUE(message.ParseFromString(range->messages[i].payload));
    EXPECT_EQ(message.delivery().event(), absl::StrCat("e", i));
  }
}

TEST_F(BrokerRecoveryLogTest, NatsANamespaceNobodyAnnouncesGoesOnCoreSubjects) {
  StartBrokerWithLog();
  CreateLog("/n");  // a log exists, but no edge runs recovery for /n
  StartEdge("/n", {"/r"});
  auto tap = Tap("/n");
  auto response = PublishNow(*broker_, ToRoom("/n", "plain"));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->recipients(), 1u);
  std::vector<bus::Message> sent;
  ASSERT_TRUE(Eventually([&] {
    for (auto& m : tap->Take()) sent.push_back(std::move(m));
    return !sent.empty();
  }));
  EXPECT_EQ(sent[0].subject, bus::RoomSubject("/n", "room1"));
  EXPECT_EQ(LastSeq("/n"), 0u);
  EXPECT_EQ(broker_->counters().log_stored, 0u);
}

TEST_F(BrokerRecoveryLogTest, NatsVolatileAndAckedPublishesGoOnCoreSubjects) {
  StartBrokerWithLog();
  CreateLog("/r");
  StartEdge("/r", {"/r"});
  auto tap = Tap("/r");

  v1::PublishRequest volatile_request = ToRoom("/r", "volatile");
  volatile_request.set_volatile_(true);
  auto response = PublishNow(*broker_, volatile_request);
  ASSERT_TRUE(response.ok()) << response.status();

  // Nobody reports the ack: answered at the deadline.
  v1::PublishRequest acked = ToRoom("/r", "acked");
  acked.set_ack_timeout_ms(100);
  PublishWaiter waiter;
  broker_->Publish(acked, waiter.Done());
  ASSERT_TRUE(waiter.Wait());
  ASSERT_TRUE(waiter.result->ok()) << waiter.result->status();

  std::set<std::string> events;
  ASSERT_TRUE(Eventually([&] {
    for (const auto& m : tap->Take()) {
      v1::EdgeMessage message;
      EXPECT_EQ(m.subject, bus::RoomSubject("/r", "room1"));
      if (message.ParseFromString(m.payload)) events.insert(message.delivery().event());
    }
    return events.size() == 2;
  }));
  EXPECT_EQ(events, (std::set<std::string>{"volatile", "acked"}));
  EXPECT_EQ(LastSeq("/r"), 0u);
  EXPECT_EQ(broker_->counters().log_stored, 0u);
}

TEST_F(BrokerRecoveryLogTest, NatsAnnouncedWithoutAStreamFallsBackToCoreSubjectsAndIsCounted) {
  StartBrokerWithLog();
  StartEdge("/r", {"/r"});  // no stream for /r
  auto tap = Tap("/r");
  PublishWaiter waiter;
  broker_->Publish(ToRoom("/r", "early"), waiter.Done());
  ASSERT_TRUE(waiter.Wait());
  ASSERT_TRUE(waiter.result->ok()) << waiter.result->status();
  EXPECT_EQ((*waiter.result)->recipients(), 1u);
  std::vector<bus::Message> sent;
  ASSERT_TRUE(Eventually([&] {
    for (auto& m : tap->Take()) sent.push_back(std::move(m));
    return !sent.empty();
  }));
  EXPECT_EQ(sent[0].subject, bus::RoomSubject("/r", "room1"));
  EXPECT_EQ(broker_->counters().log_fallback, 1u);
  EXPECT_EQ(broker_->counters().log_stored, 0u);
  EXPECT_EQ(Stats(*broker_).recovery().log_fallbacks(), 1u);

  // Once the edge has made the stream, the log takes them.
  CreateLog("/r");
  PublishWaiter later;
  broker_->Publish(ToRoom("/r", "later"), later.Done());
  ASSERT_TRUE(later.Wait());
  ASSERT_TRUE(later.result->ok()) << later.result->status();
  EXPECT_EQ(broker_->counters().log_stored, 1u);
  EXPECT_EQ(LastSeq("/r"), 1u);
}

TEST_F(BrokerRecoveryLogTest, NatsTheAnnouncementGoesWithTheEdge) {
  BrokerOptions options = Options();
  options.edge_timeout = 300ms;
  StartBrokerWithLog(options);
  CreateLog("/r");
  StartEdge("/r", {"/r"});
  // Silent now: expires, and with it the announcement.
  ASSERT_TRUE(Eventually([&] { return !broker_->Recoverable("/r"); }));
  EXPECT_EQ(broker_->counters().edges_expired, 1u);
  auto tap = Tap("/r");
  auto response = PublishNow(*broker_, ToRoom("/r", "after"));
  ASSERT_TRUE(response.ok()) << response.status();
  std::vector<bus::Message> sent;
  ASSERT_TRUE(Eventually([&] {
    for (auto& m : tap->Take()) sent.push_back(std::move(m));
    return !sent.empty();
  }));
  EXPECT_EQ(sent[0].subject, bus::RoomSubject("/r", "room1"));
  EXPECT_EQ(LastSeq("/r"), 0u);
}

// PublishStream over gRPC: publishes answered later by the log (not before
// Publish returns) are sent on without waiting for each ack, more of them
// than fit in the stream's window of appends in flight; every one is
// stored, in the order of the stream.
TEST_F(BrokerRecoveryLogTest, NatsPublishStreamPipelinesAppendsInOrder) {
  StartBrokerWithLog();
  CreateLog("/r");
  StartEdge("/r", {"/r"});
  auto api = services::ApiServer::Start(*broker_, {.host = "127.0.0.1", .port = 0});
  ASSERT_TRUE(api.ok()) << api.status();
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*api)->port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = v1::Switchboard::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  v1::PublishStreamResponse response;
  auto writer = stub->PublishStream(&ctx, &response);
  constexpr int kCount = 1000;
  for (int i = 0; i < kCount; ++i) ASSERT_TRUE(writer->Write(ToRoom("/r", absl::StrCat("s", i))));
  ASSERT_TRUE(writer->WritesDone());
  grpc::Status status = writer->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.accepted(), static_cast<uint64_t>(kCount));
  EXPECT_EQ(response.recipients(), static_cast<uint64_t>(kCount));
  auto range = bus::ReadRange(*js_, bus::LogStream("/r"), bus::LogSubject("/r"), 0, LastSeq("/r"));
  ASSERT_TRUE(range.ok()) << range.status();
  ASSERT_EQ(range->messages.size(), static_cast<size_t>(kCount));
  for (int i = 0; i < kCount; ++i) {
    v1::EdgeMessage message;
    ASSERT_TRUE(message.ParseFromString(range->messages[i].payload));
    EXPECT_EQ(message.delivery().event(), absl::StrCat("s", i));
  }
  (*api)->Shutdown(std::chrono::milliseconds(1000));
}

// A broker without JetStream (RecoveryLog without a log, as BrokerProcess
// makes it then) warns once, however many namespaces edges announce.
TEST(BrokerRecoveryWithoutJetStreamTest, NatsWarnsOnceWhenEdgesAnnounceRecoveryNamespaces) {
  bus::testing::NatsServer server;  // no -js
  ASSERT_TRUE(server.Start());
  bus::NatsBus::Options bus_options;
  bus_options.urls = {server.url()};
  auto broker_bus = bus::NatsBus::Connect(bus_options);
  auto edge_bus = bus::NatsBus::Connect(bus_options);
  ASSERT_TRUE(broker_bus.ok() && edge_bus.ok());
  auto log = services::BrokerEventLog::Create(**broker_bus);
  ASSERT_EQ(log.status().code(), absl::StatusCode::kFailedPrecondition) << log.status();

  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(100);
  auto logger = std::make_shared<spdlog::logger>("recovery-test", sink);
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(logger);
  struct Restore {
    std::shared_ptr<spdlog::logger> previous;
    ~Restore() { spdlog::set_default_logger(previous); }
  } restore{previous};

  services::ProcessFlags flags;
  flags.broker_id = "b1";
  flags.grpc_listen = "127.0.0.1:0";
  services::Health health(broker_bus->get(), 0);
  services::RecoveryLog recovery;
  recovery.warn_without_log = true;
  auto service = services::BrokerService::Start(**broker_bus, flags, "test broker", nullptr, health,
                                                nullptr, std::move(recovery));
  ASSERT_TRUE(service.ok()) << service.status();
  Flush(**broker_bus);

  auto warnings = [&] {
    int n = 0;
    for (const std::string& line : sink->last_formatted()) {
      if (line.find("has no JetStream") != std::string::npos) ++n;
    }
    return n;
  };
  FakeEdge e1(**edge_bus, "e1");
  e1.SetRecoveryNamespaces({"/r", "/s"});
  e1.Heartbeat();
  FakeEdge e2(**edge_bus, "e2");
  e2.SetRecoveryNamespaces({"/t"});
  e2.Heartbeat();
  ASSERT_TRUE(Eventually([&] { return warnings() >= 1; }));
  std::this_thread::sleep_for(kQuiet);
  EXPECT_EQ(warnings(), 1);
}

}  // namespace
}  // namespace switchboard::broker
