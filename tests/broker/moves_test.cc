// Sessions moving between edges (moved_out on the old edge, moved_in on the
// new one, on two independent streams): the broker's index and queries follow
// the socket, in either order, and watchers see no churn.
#include "tests/broker/broker_fixture.h"

namespace switchboard::broker {
namespace {

// Every event a watcher gets, one line each.
struct Seen {
  std::mutex mu;
  std::vector<std::string> lines;

  Broker::WatchEvent OnEvent() {
    return [this](const v1::WatchEventsResponse& e) {
      std::string line = absl::StrCat(static_cast<int>(e.event_case()), " @", e.edge_id());
      if (e.has_disconnected())
        absl::StrAppend(&line, " disconnected ", e.disconnected().socket_id());
      std::lock_guard lock(mu);
      lines.push_back(line);
    };
  }
  std::vector<std::string> Lines() {
    std::lock_guard lock(mu);
    return lines;
  }
};

std::string Presence(Broker& broker, const std::string& user) {
  v1::GetPresenceRequest request;
  request.set_user_id(user);
  auto presence = broker.GetPresence(request);
  EXPECT_TRUE(presence.ok()) << presence.status();
  if (!presence.ok()) return "";
  std::vector<std::string> out;
  for (const auto& s : presence->sockets()) out.push_back(absl::StrCat(s.id(), "@", s.edge_id()));
  return absl::StrCat(presence->online() ? "online: " : "offline: ", absl::StrJoin(out, " "));
}

std::string EdgeSockets(Broker& broker) {
  std::vector<std::string> out;
  const v1::GetStatsResponse stats = Stats(broker);
  for (const auto& e : stats.edges()) {
    out.push_back(absl::StrCat(e.edge_id(), "=", e.counts().sockets()));
  }
  return absl::StrJoin(out, " ");
}

enum class Order { kOutThenIn, kInThenOut };

class BrokerMoveTest : public testing::TestWithParam<Order> {};

// Cluster: e1 holds a (u1, r1) and b (u2); e2 holds c (u1, r1 r2) and d
// (/chat, u1). a's session moves to e2, both edges heartbeating in between.
TEST_P(BrokerMoveTest, SocketEndsOnTheNewEdgeOnceWithoutChurn) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);
  Cluster cluster(bus);
  FakeEdge& e1 = cluster.e1;
  FakeEdge& e2 = cluster.e2;
  e1.ServeSnapshots();
  e2.ServeSnapshots();
  e1.Join(cluster.a, "r3");
  // The join too: the watcher below must see nothing from before it started.
  ASSERT_TRUE(Eventually(
      [&] { return cluster.Indexed(*broker) && RoomsText(*broker) == "/:r1=2 /:r2=1 /:r3=1"; }));
  Seen lifecycle;  // every kind (the default)
  auto watch = broker->StartWatch({}, lifecycle.OnEvent(), [] {});
  ASSERT_TRUE(watch.ok()) << watch.status();

  const std::string a = cluster.a;
  if (GetParam() == Order::kOutThenIn) {
    FakeEdge::Sock sock = e1.MoveOut(a, "e2");
    e1.Heartbeat();
    e2.Heartbeat();
    Flush(bus);
    EXPECT_EQ(ListedIds(*broker), (Ids{cluster.b, cluster.c, cluster.d}));  // on its way
    e2.MoveIn(a, sock, "e1");
  } else {
    // The old edge's moved_out comes last, its heartbeat (still counting a)
    // before it.
    e2.MoveIn(a, e1.Get(a), "e1");
    e1.Heartbeat();
    e2.Heartbeat();
    Flush(bus);
    EXPECT_EQ(ListedIds(*broker), (Ids{a, cluster.b, cluster.c, cluster.d}));
    EXPECT_EQ(broker->GetStats({})->totals().sockets(), 4u);
    e1.MoveOut(a, "e2");
  }
  e1.Heartbeat();
  e2.Heartbeat();
  Flush(bus);

  // a is e2's now, once, with its rooms and user.
  EXPECT_EQ(Listing(*broker), Concat(e1.Expected(), e2.Expected()));
  EXPECT_EQ(ListedIds(*broker), (Ids{a, cluster.b, cluster.c, cluster.d}));
  auto listed_a = broker->ListSockets([&] {
    v1::ListSocketsRequest request;
    request.set_user_id("u1");
    request.set_namespace_("/");
    return request;
  }());
  ASSERT_TRUE(listed_a.ok());
  ASSERT_EQ(listed_a->sockets_size(), 2);
  EXPECT_EQ(FakeEdge::Describe(listed_a->sockets(0)),
            absl::StrCat(a,
                         " edge=e2 nsp=/ user=u1 rooms=r1,r3 TRANSPORT_WEBSOCKET "
                         "10.0.0.7:4242 t=1700000001"));
  EXPECT_EQ(RoomsText(*broker), "/:r1=2 /:r2=1 /:r3=1");
  EXPECT_EQ(Presence(*broker, "u1"),
            absl::StrCat("online: ", a, "@e2 ", cluster.c, "@e2 ", cluster.d, "@e2"));
  EXPECT_EQ(Presence(*broker, "u2"), absl::StrCat("online: ", cluster.b, "@e1"));
  v1::GetStatsResponse stats = Stats(*broker);
  EXPECT_EQ(stats.totals().sockets(), 4u);
  EXPECT_EQ(stats.totals().users(), 2u);
  EXPECT_EQ(stats.totals().rooms(), 3u);
  EXPECT_EQ(EdgeSockets(*broker), "e1=1 e2=3");
  // Heartbeats on both sides agreed with the index all along: no snapshot.
  EXPECT_EQ(e1.snapshot_requests() + e2.snapshot_requests(), 0);

  // No churn: the watcher saw nothing of the move ...
  EXPECT_EQ(lifecycle.Lines(), (std::vector<std::string>{}));
  // ... while it does see a real disconnect, from the edge that holds a now.
  e2.Disconnect(a);
  Flush(bus);
  EXPECT_EQ(
      lifecycle.Lines(),
      (std::vector<std::string>{absl::StrCat(
          static_cast<int>(v1::WatchEventsResponse::kDisconnected), " @e2 disconnected ", a)}));
  EXPECT_EQ(ListedIds(*broker), (Ids{cluster.b, cluster.c, cluster.d}));
  EXPECT_EQ(RoomsText(*broker), "/:r1=1 /:r2=1");
}

INSTANTIATE_TEST_SUITE_P(BothOrders, BrokerMoveTest,
                         testing::Values(Order::kOutThenIn, Order::kInThenOut),
                         [](const testing::TestParamInfo<Order>& info) {
                           return info.param == Order::kOutThenIn ? std::string("OutThenIn")
                                                                  : std::string("InThenOut");
                         });

// Lost moves: a snapshot of the new edge that lists the socket takes it from
// the old edge, before or after the old edge's moved_out; a snapshot of the
// old edge that no longer lists it (its moved_out lost) settles the move.
enum class Loss { kInLostOutFirst, kInLostOutLater, kOutLost };

TEST(BrokerMoveSnapshotTest, SnapshotsOfBothEdgesConverge) {
  for (Loss loss : {Loss::kInLostOutFirst, Loss::kInLostOutLater, Loss::kOutLost}) {
    SCOPED_TRACE(static_cast<int>(loss));
    bus::InProcessBus bus;
    auto broker = StartBroker(bus);
    Cluster cluster(bus);
    FakeEdge& e1 = cluster.e1;
    FakeEdge& e2 = cluster.e2;
    e1.ServeSnapshots();
    e2.ServeSnapshots();
    ASSERT_TRUE(Eventually([&] { return cluster.Indexed(*broker); }));
    // Indexed may come from a snapshot while the edges' connect events are
    // still on the bus: the watch starts after them (under ASan and load the
    // watcher saw one).
    Flush(bus);
    Seen lifecycle;
    auto watch = broker->StartWatch({}, lifecycle.OnEvent(), [] {});
    ASSERT_TRUE(watch.ok()) << watch.status();

    const std::string a = cluster.a;
    switch (loss) {
      case Loss::kInLostOutFirst:
        e2.MoveIn(a, e1.MoveOut(a, "e2"), "e1", /*publish=*/false);
        // last_seq ahead, and still at the next heartbeat: e2's snapshot
        e2.Heartbeat();
        e2.Heartbeat();
        break;
      case Loss::kInLostOutLater:
        e2.MoveIn(a, e1.Get(a), "e1", /*publish=*/false);
        e2.Heartbeat();
        e2.Heartbeat();
        ASSERT_TRUE(Eventually([&] { return e2.snapshot_requests() == 1; }));
        Flush(bus);
        EXPECT_EQ(ListedIds(*broker), (Ids{a, cluster.b, cluster.c, cluster.d}));
        e1.Heartbeat();  // still counting a: agrees
        e1.MoveOut(a, "e2");
        break;
      case Loss::kOutLost:
        e2.MoveIn(a, e1.MoveOut(a, "e2", /*publish=*/false), "e1");
        e1.Heartbeat();  // last_seq ahead (twice): e1's snapshot, without a
        e1.Heartbeat();
        ASSERT_TRUE(Eventually([&] { return e1.snapshot_requests() == 1; }));
        break;
    }
    ASSERT_TRUE(Eventually([&] {
      return Listing(*broker) == Concat(e1.Expected(), e2.Expected());
    })) << absl::StrJoin(Listing(*broker), "\n");
    EXPECT_EQ(RoomsText(*broker), "/:r1=2 /:r2=1");
    EXPECT_EQ(Presence(*broker, "u1"),
              absl::StrCat("online: ", a, "@e2 ", cluster.c, "@e2 ", cluster.d, "@e2"));
    EXPECT_EQ(EdgeSockets(*broker), "e1=1 e2=3");
    EXPECT_EQ(broker->GetStats({})->totals().sockets(), 4u);
    // Settled: more heartbeats ask for nothing more.
    const int asked = e1.snapshot_requests() + e2.snapshot_requests();
    EXPECT_EQ(asked, 1);
    e1.Heartbeat();
    e2.Heartbeat();
    Flush(bus);
    EXPECT_EQ(e1.snapshot_requests() + e2.snapshot_requests(), asked);
    EXPECT_EQ(Listing(*broker), Concat(e1.Expected(), e2.Expected()));
    EXPECT_EQ(lifecycle.Lines(), (std::vector<std::string>{}));
  }
}

}  // namespace
}  // namespace switchboard::broker
