// One contract, two buses: every test runs against InProcessBus and against
// NatsBus connected to a real nats-server started on a free loopback port.

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <memory>
#include <random>
#include <set>
#include <thread>

#include "bus/inproc_bus.h"
#include "bus/nats_bus.h"
#include "bus/subject.h"
#include "tests/bus/collector.h"
#include "tests/bus/nats_server.h"

namespace switchboard::bus {
namespace {

using testing::Collector;
using testing::Eventually;
using testing::kWait;
using testing::NatsServer;

enum class Kind { kInProcess, kNats };

std::string KindName(const ::testing::TestParamInfo<Kind>& info) {
  return info.param == Kind::kInProcess ? "InProcess" : "Nats";
}

class BusContractTest : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    if (GetParam() == Kind::kInProcess) {
      bus_ = std::make_unique<InProcessBus>();
      return;
    }
    server_ = std::make_unique<NatsServer>();
    ASSERT_TRUE(server_->Start()) << "nats-server did not start on " << server_->url();
    NatsBus::Options options;
    options.urls = {server_->url()};
    options.name = "contract-test";
    auto bus = NatsBus::Connect(options);
    ASSERT_TRUE(bus.ok()) << bus.status();
    bus_ = std::move(*bus);
  }
  void TearDown() override {
    bus_.reset();
    if (server_) server_->Stop();
  }

  SubscriptionPtr Sub(std::string_view pattern, Collector& c, std::string_view queue = {}) {
    auto sub = bus_->Subscribe(pattern, c.handler(), queue);
    EXPECT_TRUE(sub.ok()) << sub.status();
    return sub.ok() ? std::move(*sub) : nullptr;
  }

  // Sends a request and waits (bounded) for its outcome.
  absl::StatusOr<Message> RequestAndWait(std::string_view subject, std::string_view payload,
                                         std::chrono::milliseconds timeout) {
    auto promise = std::make_shared<std::promise<absl::StatusOr<Message>>>();
    auto future = promise->get_future();
    bus_->Request(subject, payload, timeout,
                  [promise](absl::StatusOr<Message> r) { promise->set_value(std::move(r)); });
    if (future.wait_for(timeout + kWait) != std::future_status::ready) {
      return absl::InternalError("request callback never ran");
    }
    return future.get();
  }

  std::unique_ptr<NatsServer> server_;
  BusPtr bus_;
};

TEST_P(BusContractTest, ConnectedAfterSetUp) { EXPECT_TRUE(bus_->connected()); }

TEST_P(BusContractTest, ExactSubject) {
  Collector c;
  auto sub = Sub("room.a", c);
  ASSERT_TRUE(bus_->Publish("room.b", "no").ok());
  ASSERT_TRUE(bus_->Publish("room.a.x", "no").ok());
  ASSERT_TRUE(bus_->Publish("room", "no").ok());
  ASSERT_TRUE(bus_->Publish("room.a", "yes").ok());  // sentinel: comes last
  ASSERT_TRUE(c.WaitFor(1));
  auto msgs = c.messages();
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].subject, "room.a");
  EXPECT_EQ(msgs[0].payload, "yes");
  EXPECT_EQ(msgs[0].reply_to, "");
}

TEST_P(BusContractTest, Wildcards) {
  Collector star, tail;
  auto s1 = Sub("r.*.x", star);
  auto s2 = Sub("r.>", tail);
  for (const char* subject : {"r.a.x", "r.a.b.x", "r.a", "r", "q.a.x"}) {
    ASSERT_TRUE(bus_->Publish(subject, subject).ok());
  }
  ASSERT_TRUE(bus_->Publish("r.end.x", "end").ok());
  ASSERT_TRUE(star.WaitFor(2));
  ASSERT_TRUE(tail.WaitFor(4));
  EXPECT_EQ(star.payloads(), (std::vector<std::string>{"r.a.x", "end"}));
  EXPECT_EQ(tail.payloads(), (std::vector<std::string>{"r.a.x", "r.a.b.x", "r.a", "end"}));
}

TEST_P(BusContractTest, WildcardPublishIsRefused) {
  EXPECT_EQ(bus_->Publish("a.*", "x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bus_->Publish("a.>", "x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bus_->Publish("a..b", "x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(bus_->Subscribe("a.>.b", [](Message) {}).ok());
}

TEST_P(BusContractTest, QueueGroupDeliversEachMessageOnceAcrossTheGroup) {
  constexpr int kN = 50;
  Collector q1, q2, plain;
  auto s1 = Sub("work.*", q1, "workers");
  auto s2 = Sub("work.*", q2, "workers");
  auto s3 = Sub("work.*", plain);
  for (int i = 0; i < kN; ++i) {
    ASSERT_TRUE(bus_->Publish("work.item", std::to_string(i)).ok());
  }
  ASSERT_TRUE(plain.WaitFor(kN));
  ASSERT_TRUE(Eventually([&] { return q1.size() + q2.size() >= kN; }));
  std::multiset<std::string> group;
  for (auto& p : q1.payloads()) group.insert(p);
  for (auto& p : q2.payloads()) group.insert(p);
  std::multiset<std::string> expected;
  for (int i = 0; i < kN; ++i) expected.insert(std::to_string(i));
  EXPECT_EQ(group, expected);
  EXPECT_EQ(plain.size(), static_cast<size_t>(kN));
  if (GetParam() == Kind::kInProcess) {  // round robin
    EXPECT_EQ(q1.size(), static_cast<size_t>(kN / 2));
  }
}

TEST_P(BusContractTest, UnsubscribeStopsDelivery) {
  Collector a, b;
  auto sa = Sub("u", a);
  auto sb = Sub("u", b);
  ASSERT_TRUE(bus_->Publish("u", "1").ok());
  ASSERT_TRUE(a.WaitFor(1));
  ASSERT_TRUE(b.WaitFor(1));
  sa->Unsubscribe();
  ASSERT_TRUE(bus_->Publish("u", "2").ok());
  ASSERT_TRUE(b.WaitFor(2));
  sa.reset();  // destroying after Unsubscribe is fine
  ASSERT_TRUE(bus_->Publish("u", "3").ok());
  ASSERT_TRUE(b.WaitFor(3));
  EXPECT_EQ(a.payloads(), (std::vector<std::string>{"1"}));
}

TEST_P(BusContractTest, NoHandlerCallStartsAfterUnsubscribeReturns) {
  std::atomic<bool> unsubscribed{false};
  std::atomic<int> calls{0}, late{0};
  auto sub = bus_->Subscribe("flood", [&](Message) {
    if (unsubscribed.load()) ++late;
    ++calls;
  });
  ASSERT_TRUE(sub.ok());
  std::atomic<bool> stop{false};
  std::thread publisher([&] {
    while (!stop.load()) {
      (void)bus_->Publish("flood", "x");
      std::this_thread::yield();
    }
  });
  ASSERT_TRUE(Eventually([&] { return calls.load() > 20; }));
  (*sub)->Unsubscribe();
  unsubscribed = true;
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  stop = true;
  publisher.join();
  EXPECT_EQ(late.load(), 0);
}

TEST_P(BusContractTest, UnsubscribeFromInsideTheHandler) {
  std::atomic<int> calls{0};
  SubscriptionPtr sub;
  std::promise<void> subscribed;
  std::shared_future<void> ready = subscribed.get_future().share();
  auto s = bus_->Subscribe("self", [&, ready](Message) {
    ready.wait();
    sub->Unsubscribe();  // must not deadlock
    ++calls;
  });
  ASSERT_TRUE(s.ok());
  sub = std::move(*s);
  subscribed.set_value();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(bus_->Publish("self", "x").ok());
  Collector sentinel;
  auto s2 = Sub("self", sentinel);
  ASSERT_TRUE(bus_->Publish("self", "end").ok());
  ASSERT_TRUE(sentinel.WaitFor(1));
  ASSERT_TRUE(Eventually([&] { return calls.load() >= 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(calls.load(), 1);
}

TEST_P(BusContractTest, RequestReply) {
  auto responder = bus_->Subscribe("svc.echo", [this](Message m) {
    ASSERT_FALSE(m.reply_to.empty());
    EXPECT_TRUE(bus_->Publish(m.reply_to, m.payload + "!").ok());
  });
  ASSERT_TRUE(responder.ok());
  for (int i = 0; i < 3; ++i) {
    auto reply = RequestAndWait("svc.echo", "ping" + std::to_string(i), std::chrono::seconds(5));
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(reply->payload, "ping" + std::to_string(i) + "!");
  }
}

TEST_P(BusContractTest, RequestRepliesOnTheGivenExecutor) {
  auto responder = bus_->Subscribe("svc.exec", [this](Message m) {
    (void)bus_->Publish(m.reply_to, "ok");
  });
  ASSERT_TRUE(responder.ok());
  std::atomic<int> posted{0};
  auto promise = std::make_shared<std::promise<std::string>>();
  auto future = promise->get_future();
  bus_->Request(
      "svc.exec", "", std::chrono::seconds(5),
      [promise](absl::StatusOr<Message> r) { promise->set_value(r.ok() ? r->payload : "error"); },
      [&posted](std::function<void()> fn) {
        ++posted;
        fn();
      });
  ASSERT_EQ(future.wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(future.get(), "ok");
  EXPECT_EQ(posted.load(), 1);
}

TEST_P(BusContractTest, RequestTimesOut) {
  Collector silent;
  auto sub = Sub("svc.silent", silent);
  auto start = std::chrono::steady_clock::now();
  auto reply = RequestAndWait("svc.silent", "hello?", std::chrono::milliseconds(200));
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kDeadlineExceeded) << reply.status();
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(200));
  EXPECT_TRUE(silent.WaitFor(1));
}

TEST_P(BusContractTest, RequestWithoutRespondersIsNotFound) {
  auto reply = RequestAndWait("svc.nobody", "hello?", std::chrono::seconds(3));
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kNotFound) << reply.status();
}

TEST_P(BusContractTest, BinaryPayloads) {
  Collector c;
  auto sub = Sub("bin", c);
  std::string nul("\0\x01\xff\0\r\n.*>", 10);
  std::string big(200 * 1024, '\0');
  std::mt19937 rng(7);
  for (auto& ch : big) ch = static_cast<char>(rng());
  ASSERT_TRUE(bus_->Publish("bin", nul).ok());
  ASSERT_TRUE(bus_->Publish("bin", "").ok());
  ASSERT_TRUE(bus_->Publish("bin", big).ok());
  ASSERT_TRUE(c.WaitFor(3));
  auto p = c.payloads();
  EXPECT_EQ(p[0], nul);
  EXPECT_EQ(p[1], "");
  EXPECT_TRUE(p[2] == big);
}

TEST_P(BusContractTest, EncodedTokensForOddNamesRoute) {
  const std::vector<std::string> names = {"",  "a.b",  "with space", "*", ">",
                                          "a.*.>", "ünïcødé", std::string("\0x", 2)};
  std::vector<std::unique_ptr<Collector>> collectors;
  std::vector<SubscriptionPtr> subs;
  for (const auto& name : names) {
    collectors.push_back(std::make_unique<Collector>());
    subs.push_back(Sub("ns.room." + EncodeToken(name), *collectors.back()));
  }
  for (const auto& name : names) {
    ASSERT_TRUE(bus_->Publish("ns.room." + EncodeToken(name), name).ok());
  }
  for (size_t i = 0; i < names.size(); ++i) {
    ASSERT_TRUE(collectors[i]->WaitFor(1));
  }
  // A sentinel through a wildcard subscription shows nothing else is coming.
  Collector all;
  auto wildcard = Sub("ns.room.*", all);
  ASSERT_TRUE(bus_->Publish("ns.room." + EncodeToken("end"), "end").ok());
  ASSERT_TRUE(all.WaitFor(1));
  for (size_t i = 0; i < names.size(); ++i) {
    auto msgs = collectors[i]->messages();
    ASSERT_EQ(msgs.size(), 1u) << i;
    EXPECT_EQ(msgs[0].payload, names[i]);
    std::string_view token = msgs[0].subject;
    token.remove_prefix(std::string_view("ns.room.").size());
    auto decoded = DecodeToken(token);
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(*decoded, names[i]);
  }
}

TEST_P(BusContractTest, HandlersRunOnTheirExecutor) {
  std::atomic<int> posted{0};
  Collector c;
  auto sub = bus_->Subscribe("exec", c.handler(), {}, [&posted](std::function<void()> fn) {
    ++posted;
    std::thread(std::move(fn)).join();
  });
  ASSERT_TRUE(sub.ok());
  ASSERT_TRUE(bus_->Publish("exec", "1").ok());
  ASSERT_TRUE(bus_->Publish("exec", "2").ok());
  ASSERT_TRUE(c.WaitFor(2));
  EXPECT_EQ(posted.load(), 2);
}

INSTANTIATE_TEST_SUITE_P(Contract, BusContractTest,
                         ::testing::Values(Kind::kInProcess, Kind::kNats), KindName);

}  // namespace
}  // namespace switchboard::bus
