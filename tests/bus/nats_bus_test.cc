// NatsBus behaviour that only a real server shows: outages and reconnects.

#include "bus/nats_bus.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <mutex>
#include <string>
#include <vector>

#include "tests/bus/collector.h"
#include "tests/bus/nats_server.h"

namespace switchboard::bus {
namespace {

using testing::Collector;
using testing::Eventually;
using testing::kWait;
using testing::NatsServer;

TEST(NatsBusTest, ConnectWithoutServerIsUnavailable) {
  NatsBus::Options options;
  options.urls = {"nats://127.0.0.1:" + std::to_string(NatsServer::FreePort())};
  options.connect_timeout = std::chrono::milliseconds(500);
  auto bus = NatsBus::Connect(options);
  ASSERT_FALSE(bus.ok());
  EXPECT_EQ(bus.status().code(), absl::StatusCode::kUnavailable) << bus.status();
}

TEST(NatsBusTest, TwoConnectionsShareSubjectsAndQueueGroups) {
  NatsServer server;
  ASSERT_TRUE(server.Start());
  NatsBus::Options options;
  options.urls = {server.url()};
  auto a = NatsBus::Connect(options);
  auto b = NatsBus::Connect(options);
  ASSERT_TRUE(a.ok() && b.ok());
  Collector on_b;
  auto sub = (*b)->Subscribe("cross.*", on_b.handler());
  ASSERT_TRUE(sub.ok());
  // The subscription reaches the server asynchronously: publish until seen.
  ASSERT_TRUE(Eventually([&] {
    (void)(*a)->Publish("cross.x", "hi");
    return on_b.WaitFor(1, std::chrono::milliseconds(50));
  }));
  // A request from A answered by B.
  auto responder = (*b)->Subscribe("cross.svc", [&](Message m) {
    (void)(*b)->Publish(m.reply_to, "pong");
  });
  ASSERT_TRUE(responder.ok());
  absl::StatusOr<Message> reply = absl::UnknownError("none");
  ASSERT_TRUE(Eventually([&] {
    std::promise<absl::StatusOr<Message>> p;
    auto f = p.get_future();
    (*a)->Request("cross.svc", "ping", std::chrono::milliseconds(500),
                  [&p](absl::StatusOr<Message> r) { p.set_value(std::move(r)); });
    if (f.wait_for(kWait) != std::future_status::ready) return false;
    reply = f.get();
    return reply.ok();
  }));
  EXPECT_EQ(reply->payload, "pong");
}

TEST(NatsBusTest, ReconnectsAndResubscribesAfterServerRestart) {
  NatsServer server;
  ASSERT_TRUE(server.Start());
  NatsBus::Options options;
  options.urls = {server.url()};
  options.reconnect_wait = std::chrono::milliseconds(100);
  options.max_reconnect = -1;
  auto bus = NatsBus::Connect(options);
  ASSERT_TRUE(bus.ok()) << bus.status();
  std::mutex mu;
  std::vector<ConnectionState> states;
  (*bus)->SetStateCallback([&](ConnectionState s) {
    std::lock_guard<std::mutex> lock(mu);
    states.push_back(s);
  });
  auto has_state = [&](ConnectionState s) {
    std::lock_guard<std::mutex> lock(mu);
    return std::find(states.begin(), states.end(), s) != states.end();
  };

  Collector c;
  auto sub = (*bus)->Subscribe("live.>", c.handler());
  ASSERT_TRUE(sub.ok());
  ASSERT_TRUE((*bus)->Publish("live.a", "before").ok());
  ASSERT_TRUE(c.WaitFor(1));

  server.Stop();
  ASSERT_TRUE(Eventually([&] { return !(*bus)->connected(); }));
  ASSERT_TRUE(Eventually([&] { return has_state(ConnectionState::kDisconnected); }));
  // While down: publishes are refused (not buffered), requests fail fast.
  EXPECT_EQ((*bus)->Publish("live.a", "during").code(), absl::StatusCode::kUnavailable);
  std::promise<absl::Status> req;
  auto req_done = req.get_future();
  (*bus)->Request("live.svc", "x", std::chrono::seconds(5),
                  [&req](absl::StatusOr<Message> r) { req.set_value(r.status()); });
  ASSERT_EQ(req_done.wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(req_done.get().code(), absl::StatusCode::kUnavailable);

  ASSERT_TRUE(server.Start());  // same port
  ASSERT_TRUE(Eventually([&] { return (*bus)->connected(); }));
  ASSERT_TRUE(Eventually([&] { return has_state(ConnectionState::kConnected); }));
  // NATS.c re-sent the subscription before anything we publish now.
  ASSERT_TRUE((*bus)->Publish("live.b", "after").ok());
  ASSERT_TRUE(c.WaitFor(2));
  EXPECT_EQ(c.payloads(), (std::vector<std::string>{"before", "after"}));

  // Another connection's publish reaches it too: the server knows the sub.
  auto other = NatsBus::Connect(options);
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE((*other)->Publish("live.c", "from-other").ok());
  ASSERT_TRUE(c.WaitFor(3));
  (*bus)->SetStateCallback(nullptr);
}

TEST(NatsBusTest, SubscriptionsMayOutliveTheBus) {
  NatsServer server;
  ASSERT_TRUE(server.Start());
  NatsBus::Options options;
  options.urls = {server.url()};
  auto bus = NatsBus::Connect(options);
  ASSERT_TRUE(bus.ok());
  Collector c;
  auto sub = (*bus)->Subscribe("x", c.handler());
  ASSERT_TRUE(sub.ok());
  bus->reset();  // drains and closes
  (*sub)->Unsubscribe();
  sub->reset();
}

// A payload over the server's max_payload (read at connect) is refused before
// it reaches the wire (the server would close the connection), with the
// limit named, and counted; one at the limit goes through.
TEST(NatsBusTest, PayloadOverTheServersMaxPayloadIsInvalidArgument) {
  const std::string config = NatsServer::WriteConfig("max_payload: 65536\n");
  ASSERT_FALSE(config.empty());
  NatsServer server({"-c", config});
  const bool started = server.Start();
  unlink(config.c_str());  // read at start
  ASSERT_TRUE(started);
  NatsBus::Options options;
  options.urls = {server.url()};
  auto bus = NatsBus::Connect(options);
  ASSERT_TRUE(bus.ok()) << bus.status();
  EXPECT_EQ((*bus)->max_payload(), 65536u);
  Collector c;
  auto sub = (*bus)->Subscribe("big", c.handler());
  ASSERT_TRUE(sub.ok());
  ASSERT_TRUE(Eventually([&] {
    (void)(*bus)->Publish("big", "small");
    return c.WaitFor(1, std::chrono::milliseconds(50));
  }));
  const size_t before = c.size();

  absl::Status over = (*bus)->Publish("big", std::string(65537, 'x'));
  EXPECT_EQ(over.code(), absl::StatusCode::kInvalidArgument) << over;
  EXPECT_NE(over.message().find("max_payload of 65536 bytes"), std::string_view::npos) << over;
  std::promise<absl::Status> req;
  auto req_done = req.get_future();
  (*bus)->Request("big", std::string(70000, 'x'), std::chrono::seconds(5),
                  [&req](absl::StatusOr<Message> r) { req.set_value(r.status()); });
  ASSERT_EQ(req_done.wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(req_done.get().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*bus)->stats().too_large, 2u);

  ASSERT_TRUE((*bus)->Publish("big", std::string(65536, 'y')).ok());
  ASSERT_TRUE(c.WaitFor(before + 1));
  EXPECT_EQ(c.messages().back().payload.size(), 65536u);
  EXPECT_TRUE((*bus)->connected());
}

// Messages queued for a handler that does not keep up count against
// max_pending_bytes until it is done with them: past the bound the bus drops
// them (counted) instead of queueing without bound; once the handler catches
// up, new messages get through again.
TEST(NatsBusTest, DeliveriesOverThePendingByteBoundAreDroppedAndCounted) {
  NatsServer server;
  ASSERT_TRUE(server.Start());
  NatsBus::Options options;
  options.urls = {server.url()};
  auto publisher = NatsBus::Connect(options);
  options.max_pending_bytes = 1 << 20;
  auto receiver = NatsBus::Connect(options);
  ASSERT_TRUE(publisher.ok() && receiver.ok());

  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> big{0};
  Collector small;
  Handler collect = small.handler();
  auto sub = (*receiver)->Subscribe("flood", [&](Message m) {
    if (m.payload == "block") released.wait();  // the handler falls behind
    if (m.payload.size() > 1000) {
      big.fetch_add(1);
    } else {
      collect(std::move(m));
    }
  });
  ASSERT_TRUE(sub.ok());
  ASSERT_TRUE(Eventually([&] {
    (void)(*publisher)->Publish("flood", "ping");
    return small.WaitFor(1, std::chrono::milliseconds(50));
  }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // stray pings in
  const uint64_t out_before = (*publisher)->stats().messages_out;
  const uint64_t in_before = (*receiver)->stats().messages_in;

  ASSERT_TRUE((*publisher)->Publish("flood", "block").ok());
  constexpr int kBig = 50;  // 100 KB each: 5 MB against a 1 MB bound
  const std::string payload(100 * 1024, 'x');
  for (int i = 0; i < kBig; ++i) ASSERT_TRUE((*publisher)->Publish("flood", payload).ok());
  // Everything arrived (NATS.c counts what it reads) while the handler waits.
  const uint64_t sent = (*publisher)->stats().messages_out - out_before;
  ASSERT_TRUE(Eventually([&] { return (*receiver)->stats().messages_in - in_before >= sent; }))
      << (*receiver)->stats().messages_in - in_before << " of " << sent << ", dropped "
      << (*receiver)->stats().dropped << ", slow consumer " << (*receiver)->stats().slow_consumer;
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // through OnMessage
  release.set_value();

  // What fit in the bound (ten, about) is delivered, in order, before
  // "after" (small: it fits); the rest was dropped and counted (by us, or by
  // NATS.c's own queue, bounded alike, as a slow consumer), not queued.
  ASSERT_TRUE((*publisher)->Publish("flood", "after").ok());
  ASSERT_TRUE(Eventually([&] {
    auto payloads = small.payloads();
    return std::find(payloads.begin(), payloads.end(), "after") != payloads.end();
  }));
  const Bus::Stats stats = (*receiver)->stats();
  EXPECT_GE(big.load(), 1);
  EXPECT_LE(big.load(), 10);
  EXPECT_GE(stats.dropped, 30u);
  EXPECT_LE(stats.dropped + static_cast<uint64_t>(big.load()), static_cast<uint64_t>(kBig));
  if (stats.dropped + big.load() < static_cast<uint64_t>(kBig)) {
    EXPECT_GT(stats.slow_consumer, 0u);
  }

  // Caught up: big messages get through again.
  const int before = big.load();
  ASSERT_TRUE((*publisher)->Publish("flood", payload).ok());
  ASSERT_TRUE(Eventually([&] { return big.load() == before + 1; }));
}

}  // namespace
}  // namespace switchboard::bus
