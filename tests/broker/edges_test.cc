// Edges as ListEdges and GetStats show them: heartbeats' counters and identity,
// lost edges.
#include "tests/broker/broker_fixture.h"

namespace switchboard::broker {
namespace {

TEST(BrokerStatsTest, ForwardCountersFromHeartbeats) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);
  FakeEdge e1(bus, "e1");
  e1.ServeSnapshots();
  FakeEdge e2(bus, "e2");
  e2.ServeSnapshots();
  e1.Connect("a");
  e2.Connect("b");
  v1::ForwardStats f1, f2;
  f1.set_forwarded(10);
  f1.set_dropped(2);
  f1.set_acks_answered(3);
  f2.set_forwarded(5);
  f2.set_acks_timed_out(1);
  f2.set_acks_pending(4);
  e1.Heartbeat({}, {}, &f1);
  e2.Heartbeat({}, {}, &f2);
  ASSERT_TRUE(Eventually([&] {
    auto stats = Stats(*broker);
    return stats.edges_size() == 2 && stats.forward().forwarded() == 15;
  }));
  v1::GetStatsResponse stats = Stats(*broker);
  EXPECT_EQ(stats.forward().dropped(), 2u);
  EXPECT_EQ(stats.forward().acks_answered(), 3u);
  EXPECT_EQ(stats.forward().acks_timed_out(), 1u);
  EXPECT_EQ(stats.forward().acks_pending(), 4u);
  EXPECT_EQ(stats.edges(0).forward().dropped(), 2u);
  EXPECT_EQ(stats.edges(1).forward().forwarded(), 5u);
}

// ---------------------------------------------------------------------------
// ListEdges.

// "e1 ready 1.2.3 t=1700000000 sockets=2" per edge, in the order listed.
std::vector<std::string> EdgesText(Broker& broker) {
  auto edges = broker.ListEdges({});
  EXPECT_TRUE(edges.ok()) << edges.status();
  std::vector<std::string> out;
  if (!edges.ok()) return out;
  for (const v1::EdgeInfo& e : edges->edges()) {
    std::string state(v1::EdgeState_Name(e.state()));
    absl::string_view short_state(state);
    short_state.remove_prefix(std::string_view("EDGE_STATE_").size());
    out.push_back(absl::StrCat(e.edge_id(), " ", absl::AsciiStrToLower(short_state), " ",
                               e.version(), " t=", e.started_at().seconds(),
                               " sockets=", e.sockets()));
  }
  return out;
}

const v1::EdgeInfo* FindEdge(const v1::ListEdgesResponse& response, const std::string& id) {
  for (const v1::EdgeInfo& e : response.edges()) {
    if (e.edge_id() == id) return &e;
  }
  return nullptr;
}

TEST(BrokerEdgesTest, VersionStartAndDrainComeFromHeartbeats) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);
  FakeEdge e1(bus, "e1"), e2(bus, "e2");
  e1.SetIdentity("1.2.3", 1'700'000'000);
  e2.SetIdentity("1.2.4", 1'700'000'100);
  e1.Connect("a");
  e1.Connect("b");
  e2.Connect("c");
  e1.Heartbeat();
  e2.Heartbeat();
  ASSERT_TRUE(Eventually([&] {
    return EdgesText(*broker) == std::vector<std::string>{"e1 ready 1.2.3 t=1700000000 sockets=2",
                                                          "e2 ready 1.2.4 t=1700000100 sockets=1"};
  })) << absl::StrJoin(EdgesText(*broker), "; ");
  auto listed = broker->ListEdges({});
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->broker_id(), "b1");
  EXPECT_EQ(FindEdge(*listed, "e1")->incarnation(), "inc-1");
  EXPECT_GT(FindEdge(*listed, "e1")->last_heartbeat().seconds(), 0);
  EXPECT_FALSE(FindEdge(*listed, "e1")->has_lost_at());

  // e2 starts draining; a stale heartbeat without the flag does not undo it.
  e2.SetDraining(true);
  e2.Heartbeat();
  const std::vector<std::string> draining = {"e1 ready 1.2.3 t=1700000000 sockets=2",
                                             "e2 draining 1.2.4 t=1700000100 sockets=1"};
  ASSERT_TRUE(Eventually([&] { return EdgesText(*broker) == draining; }))
      << absl::StrJoin(EdgesText(*broker), "; ");
  e2.SetDraining(false);
  e2.Heartbeat();
  Flush(bus);
  EXPECT_EQ(EdgesText(*broker), draining);
}

TEST(BrokerEdgesTest, ASilentEdgeIsLostUntilItComesBackButADrainedOneIsForgotten) {
  bus::InProcessBus bus;
  BrokerOptions options = Options();
  options.edge_timeout = 150ms;
  options.tick = 10ms;
  auto broker = StartBroker(bus, options);
  FakeEdge e1(bus, "e1"), e2(bus, "e2"), e3(bus, "e3");
  e1.ServeSnapshots();
  for (FakeEdge* e : {&e1, &e2, &e3}) e->SetIdentity("1.2.3", 1'700'000'000);
  e1.Connect("a");
  e1.Connect("b");
  e2.SetDraining(true);
  e2.Connect("c");
  e1.Heartbeat();
  e2.Heartbeat();
  e3.Heartbeat();
  ASSERT_TRUE(Eventually([&] { return EdgesText(*broker).size() == 3; }));
  const auto before_loss = std::chrono::system_clock::now();

  // e3 keeps beating; e1 (ready) and e2 (draining) go silent.
  ASSERT_TRUE(Eventually([&] {
    e3.Heartbeat();
    std::this_thread::sleep_for(20ms);
    return EdgesText(*broker).size() == 2;
  })) << absl::StrJoin(EdgesText(*broker), "; ");
  EXPECT_EQ(EdgesText(*broker),
            (std::vector<std::string>{"e1 lost 1.2.3 t=1700000000 sockets=2",
                                      "e3 ready 1.2.3 t=1700000000 sockets=0"}));
  auto listed = broker->ListEdges({});
  ASSERT_TRUE(listed.ok());
  const v1::EdgeInfo* lost = FindEdge(*listed, "e1");
  ASSERT_NE(lost, nullptr);
  EXPECT_GE(
      lost->lost_at().seconds(),
      std::chrono::duration_cast<std::chrono::seconds>(before_loss.time_since_epoch()).count());
  EXPECT_GT(lost->last_heartbeat().seconds(), 0);
  // Its sockets are gone from the index, and GetStats lists live edges only.
  EXPECT_EQ(ListedIds(*broker), Ids{});
  EXPECT_EQ(Stats(*broker).edges_size(), 1);

  // Back: listed once, live again.
  e1.Heartbeat();
  ASSERT_TRUE(Eventually([&] {
    auto text = EdgesText(*broker);
    return !text.empty() && text[0] == "e1 ready 1.2.3 t=1700000000 sockets=2";
  })) << absl::StrJoin(EdgesText(*broker), "; ");
  EXPECT_EQ(EdgesText(*broker).size(), 2u);
}

TEST(BrokerEdgesTest, LostEdgesAreBoundedInTimeAndCount) {
  bus::InProcessBus bus;
  BrokerOptions options = Options();
  options.edge_timeout = 100ms;
  options.tick = 10ms;
  options.max_lost_edges = 2;
  options.lost_edge_retention = 2s;
  auto broker = StartBroker(bus, options);
  std::vector<std::unique_ptr<FakeEdge>> edges;
  for (int i = 1; i <= 3; ++i) {
    edges.push_back(std::make_unique<FakeEdge>(bus, absl::StrCat("e", i)));
    edges.back()->Heartbeat();
    // Lost one after the other: e1 first.
    const std::string id = absl::StrCat("e", i);
    auto state_of = [&](const std::string& state) {
      auto edges = broker->ListEdges({});
      const v1::EdgeInfo* e = edges.ok() ? FindEdge(*edges, id) : nullptr;
      return e != nullptr &&
             e->state() == (state == "ready" ? v1::EDGE_STATE_READY : v1::EDGE_STATE_LOST);
    };
    ASSERT_TRUE(Eventually([&] { return state_of("ready") || state_of("lost"); })) << id;
    ASSERT_TRUE(Eventually([&] { return state_of("lost"); })) << id;
  }
  // At most two: the oldest (e1) was forgotten.
  auto text = EdgesText(*broker);
  ASSERT_EQ(text.size(), 2u);
  EXPECT_EQ(text[0].substr(0, 3), "e2 ");
  EXPECT_EQ(text[1].substr(0, 3), "e3 ");
  // And none after the retention.
  EXPECT_TRUE(Eventually([&] { return EdgesText(*broker).empty(); }, 6s))
      << absl::StrJoin(EdgesText(*broker), "; ");
}

// A killed edge: NATS drops its subscriptions with its connection, so the
// probe sent when its heartbeats are late finds no responder, and the broker
// drops it without waiting for the edge timeout (a minute here).
TEST(BrokerEdgesTest, AnEdgeWhoseProbeFindsNobodyIsDroppedBeforeTheTimeout) {
  bus::InProcessBus bus;
  BrokerOptions options = Options();
  options.edge_timeout = 60s;
  options.tick = 10ms;
  auto broker = StartBroker(bus, options);
  FakeEdge e1(bus, "e1"), e2(bus, "e2");
  for (FakeEdge* e : {&e1, &e2}) {
    e->ServeSnapshots();
    e->SetIdentity("1.2.3", 1'700'000'000);
    e->SetInterval(50);
  }
  const std::string a = e1.Connect("a");
  const std::string c = e2.Connect("c");
  e1.Heartbeat();
  e2.Heartbeat();
  ASSERT_TRUE(Eventually([&] { return ListedIds(*broker).size() == 2; }));
  ASSERT_EQ(broker->counters().edges_expired, 0u);

  e1.StopServing();
  ASSERT_TRUE(Eventually([&] { return ListedIds(*broker) == Ids{c}; }))
      << absl::StrJoin(ListedIds(*broker), ", ");
  EXPECT_EQ(EdgesText(*broker),
            (std::vector<std::string>{"e1 lost 1.2.3 t=1700000000 sockets=1",
                                      "e2 ready 1.2.3 t=1700000000 sockets=1"}));
  EXPECT_EQ(broker->counters().edges_expired, 1u);
  EXPECT_GT(broker->counters().edge_probes, 0u);
  EXPECT_EQ(Stats(*broker).edges_size(), 1);
}

// A busy edge whose heartbeats stop coming but which answers probes is heard
// from: kept past the edge timeout, with its sockets.
TEST(BrokerEdgesTest, AnEdgeThatAnswersProbesIsKeptWhileItsHeartbeatsAreLate) {
  bus::InProcessBus bus;
  BrokerOptions options = Options();
  options.edge_timeout = 300ms;
  options.tick = 10ms;
  auto broker = StartBroker(bus, options);
  FakeEdge e1(bus, "e1");
  e1.ServeSnapshots();
  e1.SetInterval(50);
  const std::string a = e1.Connect("a");
  e1.Heartbeat();
  ASSERT_TRUE(Eventually([&] { return ListedIds(*broker) == Ids{a}; }));

  // Several timeouts without a heartbeat: probes keep it.
  std::this_thread::sleep_for(1200ms);
  EXPECT_EQ(ListedIds(*broker), Ids{a});
  EXPECT_EQ(broker->counters().edges_expired, 0u);
  EXPECT_GE(broker->counters().edge_probes, 2u);

  // Once it stops answering too (its subscriptions gone), it is dropped.
  e1.StopServing();
  ASSERT_TRUE(Eventually([&] { return ListedIds(*broker).empty(); }));
  EXPECT_EQ(broker->counters().edges_expired, 1u);
}

// ---------------------------------------------------------------------------
// Recovery namespaces announced in heartbeats.

TEST(BrokerRecoveryNamespacesTest, RecoverableWhileALiveEdgeAnnouncesIt) {
  bus::InProcessBus bus;
  BrokerOptions options = Options();
  // Long enough that e1 stays alive between its heartbeats below under a
  // sanitizer and load; e2's silence outlasts it.
  options.edge_timeout = 1500ms;
  std::mutex mu;
  std::vector<std::string> announced;
  options.on_recovery_announced = [&](const std::string& nsp) {
    std::lock_guard lock(mu);
    announced.push_back(nsp);
  };
  auto broker = StartBroker(bus, options);
  ASSERT_NE(broker, nullptr);
  EXPECT_FALSE(broker->Recoverable("/r"));
  FakeEdge e1(bus, "e1");
  e1.ServeSnapshots();
  FakeEdge e2(bus, "e2");
  e2.ServeSnapshots();
  e1.SetRecoveryNamespaces({"/r", "", "/r"});  // "" is "/"
  e2.SetRecoveryNamespaces({"/r", "/s"});
  e1.Heartbeat();
  ASSERT_TRUE(Eventually([&] { return broker->Recoverable("/r"); }));
  EXPECT_TRUE(broker->Recoverable("/"));
  EXPECT_TRUE(broker->Recoverable(""));
  EXPECT_FALSE(broker->Recoverable("/s"));
  e2.Heartbeat();
  ASSERT_TRUE(Eventually([&] { return broker->Recoverable("/s"); }));
  {
    std::lock_guard lock(mu);
    // Once per namespace new to the cluster, not per edge or heartbeat.
    EXPECT_EQ(announced, (std::vector<std::string>{"/", "/r", "/s"}));
  }

  // e1 stops announcing "/": nobody else does.
  e1.SetRecoveryNamespaces({"/r"});
  e1.Heartbeat();
  ASSERT_TRUE(Eventually([&] { return !broker->Recoverable("/"); }));
  EXPECT_TRUE(broker->Recoverable("/r"));

  // e2 falls silent and expires: "/s" goes, "/r" stays while e1 lives.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  bool s_gone = false;
  while (std::chrono::steady_clock::now() < deadline) {
    e1.Heartbeat();
    if (!broker->Recoverable("/s")) {
      s_gone = true;
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(s_gone);
  EXPECT_TRUE(broker->Recoverable("/r"));
  // Then e1 too.
  ASSERT_TRUE(Eventually([&] { return !broker->Recoverable("/r"); }));
  EXPECT_EQ(broker->counters().edges_expired, 2u);
}

TEST(BrokerRecoveryNamespacesTest, ANewIncarnationStartsWithoutTheOldOnesNamespaces) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);
  FakeEdge before(bus, "e1", "inc-1");
  before.SetRecoveryNamespaces({"/r"});
  before.Heartbeat();
  ASSERT_TRUE(Eventually([&] { return broker->Recoverable("/r"); }));
  FakeEdge after(bus, "e1", "inc-2");
  after.Connect("a", "/r");  // the new process's first membership event
  ASSERT_TRUE(Eventually([&] { return !broker->Recoverable("/r"); }));
  after.SetRecoveryNamespaces({"/r"});
  after.Heartbeat();
  ASSERT_TRUE(Eventually([&] { return broker->Recoverable("/r"); }));
}

}  // namespace
}  // namespace switchboard::broker
