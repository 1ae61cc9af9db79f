// WatchEvents: filtered streams, forwarded client events, queue groups, drops.
#include "tests/broker/broker_fixture.h"

namespace switchboard::broker {
namespace {

struct WatchLog {
  std::mutex mu;
  std::vector<std::string> events;
  int closed = 0;

  Broker::WatchEvent OnEvent() {
    return [this](const v1::WatchEventsResponse& e) {
      std::string text;
      switch (e.event_case()) {
        case v1::WatchEventsResponse::kConnected:
          text = absl::StrCat("connected ", e.connected().socket().id());
          break;
        case v1::WatchEventsResponse::kDisconnected:
          text = absl::StrCat("disconnected ", e.disconnected().socket_id(), " ",
                              e.disconnected().reason());
          break;
        case v1::WatchEventsResponse::kJoined:
          text = absl::StrCat("joined ", e.joined().socket_id(), " ", e.joined().room());
          break;
        case v1::WatchEventsResponse::kLeft:
          text = absl::StrCat("left ", e.left().socket_id(), " ", e.left().room());
          break;
        case v1::WatchEventsResponse::kClientEvent:
          text =
              absl::StrCat("client ", e.client_event().socket_id(), " ", e.client_event().event());
          break;
        default: text = "?";
      }
      absl::StrAppend(&text, " @", e.edge_id(), " t=", e.time().seconds());
      std::lock_guard lock(mu);
      events.push_back(text);
    };
  }
  std::function<void()> OnClosed() {
    return [this] {
      std::lock_guard lock(mu);
      ++closed;
    };
  }
  std::vector<std::string> Events() {
    std::lock_guard lock(mu);
    return events;
  }
  int Closed() {
    std::lock_guard lock(mu);
    return closed;
  }
};

TEST(BrokerWatchTest, FilteredStreamEventsUntilTheHandleGoes) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);
  FakeEdge e1(bus, "e1");
  e1.ServeSnapshots();

  WatchLog chat, joins, all, self_closing;
  v1::WatchEventsRequest chat_filter;
  chat_filter.set_namespace_("/chat");
  auto chat_watch = broker->StartWatch(chat_filter, chat.OnEvent(), chat.OnClosed());
  ASSERT_TRUE(chat_watch.ok()) << chat_watch.status();
  v1::WatchEventsRequest join_filter;
  join_filter.add_kinds(v1::EVENT_KIND_JOINED);
  auto joins_watch = broker->StartWatch(join_filter, joins.OnEvent(), joins.OnClosed());
  ASSERT_TRUE(joins_watch.ok());
  auto all_watch = broker->StartWatch({}, all.OnEvent(), all.OnClosed());
  ASSERT_TRUE(all_watch.ok());
  // Destroys its own handle from inside its first event.
  std::unique_ptr<Broker::Watch> self_handle;
  std::mutex self_mu;
  auto self_watch = broker->StartWatch(
      {},
      [&](const v1::WatchEventsResponse& e) {
        self_closing.OnEvent()(e);
        std::lock_guard lock(self_mu);
        self_handle.reset();
      },
      self_closing.OnClosed());
  ASSERT_TRUE(self_watch.ok());
  {
    std::lock_guard lock(self_mu);
    self_handle = std::move(*self_watch);
  }

  std::string a = e1.Connect("a");
  std::string b = e1.Connect("b", "/chat", "u");
  e1.Join(a, "r");
  e1.Join(b, "r");
  e1.Leave(b, "r");
  e1.Disconnect(b);
  Flush(bus);
  EXPECT_EQ(chat.Events(), (std::vector<std::string>{
                               "connected e1.b @e1 t=1700000002", "joined e1.b r @e1 t=1700000004",
                               "left e1.b r @e1 t=1700000005",
                               "disconnected e1.b transport close @e1 t=1700000006"}));
  EXPECT_EQ(joins.Events(), (std::vector<std::string>{"joined e1.a r @e1 t=1700000003",
                                                      "joined e1.b r @e1 t=1700000004"}));
  EXPECT_EQ(all.Events().size(), 6u);
  EXPECT_EQ(self_closing.Events(), (std::vector<std::string>{"connected e1.a @e1 t=1700000001"}));

  // Snapshot contents are not events; events after a gap are, once.
  std::string c = e1.Connect("c", "/", "", /*publish=*/false);
  e1.Join(c, "r");  // gap -> snapshot
  ASSERT_TRUE(Eventually([&] { return LastSeq(*broker, "e1") == 8; }));
  Flush(bus);
  EXPECT_EQ(all.Events().size(), 7u);
  EXPECT_EQ(all.Events().back(), "joined e1.c r @e1 t=1700000008");

  // After the handle is gone, nothing more.
  all_watch->reset();
  e1.Leave(a, "r");
  Flush(bus);
  EXPECT_EQ(all.Events().size(), 7u);
  EXPECT_EQ(joins.Events().size(), 3u);

  broker.reset();
  EXPECT_EQ(chat.Closed(), 1);
  EXPECT_EQ(joins.Closed(), 1);
  EXPECT_EQ(all.Closed(), 0);           // handle destroyed first
  EXPECT_EQ(self_closing.Closed(), 0);  // likewise
  chat_watch->reset();                  // handles may outlive the broker
}

TEST(BrokerWatchTest, ForwardedClientEventsAndBadKinds) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);
  WatchLog clients, membership_only;
  v1::WatchEventsRequest filter;
  filter.set_namespace_("/");
  filter.add_kinds(v1::EVENT_KIND_CLIENT_EVENT);
  auto watch = broker->StartWatch(filter, clients.OnEvent(), clients.OnClosed());
  ASSERT_TRUE(watch.ok()) << watch.status();
  v1::WatchEventsRequest connects;
  connects.add_kinds(v1::EVENT_KIND_CONNECTED);
  auto other = broker->StartWatch(connects, membership_only.OnEvent(), membership_only.OnClosed());
  ASSERT_TRUE(other.ok());

  auto forward = [&](const std::string& nsp, const std::string& event) {
    v1::ForwardedEvent forwarded;
    forwarded.set_edge_id("e1");
    SetTime(forwarded.mutable_time(), 42);
    forwarded.mutable_event()->set_socket_id("e1.a");
    forwarded.mutable_event()->set_namespace_(nsp);
    forwarded.mutable_event()->set_event(event);
    ASSERT_TRUE(bus.Publish(bus::ForwardSubject(nsp, event), forwarded.SerializeAsString()).ok());
  };
  forward("/", "chat message");
  forward("/other", "chat message");
  Flush(bus);
  EXPECT_EQ(clients.Events(), (std::vector<std::string>{"client e1.a chat message @e1 t=42"}));
  EXPECT_TRUE(membership_only.Events().empty());

  v1::WatchEventsRequest bad;
  bad.add_kinds(v1::EVENT_KIND_UNSPECIFIED);
  EXPECT_EQ(broker->StartWatch(bad, clients.OnEvent(), nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  bad.clear_kinds();
  bad.add_kinds(static_cast<v1::EventKind>(99));
  EXPECT_EQ(broker->StartWatch(bad, clients.OnEvent(), nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);

  // Once no watcher wants client events, the forward subscription goes (on a
  // tick) and comes back with the next one.
  watch->reset();
  std::this_thread::sleep_for(60ms);
  forward("/", "late");
  Flush(bus);
  EXPECT_EQ(clients.Events().size(), 1u);
  WatchLog again;
  auto again_watch = broker->StartWatch({}, again.OnEvent(), again.OnClosed());
  ASSERT_TRUE(again_watch.ok());
  forward("/", "later");
  Flush(bus);
  EXPECT_EQ(again.Events(), (std::vector<std::string>{"client e1.a later @e1 t=42"}));
}

// A forwarded event as an edge publishes it.
void PublishForwarded(bus::Bus& bus, const std::string& nsp, const std::string& event, int n) {
  v1::ForwardedEvent forwarded;
  forwarded.set_edge_id("e1");
  SetTime(forwarded.mutable_time(), n);
  forwarded.mutable_event()->set_socket_id("e1.a");
  forwarded.mutable_event()->set_namespace_(nsp);
  forwarded.mutable_event()->set_event(event);
  ASSERT_TRUE(bus.Publish(bus::ForwardSubject(nsp, event), forwarded.SerializeAsString()).ok());
}

TEST(BrokerWatchTest, FiltersByNamespacesAndEventNames) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);
  WatchLog log;
  v1::WatchEventsRequest filter;
  filter.add_namespaces("/a");
  filter.add_namespaces("/b");
  filter.add_events("wanted");
  auto watch = broker->StartWatch(filter, log.OnEvent(), log.OnClosed());
  ASSERT_TRUE(watch.ok()) << watch.status();
  PublishForwarded(bus, "/a", "wanted", 1);
  PublishForwarded(bus, "/b", "wanted", 2);
  PublishForwarded(bus, "/c", "wanted", 3);
  PublishForwarded(bus, "/a", "other", 4);
  FakeEdge e1(bus, "e1");
  e1.ServeSnapshots();
  e1.Connect("x", "/a");  // lifecycle kinds are not filtered by event name
  e1.Connect("y", "/c");
  Flush(bus);
  EXPECT_EQ(log.Events(),
            (std::vector<std::string>{"client e1.a wanted @e1 t=1", "client e1.a wanted @e1 t=2",
                                      "connected e1.x @e1 t=1700000001"}));
  v1::WatchEventsRequest bad;
  bad.add_namespaces("");
  EXPECT_EQ(broker->StartWatch(bad, log.OnEvent(), nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Watchers in one queue group, on two brokers, share the events: each one
// reaches exactly one member; a watcher without a group gets them all.
TEST(BrokerWatchTest, AQueueGroupSharesEachEventOnceAcrossBrokers) {
  bus::InProcessBus bus;
  auto b1 = StartBroker(bus);
  BrokerOptions second = Options();
  second.broker_id = "b2";
  auto b2 = StartBroker(bus, second);
  WatchLog m1, m2, m3, solo;
  v1::WatchEventsRequest grouped;
  grouped.set_queue_group("workers");
  auto w1 = b1->StartWatch(grouped, m1.OnEvent(), m1.OnClosed());
  auto w2 = b1->StartWatch(grouped, m2.OnEvent(), m2.OnClosed());
  auto w3 = b2->StartWatch(grouped, m3.OnEvent(), m3.OnClosed());
  auto w4 = b2->StartWatch({}, solo.OnEvent(), solo.OnClosed());
  ASSERT_TRUE(w1.ok() && w2.ok() && w3.ok() && w4.ok());

  constexpr int kEvents = 60;
  for (int i = 0; i < kEvents; ++i) PublishForwarded(bus, "/", "tick", i);
  FakeEdge e1(bus, "e1");
  e1.ServeSnapshots();
  for (int i = 0; i < 6; ++i) e1.Connect(absl::StrCat("s", i));
  ASSERT_TRUE(Eventually(
      [&] { return m1.Events().size() + m2.Events().size() + m3.Events().size() == kEvents + 6; }));
  Flush(bus);
  std::this_thread::sleep_for(50ms);
  std::multiset<std::string> all;
  for (WatchLog* log : {&m1, &m2, &m3}) {
    for (const std::string& e : log->Events()) all.insert(e);
  }
  EXPECT_EQ(all.size(), kEvents + 6u);
  EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), kEvents + 6u);  // no repeats
  EXPECT_FALSE(m1.Events().empty());
  EXPECT_FALSE(m2.Events().empty());
  EXPECT_FALSE(m3.Events().empty());
  EXPECT_EQ(solo.Events().size(), kEvents + 6u);

  // A member that leaves gets nothing more; the others take its share.
  w1->reset();
  w2->reset();
  std::this_thread::sleep_for(150ms);  // b1 drops the group's subscriptions on a tick
  for (int i = 0; i < 10; ++i) PublishForwarded(bus, "/", "after", i);
  ASSERT_TRUE(Eventually([&] {
    size_t after = 0;
    for (const std::string& e : m3.Events()) after += e.find(" after ") != std::string::npos;
    return after == 10;
  }));
  EXPECT_EQ(Stats(*b1).forward().watch_dropped() + Stats(*b2).forward().watch_dropped(), 0u);
}

// A queue group's event that no member on this broker can take any more (the
// last one went; the subscription lasts until a tick) is counted as dropped;
// its ack is left to whoever else may answer it. A drop its owner (the gRPC
// stream of a group's watcher) reports fails the client's ack at once; a
// plain watcher's drop leaves the ack to the backend that owns the event.
TEST(BrokerWatchTest, WatchDropsAreCountedAndAGroupWatchersDropFailsItsAck) {
  bus::InProcessBus bus;
  BrokerOptions options = Options();
  options.tick = 60s;  // the group's subscription stays after its member goes
  auto broker = StartBroker(bus, options);
  std::mutex mu;
  std::vector<std::pair<std::string, std::string>> fails;  // ack_ref, error
  auto fack = bus.Subscribe(bus::ForwardAckSubject("e1"), [&](bus::Message message) {
    v1::ForwardAck request;
    ASSERT_TRUE(request.ParseFromString(message.payload));
    std::lock_guard lock(mu);
    fails.emplace_back(request.ack_ref(), request.reply().error());
  });
  ASSERT_TRUE(fack.ok());
  WatchLog log;
  v1::WatchEventsRequest grouped;
  grouped.set_queue_group("workers");
  grouped.add_kinds(v1::EVENT_KIND_CLIENT_EVENT);
  auto watch = broker->StartWatch(grouped, log.OnEvent(), log.OnClosed());
  ASSERT_TRUE(watch.ok());
  watch->reset();

  v1::ForwardedEvent forwarded;
  forwarded.set_edge_id("e1");
  v1::ClientEvent* event = forwarded.mutable_event();
  event->set_socket_id("e1.a");
  event->set_namespace_("/");
  event->set_event("ask");
  event->set_wants_ack(true);
  event->set_ack_ref("e1.n0nce.1");
  ASSERT_TRUE(bus.Publish(bus::ForwardSubject("/", "ask"), forwarded.SerializeAsString()).ok());
  ASSERT_TRUE(Eventually([&] { return Stats(*broker).watch().dropped() == 1; }));
  v1::GetStatsResponse stats = Stats(*broker);
  EXPECT_EQ(stats.watch().acks_failed(), 0u);
  EXPECT_EQ(stats.forward().watch_dropped(), 1u);

  v1::WatchEventsResponse dropped;
  *dropped.mutable_client_event() = forwarded.event();
  broker->WatchDropped(dropped, /*owns_acks=*/true, "watcher too slow");   // a group's watcher
  broker->WatchDropped(dropped, /*owns_acks=*/false, "watcher too slow");  // a plain one
  v1::WatchEventsResponse lifecycle;
  lifecycle.mutable_connected()->mutable_socket()->set_id("e1.b");
  broker->WatchDropped(lifecycle, /*owns_acks=*/true, "watcher too slow");
  ASSERT_TRUE(Eventually([&] {
    std::lock_guard lock(mu);
    return !fails.empty();
  }));
  Flush(bus);
  stats = Stats(*broker);
  EXPECT_EQ(stats.watch().dropped(), 4u);
  EXPECT_EQ(stats.watch().acks_failed(), 1u);
  EXPECT_EQ(stats.forward().watch_dropped(), 3u);  // client events only
  EXPECT_EQ(broker->counters().watch_dropped, 4u);
  EXPECT_EQ(broker->counters().watch_acks_failed, 1u);
  std::lock_guard lock(mu);
  EXPECT_EQ(fails,
            (std::vector<std::pair<std::string, std::string>>{{"e1.n0nce.1", "watcher too slow"}}));
}

}  // namespace
}  // namespace switchboard::broker
