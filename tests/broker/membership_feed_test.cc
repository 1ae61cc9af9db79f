// The index fed from the edges' streams: order, gaps, snapshots, incarnations,
// expiry, convergence; and the broker's start.
#include "tests/broker/broker_fixture.h"

namespace switchboard::broker {
namespace {

TEST(BrokerStartTest, BrokerIdIsCheckedOrGenerated) {
  bus::InProcessBus bus;
  BrokerOptions bad = Options();
  bad.broker_id = "b.1";
  EXPECT_EQ(Broker::Start(bus, bad).status().code(), absl::StatusCode::kInvalidArgument);
  bad.broker_id = "b 1";
  EXPECT_EQ(Broker::Start(bus, bad).status().code(), absl::StatusCode::kInvalidArgument);
  BrokerOptions no_tick = Options();
  no_tick.tick = 0ms;
  EXPECT_EQ(Broker::Start(bus, no_tick).status().code(), absl::StatusCode::kInvalidArgument);

  BrokerOptions random = Options();
  random.broker_id.clear();
  auto broker = Broker::Start(bus, random);
  ASSERT_TRUE(broker.ok()) << broker.status();
  EXPECT_EQ((*broker)->id().size(), 12u);
  EXPECT_TRUE(bus::ValidNodeId((*broker)->id()));
  EXPECT_TRUE((*broker)->bus_connected());
  EXPECT_EQ(Stats(**broker).broker_id(), (*broker)->id());

  auto named = StartBroker(bus);
  EXPECT_EQ(named->id(), "b1");
}

// ---------------------------------------------------------------------------
// The index from the membership stream.

TEST(BrokerIndexTest, EventsApplyInOrderAndQueriesShowThem) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);
  FakeEdge e1(bus, "e1");
  std::string a = e1.Connect("a", "/", "u1");
  std::string b = e1.Connect("b", "/chat", "u2");
  std::string c = e1.Connect("c", "/", "u1");
  e1.Join(a, "r1");
  e1.Join(a, "r2");
  e1.Join(c, "r1");
  e1.Join(b, "r1");
  e1.Leave(a, "r2");
  e1.Upgrade(c);
  e1.Heartbeat({10, 20}, {{"/", {7, 15}}, {"/chat", {3, 5}}});
  ASSERT_TRUE(Eventually([&] {
    auto stats = Stats(*broker);
    return stats.edges_size() == 1 && stats.edges(0).last_seq() == 9 &&
           stats.edges(0).has_last_heartbeat();
  }));

  EXPECT_EQ(Listing(*broker),
            (Ids{"e1.a edge=e1 nsp=/ user=u1 rooms=r1 TRANSPORT_POLLING 10.0.0.7:4242 t=1700000001",
                 "e1.b edge=e1 nsp=/chat user=u2 rooms=r1 TRANSPORT_POLLING 10.0.0.7:4242 "
                 "t=1700000002",
                 "e1.c edge=e1 nsp=/ user=u1 rooms=r1 TRANSPORT_WEBSOCKET 10.0.0.7:4242 "
                 "t=1700000003"}));
  EXPECT_EQ(Listing(*broker), e1.Expected());

  v1::ListSocketsRequest by_nsp;
  by_nsp.set_namespace_("/");
  EXPECT_EQ(ListedIds(*broker, by_nsp), (Ids{a, c}));
  v1::ListSocketsRequest by_room = by_nsp;
  by_room.set_room("r1");
  EXPECT_EQ(ListedIds(*broker, by_room), (Ids{a, c}));
  v1::ListSocketsRequest by_user;
  by_user.set_user_id("u2");
  EXPECT_EQ(ListedIds(*broker, by_user), (Ids{b}));
  v1::ListSocketsRequest paged;
  paged.set_page_size(2);
  auto page1 = broker->ListSockets(paged);
  ASSERT_TRUE(page1.ok());
  ASSERT_EQ(page1->sockets_size(), 2);
  EXPECT_FALSE(page1->next_page_token().empty());
  paged.set_page_token(page1->next_page_token());
  auto page2 = broker->ListSockets(paged);
  ASSERT_TRUE(page2.ok());
  ASSERT_EQ(page2->sockets_size(), 1);
  EXPECT_EQ(page2->sockets(0).id(), c);
  EXPECT_TRUE(page2->next_page_token().empty());
  v1::ListSocketsRequest room_only;
  room_only.set_room("r1");
  EXPECT_EQ(broker->ListSockets(room_only).status().code(), absl::StatusCode::kInvalidArgument);
  v1::ListSocketsRequest bad_token;
  bad_token.set_page_token("garbage");
  EXPECT_EQ(broker->ListSockets(bad_token).status().code(), absl::StatusCode::kInvalidArgument);

  EXPECT_EQ(RoomsText(*broker), "/:r1=2 /chat:r1=1");
  v1::ListRoomsRequest chat_rooms;
  chat_rooms.set_namespace_("/chat");
  EXPECT_EQ(RoomsText(*broker, chat_rooms), "/chat:r1=1");
  v1::ListRoomsRequest prefix;
  prefix.set_prefix("x");
  EXPECT_EQ(RoomsText(*broker, prefix), "");

  v1::GetPresenceRequest presence;
  presence.set_user_id("u1");
  auto u1 = broker->GetPresence(presence);
  ASSERT_TRUE(u1.ok());
  EXPECT_TRUE(u1->online());
  ASSERT_EQ(u1->sockets_size(), 2);
  EXPECT_EQ(u1->sockets(0).id(), a);
  EXPECT_EQ(u1->sockets(1).id(), c);
  presence.set_namespace_("/chat");
  auto u1_chat = broker->GetPresence(presence);
  ASSERT_TRUE(u1_chat.ok());
  EXPECT_FALSE(u1_chat->online());
  EXPECT_EQ(u1_chat->sockets_size(), 0);
  presence.set_user_id("nobody");
  presence.clear_namespace_();
  EXPECT_FALSE(broker->GetPresence(presence)->online());
  presence.clear_user_id();
  EXPECT_EQ(broker->GetPresence(presence).status().code(), absl::StatusCode::kInvalidArgument);

  v1::GetStatsResponse stats = Stats(*broker);
  EXPECT_EQ(stats.broker_id(), "b1");
  EXPECT_EQ(CountsText(stats.totals()), "sockets=3 users=2 rooms=2 in=10 out=20");
  ASSERT_EQ(stats.edges_size(), 1);
  EXPECT_EQ(stats.edges(0).edge_id(), "e1");
  EXPECT_EQ(stats.edges(0).last_seq(), 9u);
  EXPECT_EQ(CountsText(stats.edges(0).counts()), "sockets=3 users=2 rooms=2 in=10 out=20");
  auto since = std::chrono::system_clock::now().time_since_epoch();
  EXPECT_NEAR(stats.edges(0).last_heartbeat().seconds(),
              std::chrono::duration_cast<std::chrono::seconds>(since).count(), 5);
  ASSERT_EQ(stats.namespaces_size(), 2);
  EXPECT_EQ(stats.namespaces(0).namespace_(), "/");
  EXPECT_EQ(CountsText(stats.namespaces(0).counts()), "sockets=2 users=1 rooms=1 in=7 out=15");
  EXPECT_EQ(stats.namespaces(1).namespace_(), "/chat");
  EXPECT_EQ(CountsText(stats.namespaces(1).counts()), "sockets=1 users=1 rooms=1 in=3 out=5");

  // A disconnect takes the socket, its user entry and its rooms.
  e1.Disconnect(b);
  ASSERT_TRUE(Eventually([&] { return LastSeq(*broker, "e1") == 10; }));
  EXPECT_EQ(ListedIds(*broker), (Ids{a, c}));
  EXPECT_EQ(RoomsText(*broker), "/:r1=2");
  stats = Stats(*broker);
  EXPECT_EQ(stats.totals().users(), 1u);
  ASSERT_EQ(stats.namespaces_size(), 1);
  EXPECT_EQ(e1.snapshot_requests(), 0);  // nothing was missed
}

TEST(BrokerIndexTest, GapTriggersSnapshotThenLaterEventsApply) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);
  FakeEdge e1(bus, "e1");
  e1.ServeSnapshots();
  std::string a = e1.Connect("a", "/", "u1");
  ASSERT_TRUE(Eventually([&] { return LastSeq(*broker, "e1") == 1; }));
  std::string b = e1.Connect("b", "/", "u2", /*publish=*/false);  // lost
  e1.Join(a, "r", /*publish=*/false);                             // lost
  e1.Join(b, "r");                                                // seq 4: a gap
  ASSERT_TRUE(Eventually([&] { return Listing(*broker) == e1.Expected(); }))
      << absl::StrJoin(Listing(*broker), "\n");
  EXPECT_EQ(LastSeq(*broker, "e1"), 4u);

  e1.Disconnect(a);
  e1.Join(b, "x");
  std::string c = e1.Connect("c", "/chat");
  ASSERT_TRUE(Eventually([&] { return LastSeq(*broker, "e1") == 7; }));
  EXPECT_EQ(Listing(*broker), e1.Expected());
  EXPECT_EQ(ListedIds(*broker), (Ids{b, c}));
  EXPECT_EQ(RoomsText(*broker), "/:r=1 /:x=1");
  EXPECT_EQ(e1.snapshot_requests(), 1);
}

TEST(BrokerIndexTest, LostTailSeenInHeartbeatTriggersSnapshot) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);
  FakeEdge e1(bus, "e1");
  e1.ServeSnapshots();
  e1.Connect("a");
  ASSERT_TRUE(Eventually([&] { return LastSeq(*broker, "e1") == 1; }));
  e1.Connect("b", "/", "", /*publish=*/false);
  e1.Heartbeat();  // last_seq 2: one event lost, or on its way
  Flush(bus);
  EXPECT_EQ(e1.snapshot_requests(), 0);
  e1.Heartbeat();  // still missing: lost
  ASSERT_TRUE(Eventually([&] { return Listing(*broker) == e1.Expected(); }));
  EXPECT_EQ(ListedIds(*broker).size(), 2u);
  EXPECT_EQ(e1.snapshot_requests(), 1);
}

TEST(BrokerIndexTest, BrokerStartedLateRebuildsFromSnapshotsOnHeartbeats) {
  bus::InProcessBus bus;
  FakeEdge e1(bus, "e1"), e2(bus, "e2");
  e1.ServeSnapshots();
  e2.ServeSnapshots();
  std::string a = e1.Connect("a", "/", "u1");
  e1.Join(a, "r");
  std::string c = e2.Connect("c", "/chat", "u1");
  e2.Join(c, "r");
  e2.Connect("d");
  Flush(bus);

  auto broker = StartBroker(bus);
  EXPECT_TRUE(ListedIds(*broker).empty());
  e1.Heartbeat();
  e2.Heartbeat();
  ASSERT_TRUE(Eventually([&] { return Listing(*broker) == Concat(e1.Expected(), e2.Expected()); }))
      << absl::StrJoin(Listing(*broker), "\n");
  EXPECT_EQ(RoomsText(*broker), "/:r=1 /chat:r=1");
  EXPECT_EQ(e1.snapshot_requests(), 1);
  EXPECT_EQ(e2.snapshot_requests(), 1);
  EXPECT_EQ(LastSeq(*broker, "e2"), 3u);

  // An event after the snapshot applies directly.
  e2.Leave(c, "r");
  ASSERT_TRUE(Eventually([&] { return LastSeq(*broker, "e2") == 4; }));
  EXPECT_EQ(RoomsText(*broker), "/:r=1");
}

TEST(BrokerIndexTest, FailedSnapshotIsAskedAgainOnALaterTick) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);
  FakeEdge e1(bus, "e1");
  e1.Connect("a", "/", "", /*publish=*/false);
  e1.Heartbeat();  // needs a snapshot; nobody answers yet (no responders)
  Flush(bus);
  std::this_thread::sleep_for(60ms);
  EXPECT_TRUE(ListedIds(*broker).empty());
  e1.ServeSnapshots();
  ASSERT_TRUE(Eventually([&] { return Listing(*broker) == e1.Expected(); }));
  EXPECT_EQ(e1.snapshot_requests(), 1);
}

TEST(BrokerIndexTest, NewIncarnationDropsTheOldSockets) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);
  auto old_edge = std::make_unique<FakeEdge>(bus, "e1", "inc-1");
  std::string a = old_edge->Connect("a", "/", "u1");
  old_edge->Join(a, "r");
  old_edge->Connect("b");
  ASSERT_TRUE(Eventually([&] { return ListedIds(*broker).size() == 2; }));
  old_edge.reset();

  // Restarted: seq starts again at 1, no snapshot needed.
  FakeEdge restarted(bus, "e1", "inc-2");
  std::string c = restarted.Connect("c", "/", "u2");
  ASSERT_TRUE(Eventually([&] { return ListedIds(*broker) == Ids{c}; }))
      << absl::StrJoin(Listing(*broker), "\n");
  EXPECT_EQ(RoomsText(*broker), "");
  v1::GetPresenceRequest presence;
  presence.set_user_id("u1");
  EXPECT_FALSE(broker->GetPresence(presence)->online());
  EXPECT_EQ(LastSeq(*broker, "e1"), 1u);
  EXPECT_EQ(restarted.snapshot_requests(), 0);

  // Restarted again, first heard of by a heartbeat with sockets: snapshot.
  FakeEdge third(bus, "e1", "inc-3");
  third.ServeSnapshots();
  third.Connect("d", "/", "", /*publish=*/false);
  third.Heartbeat();
  ASSERT_TRUE(Eventually([&] { return Listing(*broker) == third.Expected(); }))
      << absl::StrJoin(Listing(*broker), "\n");
  EXPECT_EQ(third.snapshot_requests(), 1);
}

TEST(BrokerIndexTest, SnapshotOfAnotherIncarnationIsIgnored) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);
  FakeEdge e1(bus, "e1", "inc-1");
  e1.SetSnapshotIncarnation("inc-0");
  e1.ServeSnapshots();
  std::string a = e1.Connect("a");
  e1.Connect("b", "/", "", /*publish=*/false);
  e1.Join(a, "r");                                                       // gap
  ASSERT_TRUE(Eventually([&] { return e1.snapshot_requests() >= 2; }));  // ignored, re-asked
  EXPECT_EQ(ListedIds(*broker), (Ids{a}));                               // old view kept meanwhile
  EXPECT_EQ(LastSeq(*broker, "e1"), 1u);

  e1.SetSnapshotIncarnation("");
  ASSERT_TRUE(Eventually([&] { return Listing(*broker) == e1.Expected(); }));
  EXPECT_EQ(LastSeq(*broker, "e1"), 3u);
}

TEST(BrokerIndexTest, SilentEdgeExpiresAndComesBackWithItsNextHeartbeat) {
  bus::InProcessBus bus;
  BrokerOptions options = Options();
  options.edge_timeout = 150ms;
  options.tick = 10ms;
  auto broker = StartBroker(bus, options);
  FakeEdge e1(bus, "e1"), e2(bus, "e2");
  e1.ServeSnapshots();
  std::string a = e1.Connect("a", "/", "u1");
  std::string c = e2.Connect("c");
  ASSERT_TRUE(Eventually([&] { return ListedIds(*broker) == Ids{a, c}; }));

  // e2 keeps beating, e1 is silent.
  auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < 400ms) {
    e2.Heartbeat();
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(ListedIds(*broker), (Ids{c}));
  v1::GetStatsResponse stats = Stats(*broker);
  ASSERT_EQ(stats.edges_size(), 1);
  EXPECT_EQ(stats.edges(0).edge_id(), "e2");
  v1::GetPresenceRequest presence;
  presence.set_user_id("u1");
  EXPECT_FALSE(broker->GetPresence(presence)->online());

  // Only cut off: its next heartbeat brings it back by snapshot.
  e1.Heartbeat();
  ASSERT_TRUE(Eventually([&] { return ListedIds(*broker) == Ids{a, c}; }));
  EXPECT_EQ(e1.snapshot_requests(), 1);
}

TEST(BrokerIndexTest, TwoBrokersOnOneBusConverge) {
  bus::InProcessBus bus;
  BrokerOptions first = Options();
  auto broker1 = StartBroker(bus, first);
  FakeEdge e1(bus, "e1"), e2(bus, "e2");
  e1.ServeSnapshots();
  e2.ServeSnapshots();
  std::string a = e1.Connect("a", "/", "u1");
  std::string b = e2.Connect("b", "/chat", "u2");
  e1.Join(a, "r1");
  Flush(bus);

  BrokerOptions second = Options();
  second.broker_id = "b2";
  auto broker2 = StartBroker(bus, second);
  e2.Join(b, "r2");  // broker2: first event seen is seq 2 -> snapshot
  std::string c = e1.Connect("c", "/", "u2");
  e1.Join(c, "r1");
  e1.Heartbeat();
  e2.Heartbeat();
  e1.Leave(a, "r1");

  Ids expected = Concat(e1.Expected(), e2.Expected());
  ASSERT_TRUE(Eventually([&] { return Listing(*broker1) == expected; }))
      << absl::StrJoin(Listing(*broker1), "\n");
  ASSERT_TRUE(Eventually([&] { return Listing(*broker2) == expected; }))
      << absl::StrJoin(Listing(*broker2), "\n");
  EXPECT_EQ(RoomsText(*broker1), RoomsText(*broker2));
  EXPECT_EQ(RoomsText(*broker1), "/:r1=1 /chat:r2=1");
  EXPECT_EQ(CountsText(Stats(*broker1).totals()), CountsText(Stats(*broker2).totals()));
  EXPECT_EQ(LastSeq(*broker1, "e1"), LastSeq(*broker2, "e1"));
  EXPECT_EQ(Stats(*broker2).broker_id(), "b2");
}

// ---------------------------------------------------------------------------
// Publish.

// e1: a (/, u1, r1), b (/, u2); e2: c (/, u1, r1 r2), d (/chat, u1).

}  // namespace
}  // namespace switchboard::broker
