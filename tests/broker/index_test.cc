#include "broker/index.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace switchboard::broker {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Concatenation without operator+ (GCC 12's -Wrestrict false positive at -O3).
template <class... T>
std::string Cat(const T&... parts) {
  std::string out;
  (out.append(parts), ...);
  return out;
}
std::string Num(long n) { return std::to_string(n); }

const TimePoint kT0 = TimePoint{} + std::chrono::hours(1);
const WallTime kW0 = WallTime{} + std::chrono::hours(24 * 365 * 50);

SocketInfo Sock(std::string id, std::string nsp, std::string user,
                std::vector<std::string> rooms = {}) {
  SocketInfo s;
  s.id = std::move(id);
  s.nsp = std::move(nsp);
  s.user_id = std::move(user);
  s.transport = "websocket";
  s.remote_address = "10.0.0.1";
  s.connected_at = kW0;
  s.rooms = std::move(rooms);
  return s;
}

std::vector<std::string> Ids(const std::vector<SocketInfo>& sockets) {
  std::vector<std::string> ids;
  for (const auto& s : sockets) ids.push_back(s.id);
  return ids;
}

std::vector<SocketInfo> AllSockets(const Index& index, ListSocketsRequest request = {}) {
  std::vector<SocketInfo> out;
  for (int pages = 0;; ++pages) {
    auto page = index.ListSockets(request);
    EXPECT_TRUE(page.ok()) << page.status();
    if (!page.ok() || pages > 100000) break;
    out.insert(out.end(), page->sockets.begin(), page->sockets.end());
    if (page->next_page_token.empty()) break;
    request.page_token = page->next_page_token;
  }
  return out;
}

std::vector<RoomInfo> AllRooms(const Index& index, ListRoomsRequest request = {}) {
  std::vector<RoomInfo> out;
  for (int pages = 0;; ++pages) {
    auto page = index.ListRooms(request);
    EXPECT_TRUE(page.ok()) << page.status();
    if (!page.ok() || pages > 100000) break;
    out.insert(out.end(), page->rooms.begin(), page->rooms.end());
    if (page->next_page_token.empty()) break;
    request.page_token = page->next_page_token;
  }
  return out;
}

// Feeds one edge's stream with consecutive sequence numbers.
struct Feeder {
  Index& index;
  std::string edge;
  uint64_t seq = 0;
  ApplyResult operator()(const Event& event, TimePoint now = kT0) {
    return index.ApplyEvent(edge, ++seq, event, now);
  }
};

TEST(IndexTest, OrderedEventsBuildTheState) {
  Index index;
  Feeder e1{index, "e1"};
  EXPECT_EQ(e1(Connected{Sock("a", "/", "u1")}), ApplyResult::kApplied);
  EXPECT_EQ(e1(Connected{Sock("b", "/", "u2", {"r1"})}), ApplyResult::kApplied);
  EXPECT_EQ(e1(Joined{"a", "r1"}), ApplyResult::kApplied);
  EXPECT_EQ(e1(Joined{"a", "r2"}), ApplyResult::kApplied);
  EXPECT_EQ(e1(Left{"b", "r1"}), ApplyResult::kApplied);
  EXPECT_EQ(e1(Connected{Sock("c", "/chat", "u1")}), ApplyResult::kApplied);
  EXPECT_EQ(e1(Disconnected{"b"}), ApplyResult::kApplied);

  auto a = index.GetSocket("a");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->edge_id, "e1");
  EXPECT_EQ(a->nsp, "/");
  EXPECT_EQ(a->user_id, "u1");
  EXPECT_EQ(a->transport, "websocket");
  EXPECT_EQ(a->remote_address, "10.0.0.1");
  EXPECT_EQ(a->connected_at, kW0);
  EXPECT_EQ(a->rooms, (std::vector<std::string>{"r1", "r2"}));
  EXPECT_FALSE(index.GetSocket("b").has_value());

  EXPECT_EQ(Ids(AllSockets(index)), (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(AllRooms(index), (std::vector<RoomInfo>{{"/", "r1", 1}, {"/", "r2", 1}}));
  EXPECT_TRUE(index.EdgesNeedingSnapshot().empty());

  Stats stats = index.GetStats();
  EXPECT_EQ(stats.edges, 1u);
  EXPECT_EQ(stats.sockets, 2u);
  EXPECT_EQ(stats.users, 1u);
  EXPECT_EQ(stats.rooms, 2u);
  EXPECT_EQ(stats.per_edge, (std::vector<EdgeStats>{{"e1", 2, 7, false}}));
  EXPECT_EQ(stats.per_namespace, (std::vector<NamespaceStats>{{"/", 1, 1, 2}, {"/chat", 1, 1, 0}}));
}

TEST(IndexTest, EventsAboutOtherEdgesSocketsAndOwnRoomAreNoOps) {
  Index index;
  Feeder e1{index, "e1"}, e2{index, "e2"};
  e1(Connected{Sock("a", "/", "", {"a", "r"})});           // own-id room in the list
  EXPECT_EQ(e2(Joined{"a", "x"}), ApplyResult::kApplied);  // consumes seq, no-op
  EXPECT_EQ(e2(Disconnected{"a"}), ApplyResult::kApplied);
  EXPECT_EQ(e1(Joined{"a", "a"}), ApplyResult::kApplied);
  EXPECT_EQ(e1(Joined{"a", "r"}), ApplyResult::kApplied);  // twice: once
  EXPECT_EQ(e1(Left{"a", "nope"}), ApplyResult::kApplied);
  EXPECT_EQ(e1(Joined{"ghost", "r"}), ApplyResult::kApplied);
  auto a = index.GetSocket("a");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->rooms, (std::vector<std::string>{"r"}));
  EXPECT_EQ(AllRooms(index), (std::vector<RoomInfo>{{"/", "r", 1}}));
  EXPECT_EQ(index.GetStats().users, 0u);  // anonymous
  EXPECT_EQ(index.GetStats().per_edge[1].last_seq, 2u);
}

TEST(IndexTest, TransportChangeUpdatesOnlyTheOwnedSocket) {
  Index index;
  Feeder e1{index, "e1"}, e2{index, "e2"};
  SocketInfo polling = Sock("a", "/", "");
  polling.transport = "polling";
  e1(Connected{polling});
  EXPECT_EQ(e2(TransportChanged{"a", "websocket"}), ApplyResult::kApplied);  // not e2's: no-op
  EXPECT_EQ(index.GetSocket("a")->transport, "polling");
  EXPECT_EQ(e1(TransportChanged{"a", "websocket"}), ApplyResult::kApplied);
  EXPECT_EQ(index.GetSocket("a")->transport, "websocket");
  EXPECT_EQ(index.GetStats().per_edge[0].last_seq, 2u);
}

TEST(IndexTest, DuplicatesAreIgnored) {
  Index index;
  std::vector<Event> stream = {Connected{Sock("a", "/", "u1")}, Joined{"a", "r"},
                               Connected{Sock("b", "/", "u2")}, Left{"a", "r"}};
  for (size_t i = 0; i < stream.size(); ++i) {
    EXPECT_EQ(index.ApplyEvent("e1", i + 1, stream[i], kT0), ApplyResult::kApplied);
  }
  Stats before = index.GetStats();
  // The whole stream again, and an old event out of order.
  for (size_t i = 0; i < stream.size(); ++i) {
    EXPECT_EQ(index.ApplyEvent("e1", i + 1, stream[i], kT0), ApplyResult::kDuplicate);
  }
  EXPECT_EQ(index.ApplyEvent("e1", 2, Joined{"a", "r"}, kT0), ApplyResult::kDuplicate);
  EXPECT_EQ(index.GetStats(), before);
  EXPECT_EQ(before.rooms, 0u);
  EXPECT_EQ(Ids(AllSockets(index)), (std::vector<std::string>{"a", "b"}));
}

TEST(IndexTest, GapStopsApplyingUntilASnapshot) {
  Index index;
  EXPECT_EQ(index.ApplyEvent("e1", 1, Connected{Sock("a", "/", "u1")}, kT0), ApplyResult::kApplied);
  EXPECT_EQ(index.ApplyEvent("e1", 2, Connected{Sock("b", "/", "u2")}, kT0), ApplyResult::kApplied);
  // seq 3 (connect c) and 4 (join b r) are lost.
  EXPECT_EQ(index.ApplyEvent("e1", 5, Disconnected{"a"}, kT0), ApplyResult::kGap);
  EXPECT_TRUE(index.NeedsSnapshot("e1"));
  EXPECT_EQ(index.EdgesNeedingSnapshot(), (std::vector<std::string>{"e1"}));
  EXPECT_EQ(index.ApplyEvent("e1", 6, Joined{"b", "late"}, kT0), ApplyResult::kGap);
  // Nothing applied meanwhile; the old state stays listed.
  EXPECT_EQ(Ids(AllSockets(index)), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(AllRooms(index).empty());
  // A heartbeat cannot clear it.
  EXPECT_EQ(index.ApplyHeartbeat({"e1", 6, {2}}, kT0), ApplyResult::kGap);

  // The snapshot as of seq 5: a gone, c there, b in r. Held events 6 applies.
  Snapshot snapshot{"e1", 5, {Sock("b", "/", "u2", {"r"}), Sock("c", "/", "u3")}};
  EXPECT_EQ(index.ApplySnapshot(snapshot, kT0), ApplyResult::kApplied);
  EXPECT_FALSE(index.NeedsSnapshot("e1"));
  EXPECT_EQ(Ids(AllSockets(index)), (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(index.GetSocket("b")->rooms, (std::vector<std::string>{"late", "r"}));
  EXPECT_EQ(index.GetStats().per_edge, (std::vector<EdgeStats>{{"e1", 2, 6, false}}));
  EXPECT_EQ(index.ApplyEvent("e1", 6, Joined{"b", "late"}, kT0), ApplyResult::kDuplicate);
  EXPECT_EQ(index.ApplyEvent("e1", 7, Disconnected{"c"}, kT0), ApplyResult::kApplied);
  EXPECT_EQ(index.GetPresence("u3").online, false);
  EXPECT_EQ(index.ApplyHeartbeat({"e1", 7, {1}}, kT0), ApplyResult::kApplied);
}

TEST(IndexTest, SnapshotFollowedByAHoleAsksForAnother) {
  Index index;
  index.ApplyEvent("e1", 1, Connected{Sock("a", "/", "")}, kT0);
  EXPECT_EQ(index.ApplyEvent("e1", 4, Connected{Sock("d", "/", "")}, kT0), ApplyResult::kGap);
  EXPECT_EQ(index.ApplyEvent("e1", 6, Connected{Sock("f", "/", "")}, kT0), ApplyResult::kGap);
  // Snapshot as of 3: held 4 applies, 5 is missing.
  Snapshot snapshot{"e1", 3, {Sock("a", "/", ""), Sock("c", "/", "")}};
  EXPECT_EQ(index.ApplySnapshot(snapshot, kT0), ApplyResult::kGap);
  EXPECT_TRUE(index.NeedsSnapshot("e1"));
  EXPECT_EQ(Ids(AllSockets(index)), (std::vector<std::string>{"a", "c", "d"}));
  Snapshot later{"e1", 6, {Sock("a", "/", ""), Sock("e", "/", ""), Sock("f", "/", "")}};
  EXPECT_EQ(index.ApplySnapshot(later, kT0), ApplyResult::kApplied);
  EXPECT_EQ(Ids(AllSockets(index)), (std::vector<std::string>{"a", "e", "f"}));
  EXPECT_EQ(index.ApplyEvent("e1", 7, Disconnected{"a"}, kT0), ApplyResult::kApplied);
}

TEST(IndexTest, HeldEventsAreBounded) {
  Index index;
  ASSERT_EQ(index.ApplyEvent("e1", 5, Connected{Sock("first", "/", "")}, kT0), ApplyResult::kGap);
  const uint64_t last = 5 + kMaxPendingEvents + 10;
  for (uint64_t seq = 6; seq <= last; ++seq) {
    ASSERT_EQ(index.ApplyEvent("e1", seq, Connected{Sock(Cat("s", Num(seq)), "/", "")}, kT0),
              ApplyResult::kGap);
  }
  // The held ones apply after the snapshot; those past the bound were lost,
  // and the heartbeats say so (the second: the first may have overtaken them).
  EXPECT_EQ(index.ApplySnapshot({"e1", 4, {}}, kT0), ApplyResult::kApplied);
  EXPECT_EQ(index.socket_count(), kMaxPendingEvents);
  EXPECT_EQ(index.ApplyHeartbeat({"e1", last, {last - 4}}, kT0), ApplyResult::kApplied);
  EXPECT_FALSE(index.NeedsSnapshot("e1"));
  EXPECT_EQ(index.ApplyHeartbeat({"e1", last, {last - 4}}, kT0), ApplyResult::kGap);
  EXPECT_TRUE(index.NeedsSnapshot("e1"));
}

TEST(IndexTest, NewEdgesNeedASnapshotUnlessTheyStartAtTheBeginning) {
  Index index;  // a broker that just started
  EXPECT_EQ(index.ApplyEvent("old", 41, Connected{Sock("x", "/", "")}, kT0), ApplyResult::kGap);
  EXPECT_EQ(index.ApplyEvent("new", 1, Connected{Sock("y", "/", "")}, kT0), ApplyResult::kApplied);
  EXPECT_EQ(index.ApplyHeartbeat({"idle", 0, {0}}, kT0), ApplyResult::kApplied);
  EXPECT_EQ(index.ApplyHeartbeat({"busy", 12, {3}}, kT0), ApplyResult::kGap);
  EXPECT_EQ(index.EdgesNeedingSnapshot(), (std::vector<std::string>{"busy", "old"}));
  EXPECT_EQ(index.ApplyEvent("idle", 1, Connected{Sock("z", "/", "")}, kT0), ApplyResult::kApplied);
  EXPECT_EQ(Ids(AllSockets(index)), (std::vector<std::string>{"y", "z"}));
  EXPECT_EQ(index.ApplySnapshot({"old", 41, {Sock("x", "/", "")}}, kT0), ApplyResult::kApplied);
  EXPECT_EQ(index.EdgesNeedingSnapshot(), (std::vector<std::string>{"busy"}));
  EXPECT_EQ(index.GetStats().edges, 4u);
}

// A heartbeat travels on its own subject and can overtake the events it
// counts (a burst of connects): no snapshot while they arrive by the next one.
TEST(IndexTest, AHeartbeatThatOvertakesItsEventsWaitsForThem) {
  Index index;
  index.ApplyEvent("e1", 1, Connected{Sock("a", "/", "")}, kT0);
  EXPECT_EQ(index.ApplyHeartbeat({"e1", 3, {3}}, kT0), ApplyResult::kApplied);
  EXPECT_FALSE(index.NeedsSnapshot("e1"));
  EXPECT_EQ(index.ApplyEvent("e1", 2, Connected{Sock("b", "/", "")}, kT0), ApplyResult::kApplied);
  EXPECT_EQ(index.ApplyEvent("e1", 3, Connected{Sock("c", "/", "")}, kT0), ApplyResult::kApplied);
  // Overtaken again by the next one; the events it announced (up to 3) came.
  EXPECT_EQ(index.ApplyHeartbeat({"e1", 5, {5}}, kT0), ApplyResult::kApplied);
  EXPECT_EQ(index.ApplyEvent("e1", 4, Connected{Sock("d", "/", "")}, kT0), ApplyResult::kApplied);
  EXPECT_EQ(index.ApplyEvent("e1", 5, Connected{Sock("e", "/", "")}, kT0), ApplyResult::kApplied);
  EXPECT_EQ(index.ApplyHeartbeat({"e1", 5, {5}}, kT0), ApplyResult::kApplied);
  EXPECT_FALSE(index.NeedsSnapshot("e1"));
  EXPECT_EQ(Ids(AllSockets(index)), (std::vector<std::string>{"a", "b", "c", "d", "e"}));
  // Far behind (a slow subscription): still waiting while events keep coming.
  EXPECT_EQ(index.ApplyHeartbeat({"e1", 9, {9}}, kT0), ApplyResult::kApplied);
  EXPECT_EQ(index.ApplyEvent("e1", 6, Connected{Sock("f", "/", "")}, kT0), ApplyResult::kApplied);
  EXPECT_EQ(index.ApplyHeartbeat({"e1", 9, {9}}, kT0), ApplyResult::kApplied);
  EXPECT_FALSE(index.NeedsSnapshot("e1"));
  // None since: 7 to 9 were lost.
  EXPECT_EQ(index.ApplyHeartbeat({"e1", 9, {9}}, kT0), ApplyResult::kGap);
  EXPECT_EQ(index.ApplySnapshot({"e1", 9, {Sock("a", "/", "")}}, kT0), ApplyResult::kApplied);
  // At the same seq the counts are checked at once.
  EXPECT_EQ(index.ApplyHeartbeat({"e1", 9, {4}}, kT0), ApplyResult::kGap);
}

TEST(IndexTest, HeartbeatsCheckSequenceAndCounts) {
  Index index;
  index.ApplyEvent("e1", 1, Connected{Sock("a", "/", "")}, kT0);
  index.ApplyEvent("e1", 2, Connected{Sock("b", "/", "")}, kT0);
  EXPECT_EQ(index.ApplyHeartbeat({"e1", 2, {2}}, kT0), ApplyResult::kApplied);
  EXPECT_EQ(index.ApplyHeartbeat({"e1", 2, {3}}, kT0), ApplyResult::kGap);  // counts differ
  EXPECT_EQ(index.ApplySnapshot(
                {"e1", 2, {Sock("a", "/", ""), Sock("b", "/", ""), Sock("c", "/", "")}}, kT0),
            ApplyResult::kApplied);
  EXPECT_EQ(index.ApplyHeartbeat({"e1", 2, {3}}, kT0), ApplyResult::kApplied);
  // Ahead: seq 3 may be on its way. Still missing at the next one: lost.
  EXPECT_EQ(index.ApplyHeartbeat({"e1", 3, {3}}, kT0), ApplyResult::kApplied);
  EXPECT_EQ(index.ApplyHeartbeat({"e1", 4, {4}}, kT0), ApplyResult::kGap);  // missed seq 3
  EXPECT_EQ(index.ApplySnapshot({"e1", 3, {Sock("a", "/", "")}}, kT0), ApplyResult::kApplied);

  // Behind the applied events: overtaken by them, its counts older than the
  // index's. Stale, not a restart (a restarted edge has a new incarnation, and
  // the broker forgets the old one's sockets first: ForgetEdge).
  EXPECT_EQ(index.ApplyEvent("e1", 4, Connected{Sock("n", "/", "")}, kT0), ApplyResult::kApplied);
  EXPECT_EQ(index.ApplyHeartbeat({"e1", 3, {7}}, kT0), ApplyResult::kApplied);
  EXPECT_FALSE(index.NeedsSnapshot("e1"));
  EXPECT_EQ(index.ApplyHeartbeat({"e1", 4, {2}}, kT0), ApplyResult::kApplied);
  index.ForgetEdge("e1");
  EXPECT_EQ(index.ApplyEvent("e1", 1, Connected{Sock("m", "/", "")}, kT0), ApplyResult::kApplied);
  EXPECT_EQ(Ids(AllSockets(index)), (std::vector<std::string>{"m"}));
}

TEST(IndexTest, StaleSnapshotIsIgnored) {
  Index index;
  index.ApplyEvent("e1", 1, Connected{Sock("a", "/", "")}, kT0);
  index.ApplyEvent("e1", 2, Connected{Sock("b", "/", "")}, kT0);
  EXPECT_EQ(index.ApplySnapshot({"e1", 1, {Sock("a", "/", "")}}, kT0), ApplyResult::kDuplicate);
  EXPECT_EQ(index.socket_count(), 2u);
  EXPECT_EQ(index.ApplySnapshot({"e1", 2, {Sock("a", "/", "")}}, kT0), ApplyResult::kApplied);
  EXPECT_EQ(index.socket_count(), 1u);
}

// A model edge: generates a random but valid change stream and can snapshot.
class ModelEdge {
 public:
  ModelEdge(std::string id, uint32_t seed) : id_(std::move(id)), rng_(seed) {}

  // The next event of the stream.
  std::pair<uint64_t, Event> Next() {
    std::uniform_int_distribution<int> pick(0, 9);
    int what = pick(rng_);
    if (sockets_.empty() || what < 3) {
      std::string sid = Cat(id_, "-s", Num(next_socket_++));
      static const char* kNsps[] = {"/", "/chat", "/admin"};
      SocketInfo s = Sock(sid, kNsps[rng_() % 3], Cat("u", Num(rng_() % 7)));
      if (rng_() % 4 == 0) s.user_id.clear();
      if (rng_() % 2 == 0) s.rooms = {Cat("room", Num(rng_() % 5))};
      s.edge_id = id_;
      sockets_[sid] = s;
      return {++seq_, Connected{s}};
    }
    auto it = sockets_.begin();
    std::advance(it, rng_() % sockets_.size());
    SocketInfo& s = it->second;
    if (what < 5) {
      std::string sid = s.id;
      sockets_.erase(it);
      return {++seq_, Disconnected{sid}};
    }
    std::string room = Cat("room", Num(rng_() % 5));
    auto pos = std::find(s.rooms.begin(), s.rooms.end(), room);
    if (pos == s.rooms.end()) {
      s.rooms.push_back(room);
      return {++seq_, Joined{s.id, room}};
    }
    s.rooms.erase(pos);
    return {++seq_, Left{s.id, room}};
  }

  Snapshot Snap() const {
    Snapshot snap{id_, seq_, {}};
    for (const auto& [id, s] : sockets_) snap.sockets.push_back(s);
    return snap;
  }
  Heartbeat Beat() const { return {id_, seq_, {sockets_.size()}}; }
  const std::string& id() const { return id_; }
  const std::map<std::string, SocketInfo>& sockets() const { return sockets_; }

 private:
  std::string id_;
  std::mt19937 rng_;
  uint64_t seq_ = 0;
  uint64_t next_socket_ = 0;
  std::map<std::string, SocketInfo> sockets_;
};

void ExpectSameIndex(const Index& a, const Index& b) {
  EXPECT_EQ(a.GetStats(), b.GetStats());
  EXPECT_EQ(AllSockets(a, {.page_size = 13}), AllSockets(b, {.page_size = 1000}));
  EXPECT_EQ(AllRooms(a, {.page_size = 2}), AllRooms(b));
}

TEST(IndexTest, BrokersFedDifferentInterleavingsConverge) {
  constexpr int kEdges = 3;
  constexpr int kEventsPerEdge = 800;
  std::vector<ModelEdge> edges;
  std::vector<std::vector<std::pair<uint64_t, Event>>> streams(kEdges);
  for (int e = 0; e < kEdges; ++e) {
    edges.emplace_back(Cat("edge", Num(e)), 1000 + e);
    for (int i = 0; i < kEventsPerEdge; ++i) streams[e].push_back(edges[e].Next());
  }

  // Broker A: round robin. Broker B: random interleaving (per-edge order kept)
  // with duplicates thrown in.
  Index a, b;
  for (int i = 0; i < kEventsPerEdge; ++i) {
    for (int e = 0; e < kEdges; ++e) {
      ASSERT_EQ(a.ApplyEvent(edges[e].id(), streams[e][i].first, streams[e][i].second, kT0),
                ApplyResult::kApplied);
    }
  }
  std::mt19937 rng(7);
  std::vector<size_t> next(kEdges, 0);
  for (size_t left = kEdges * kEventsPerEdge; left > 0;) {
    int e = static_cast<int>(rng() % kEdges);
    if (next[e] == streams[e].size()) continue;
    auto& [seq, event] = streams[e][next[e]++];
    ASSERT_EQ(b.ApplyEvent(edges[e].id(), seq, event, kT0), ApplyResult::kApplied);
    if (rng() % 5 == 0) {
      ASSERT_EQ(b.ApplyEvent(edges[e].id(), seq, event, kT0), ApplyResult::kDuplicate);
    }
    --left;
  }
  ExpectSameIndex(a, b);

  // Both equal the truth.
  std::vector<SocketInfo> truth;
  for (const auto& edge : edges) {
    for (auto [id, s] : edge.sockets()) {
      std::sort(s.rooms.begin(), s.rooms.end());
      truth.push_back(s);
    }
  }
  std::sort(truth.begin(), truth.end(),
            [](const SocketInfo& x, const SocketInfo& y) { return x.id < y.id; });
  EXPECT_EQ(AllSockets(a), truth);
  EXPECT_GT(truth.size(), 50u);
  EXPECT_GT(a.GetStats().rooms, 5u);

  // Broker C starts late, mid-stream: gaps, snapshots, then the live tail.
  Index c;
  std::vector<std::vector<std::pair<uint64_t, Event>>> tails(kEdges);
  for (int e = 0; e < kEdges; ++e) {
    for (int i = 0; i < 50; ++i) tails[e].push_back(edges[e].Next());
  }
  for (int e = 0; e < kEdges; ++e) {
    // The first live event is a gap; the snapshot comes "later", taken at the
    // live position, after a few more held events.
    ASSERT_EQ(c.ApplyEvent(edges[e].id(), tails[e][0].first, tails[e][0].second, kT0),
              ApplyResult::kGap);
  }
  for (int e = 0; e < kEdges; ++e) {
    Snapshot snap = edges[e].Snap();  // as of the end of the tails
    for (int i = 1; i < 20; ++i) {
      ASSERT_EQ(c.ApplyEvent(edges[e].id(), tails[e][i].first, tails[e][i].second, kT0),
                ApplyResult::kGap);
    }
    ASSERT_EQ(c.ApplySnapshot(snap, kT0), ApplyResult::kApplied);
    for (int i = 20; i < 50; ++i) {
      ASSERT_EQ(c.ApplyEvent(edges[e].id(), tails[e][i].first, tails[e][i].second, kT0),
                ApplyResult::kDuplicate);
    }
  }
  // Broker A got the tails live, in order.
  for (int e = 0; e < kEdges; ++e) {
    for (auto& [seq, event] : tails[e]) {
      ASSERT_EQ(a.ApplyEvent(edges[e].id(), seq, event, kT0), ApplyResult::kApplied);
    }
  }
  ExpectSameIndex(a, c);
  for (const auto& edge : edges) {
    EXPECT_EQ(c.ApplyHeartbeat(edge.Beat(), kT0), ApplyResult::kApplied);
    EXPECT_EQ(a.ApplyHeartbeat(edge.Beat(), kT0), ApplyResult::kApplied);
  }
  EXPECT_TRUE(c.EdgesNeedingSnapshot().empty());
}

TEST(IndexTest, HeldEventsAfterASnapshotConverge) {
  // Same as a late broker, but the snapshot is older than the held events.
  ModelEdge edge("e", 99);
  std::vector<std::pair<uint64_t, Event>> stream;
  for (int i = 0; i < 300; ++i) stream.push_back(edge.Next());
  Index truth;
  for (auto& [seq, event] : stream) truth.ApplyEvent("e", seq, event, kT0);

  ModelEdge replay("e", 99);
  for (int i = 0; i < 100; ++i) replay.Next();
  Snapshot at100 = replay.Snap();

  Index late;
  for (int i = 90; i < 300; ++i) {
    ASSERT_EQ(late.ApplyEvent("e", stream[i].first, stream[i].second, kT0), ApplyResult::kGap);
  }
  ASSERT_EQ(late.ApplySnapshot(at100, kT0), ApplyResult::kApplied);
  ExpectSameIndex(truth, late);
  EXPECT_EQ(late.ApplyHeartbeat(edge.Beat(), kT0), ApplyResult::kApplied);
}

TEST(IndexTest, ExpiryDropsExactlyThatEdge) {
  Index index;
  Feeder e1{index, "e1"}, e2{index, "e2"};
  e1(Connected{Sock("a1", "/", "alice", {"shared", "only1"})});
  e1(Connected{Sock("b1", "/", "bob", {"shared"})});
  e2(Connected{Sock("a2", "/", "alice", {"shared", "only2"})});
  e2(Connected{Sock("c2", "/", "carol", {"only2"})});
  e2(Connected{Sock("c3", "/chat", "carol", {"x"})});
  ASSERT_EQ(index.GetStats().users, 3u);

  // e1 keeps beating; e2 falls silent at kT0.
  EXPECT_EQ(index.ApplyHeartbeat({"e1", 2, {2}}, kT0 + seconds(5)), ApplyResult::kApplied);
  EXPECT_TRUE(index.ExpireEdges(kT0 + seconds(10), seconds(10)).empty());  // exactly 10 s: alive
  EXPECT_EQ(index.ApplyHeartbeat({"e1", 2, {2}}, kT0 + seconds(9)), ApplyResult::kApplied);
  // The sockets forgotten are handed out (the broker tells its watchers).
  std::vector<SocketInfo> dropped;
  EXPECT_EQ(index.ExpireEdges(kT0 + seconds(10) + milliseconds(1), seconds(10), &dropped),
            (std::vector<std::string>{"e2"}));
  std::sort(dropped.begin(), dropped.end(),
            [](const SocketInfo& a, const SocketInfo& b) { return a.id < b.id; });
  EXPECT_EQ(Ids(dropped), (std::vector<std::string>{"a2", "c2", "c3"}));
  EXPECT_EQ(dropped[2].user_id, "carol");
  EXPECT_EQ(dropped[2].nsp, "/chat");

  EXPECT_EQ(Ids(AllSockets(index)), (std::vector<std::string>{"a1", "b1"}));
  EXPECT_EQ(AllRooms(index), (std::vector<RoomInfo>{{"/", "only1", 1}, {"/", "shared", 2}}));
  EXPECT_FALSE(index.GetPresence("carol").online);
  EXPECT_EQ(Ids(index.GetPresence("alice").sockets), (std::vector<std::string>{"a1"}));
  Stats stats = index.GetStats();
  EXPECT_EQ(stats.edges, 1u);
  EXPECT_EQ(stats.sockets, 2u);
  EXPECT_EQ(stats.users, 2u);
  EXPECT_EQ(stats.rooms, 2u);
  EXPECT_EQ(stats.per_namespace, (std::vector<NamespaceStats>{{"/", 2, 2, 2}}));
  EXPECT_TRUE(index.Resolve({.nsp = "/chat"}).empty());

  // A custom timeout; e2 coming back later starts over.
  EXPECT_EQ(index.ExpireEdges(kT0 + seconds(12), seconds(2)), (std::vector<std::string>{"e1"}));
  EXPECT_EQ(index.GetStats(), Stats{});
  EXPECT_EQ(index.ApplyEvent("e2", 6, Disconnected{"a2"}, kT0), ApplyResult::kGap);
}

TEST(IndexTest, ForgetEdge) {
  Index index;
  Feeder e1{index, "e1"}, e2{index, "e2"};
  e1(Connected{Sock("a", "/", "u", {"r"})});
  e2(Connected{Sock("b", "/", "u", {"r"})});
  EXPECT_TRUE(index.ForgetEdge("e1"));
  EXPECT_FALSE(index.ForgetEdge("e1"));
  EXPECT_EQ(AllRooms(index), (std::vector<RoomInfo>{{"/", "r", 1}}));
  EXPECT_EQ(Ids(index.GetPresence("u").sockets), (std::vector<std::string>{"b"}));
  EXPECT_EQ(index.GetStats().edges, 1u);
}

TEST(IndexTest, PaginationWalksEveryItemOnce) {
  Index index;
  Snapshot s1{"e1", 10, {}}, s2{"e2", 10, {}};
  std::set<std::string> all, room7, user3, chat;
  for (int i = 0; i < 2500; ++i) {
    char id[16];
    std::snprintf(id, sizeof id, "s%05d", (i * 7919) % 2500);  // shuffled order
    std::string nsp = i % 3 == 0 ? "/chat" : "/";
    std::string user = Cat("u", Num(i % 11));
    std::vector<std::string> rooms = {Cat("r", Num(i % 13))};
    (i % 2 ? s1 : s2).sockets.push_back(Sock(id, nsp, user, rooms));
    all.insert(id);
    if (nsp == "/" && rooms[0] == "r7") room7.insert(id);
    if (user == "u3") user3.insert(id);
    if (nsp == "/chat") chat.insert(id);
  }
  index.ApplySnapshot(s1, kT0);
  index.ApplySnapshot(s2, kT0);

  auto walk = [&](ListSocketsRequest request) {
    std::vector<std::string> ids = Ids(AllSockets(index, request));
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
    return std::set<std::string>(ids.begin(), ids.end()).size() == ids.size()
               ? std::set<std::string>(ids.begin(), ids.end())
               : std::set<std::string>{};
  };
  for (int page_size : {0, 1, 7, 100, 999, 1000, 5000}) {
    SCOPED_TRACE(page_size);
    EXPECT_EQ(walk({.page_size = page_size}), all);
    EXPECT_EQ(walk({.nsp = "/", .room = "r7", .page_size = page_size}), room7);
    EXPECT_EQ(walk({.user = "u3", .page_size = page_size}), user3);
    EXPECT_EQ(walk({.nsp = "/chat", .page_size = page_size}), chat);
  }
  // Sizes: default 100, clamped at 1000.
  EXPECT_EQ(index.ListSockets({})->sockets.size(), 100u);
  EXPECT_EQ(index.ListSockets({.page_size = 5000})->sockets.size(), 1000u);
  // Filters combine.
  std::set<std::string> user3_chat;
  for (const auto& s : AllSockets(index, {.nsp = "/chat", .user = "u3"})) {
    EXPECT_EQ(s.nsp, "/chat");
    EXPECT_EQ(s.user_id, "u3");
    user3_chat.insert(s.id);
  }
  EXPECT_FALSE(user3_chat.empty());
  // A room name with no namespace: that room in every namespace.
  size_t r7_anywhere = AllSockets(index, {.room = "r7", .page_size = 3}).size();
  EXPECT_GT(r7_anywhere, room7.size());
  for (const auto& s : AllSockets(index, {.room = "r7", .page_size = 3})) {
    EXPECT_EQ(s.rooms, (std::vector<std::string>{"r7"}));
  }

  // Changes during a walk: the removed item that was already returned does
  // not break the next page; nothing is returned twice.
  auto first = index.ListSockets({.page_size = 10});
  ASSERT_TRUE(first.ok());
  index.ApplyEvent("e1", 11, Disconnected{first->sockets.back().id}, kT0);
  index.ApplyEvent("e2", 11, Disconnected{first->sockets.back().id}, kT0);
  auto second = index.ListSockets({.page_size = 10, .page_token = first->next_page_token});
  ASSERT_TRUE(second.ok());
  EXPECT_GT(second->sockets.front().id, first->sockets.back().id);

  // Rooms: every (namespace, room) once.
  for (int page_size : {1, 4, 100}) {
    auto rooms = AllRooms(index, {.page_size = page_size});
    EXPECT_EQ(rooms.size(), 26u);
    EXPECT_TRUE(std::is_sorted(rooms.begin(), rooms.end(), [](const auto& x, const auto& y) {
      return std::tie(x.nsp, x.room) < std::tie(y.nsp, y.room);
    }));
  }
}

TEST(IndexTest, BadPageRequests) {
  Index index;
  index.ApplyEvent("e1", 1, Connected{Sock("a", "/", "", {"r"})}, kT0);
  EXPECT_EQ(index.ListSockets({.page_size = -1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(index.ListRooms({.page_size = -1}).status().code(), absl::StatusCode::kInvalidArgument);
  for (std::string token : {"x", "s", "r", "r3:ab", "rx:", "r:", "r-1:a", "sa"}) {
    SCOPED_TRACE(token);
    bool socket_ok = token.size() >= 2 && token[0] == 's';
    EXPECT_EQ(index.ListSockets({.page_token = token}).ok(), socket_ok);
    EXPECT_FALSE(index.ListRooms({.page_token = token}).ok());
  }
  EXPECT_TRUE(index.ListRooms({.page_token = "r1:/r"}).ok());
}

TEST(IndexTest, RoomPrefixFilter) {
  Index index;
  Feeder e1{index, "e1"};
  e1(Connected{Sock("a", "/", "", {"game:1", "game:2", "gamer", "lobby", "game:10"})});
  e1(Connected{Sock("b", "/", "", {"game:1"})});
  e1(Connected{Sock("c", "/x", "", {"game:3", "zzz"})});
  auto names = [](const std::vector<RoomInfo>& rooms) {
    std::vector<std::string> out;
    for (const auto& r : rooms) out.push_back(Cat(r.nsp, " ", r.room, " ", Num(r.members)));
    return out;
  };
  EXPECT_EQ(names(AllRooms(index, {.nsp = "/", .prefix = "game:"})),
            (std::vector<std::string>{"/ game:1 2", "/ game:10 1", "/ game:2 1"}));
  EXPECT_EQ(names(AllRooms(index, {.prefix = "game:", .page_size = 1})),
            (std::vector<std::string>{"/ game:1 2", "/ game:10 1", "/ game:2 1", "/x game:3 1"}));
  EXPECT_EQ(names(AllRooms(index, {.prefix = "game", .page_size = 2})),
            (std::vector<std::string>{"/ game:1 2", "/ game:10 1", "/ game:2 1", "/ gamer 1",
                                      "/x game:3 1"}));
  EXPECT_TRUE(AllRooms(index, {.prefix = "nope"}).empty());
  EXPECT_TRUE(AllRooms(index, {.nsp = "/unknown"}).empty());
  EXPECT_EQ(AllRooms(index, {.nsp = "/x"}).size(), 2u);
  // Own-id rooms never appear.
  EXPECT_TRUE(AllRooms(index, {.prefix = "a"}).empty());
}

TEST(IndexTest, PresenceAcrossNamespacesAndEdges) {
  Index index;
  Feeder e1{index, "e1"}, e2{index, "e2"};
  e1(Connected{Sock("p1", "/", "alice")});
  e2(Connected{Sock("p0", "/chat", "alice", {"r"})});
  e2(Connected{Sock("q", "/", "bob")});
  Presence alice = index.GetPresence("alice");
  EXPECT_TRUE(alice.online);
  ASSERT_EQ(alice.sockets.size(), 2u);
  EXPECT_EQ(alice.sockets[0].id, "p0");
  EXPECT_EQ(alice.sockets[0].edge_id, "e2");
  EXPECT_EQ(alice.sockets[0].nsp, "/chat");
  EXPECT_EQ(alice.sockets[0].rooms, (std::vector<std::string>{"r"}));
  EXPECT_EQ(alice.sockets[1].id, "p1");
  EXPECT_EQ(alice.sockets[1].edge_id, "e1");
  EXPECT_FALSE(index.GetPresence("nobody").online);
  EXPECT_TRUE(index.GetPresence("nobody").sockets.empty());
  EXPECT_FALSE(index.GetPresence("").online);  // anonymous is nobody
  e2(Disconnected{"p0"});
  e1(Disconnected{"p1"});
  EXPECT_FALSE(index.GetPresence("alice").online);
  EXPECT_EQ(index.GetStats().users, 1u);
}

TEST(IndexTest, Resolve) {
  Index index;
  Feeder e1{index, "e1"}, e2{index, "e2"};
  e1(Connected{Sock("a", "/", "alice", {"r1", "r2"})});
  e1(Connected{Sock("b", "/", "bob", {"r1"})});
  e2(Connected{Sock("c", "/", "alice", {"r2"})});
  e2(Connected{Sock("d", "/", "", {})});
  e2(Connected{Sock("x", "/chat", "alice", {"r1"})});

  using T = std::vector<EdgeTargets>;
  // Rooms: a (in both) once.
  EXPECT_EQ(index.Resolve({.nsp = "/", .rooms = {"r1", "r2"}}),
            (T{{"e1", {"a", "b"}}, {"e2", {"c"}}}));
  EXPECT_EQ(index.Resolve({.nsp = "/", .rooms = {"r2"}}), (T{{"e1", {"a"}}, {"e2", {"c"}}}));
  // Socket ids (only in the namespace), an own-id room.
  EXPECT_EQ(index.Resolve({.nsp = "/", .socket_ids = {"d", "x", "zz", "d"}}), (T{{"e2", {"d"}}}));
  EXPECT_EQ(index.Resolve({.nsp = "/", .rooms = {"d"}}), (T{{"e2", {"d"}}}));
  // Users, every edge, this namespace only.
  EXPECT_EQ(index.Resolve({.nsp = "/", .user_ids = {"alice"}}), (T{{"e1", {"a"}}, {"e2", {"c"}}}));
  EXPECT_EQ(index.Resolve({.nsp = "/chat", .user_ids = {"alice", "bob"}}), (T{{"e2", {"x"}}}));
  // Union of kinds.
  EXPECT_EQ(
      index.Resolve({.nsp = "/", .rooms = {"r1"}, .socket_ids = {"d"}, .user_ids = {"alice"}}),
      (T{{"e1", {"a", "b"}}, {"e2", {"c", "d"}}}));
  // Empty selector: the whole namespace. Unknown namespace or no match: nothing.
  EXPECT_EQ(index.Resolve({.nsp = "/"}), (T{{"e1", {"a", "b"}}, {"e2", {"c", "d"}}}));
  EXPECT_EQ(index.Resolve({.nsp = "/chat"}), (T{{"e2", {"x"}}}));
  EXPECT_TRUE(index.Resolve({.nsp = "/nope"}).empty());
  EXPECT_TRUE(index.Resolve({.nsp = "/", .rooms = {"unknown"}}).empty());
  EXPECT_TRUE(index.Resolve({.nsp = "/", .user_ids = {"nobody"}}).empty());
}

TEST(IndexTest, CountMatchesResolveLessTheExcluded) {
  Index index;
  Feeder e1{index, "e1"}, e2{index, "e2"};
  e1(Connected{Sock("a", "/", "alice", {"r1", "r2"})});
  e1(Connected{Sock("b", "/", "bob", {"r1", "c"})});  // a room named like c's id
  e2(Connected{Sock("c", "/", "alice", {"r2"})});
  e2(Connected{Sock("d", "/", "", {})});
  e2(Connected{Sock("x", "/chat", "alice", {"r1"})});

  const absl::flat_hash_set<std::string> none;
  using Edges = std::set<std::string>;
  auto count = [&](const Selector& selector, const absl::flat_hash_set<std::string>& excluded) {
    Edges edges;
    uint64_t n = index.Count(selector, excluded, &edges);
    EXPECT_EQ(index.Count(selector, excluded, nullptr), n);  // the same without edges
    return std::make_pair(n, edges);
  };
  // One room, the whole namespace, and a union (each socket once).
  EXPECT_EQ(count({.nsp = "/", .rooms = {"r1"}}, none), std::make_pair(uint64_t{2}, Edges{"e1"}));
  EXPECT_EQ(count({.nsp = "/"}, none), std::make_pair(uint64_t{4}, Edges{"e1", "e2"}));
  EXPECT_EQ(count({.nsp = "/", .rooms = {"r1", "r2"}}, none),
            std::make_pair(uint64_t{3}, Edges{"e1", "e2"}));
  // An own-id room: the socket, and the members of a room of that name.
  EXPECT_EQ(count({.nsp = "/", .rooms = {"c"}}, none),
            std::make_pair(uint64_t{2}, Edges{"e1", "e2"}));
  // Excluded ids are not counted, nor are their edges.
  EXPECT_EQ(count({.nsp = "/", .rooms = {"r2"}}, {"c"}), std::make_pair(uint64_t{1}, Edges{"e1"}));
  EXPECT_EQ(count({.nsp = "/"}, {"a", "b"}), std::make_pair(uint64_t{2}, Edges{"e2"}));
  EXPECT_EQ(count({.nsp = "/", .user_ids = {"alice"}}, {"a"}),
            std::make_pair(uint64_t{1}, Edges{"e2"}));
  // Nothing matches.
  EXPECT_EQ(count({.nsp = "/nope"}, none), std::make_pair(uint64_t{0}, Edges{}));
  EXPECT_EQ(count({.nsp = "/", .rooms = {"unknown"}}, none), std::make_pair(uint64_t{0}, Edges{}));
}

TEST(IndexTest, StatsNumbers) {
  Index index;
  Feeder e1{index, "e1"}, e2{index, "e2"};
  e1(Connected{Sock("a", "/", "u1", {"r1", "r2"})});
  e1(Connected{Sock("b", "/", "u1", {"r1"})});
  e1(Connected{Sock("c", "/", "", {"r3"})});
  e2(Connected{Sock("d", "/", "u2", {"r1"})});
  e2(Connected{Sock("e", "/chat", "u1", {"r1"})});
  e2(Connected{Sock("f", "/chat", "u3", {})});
  index.ApplyHeartbeat({"e3", 0, {0}}, kT0);

  Stats stats = index.GetStats();
  EXPECT_EQ(stats.edges, 3u);
  EXPECT_EQ(stats.sockets, 6u);
  EXPECT_EQ(stats.users, 3u);
  EXPECT_EQ(stats.rooms, 4u);  // /:r1 r2 r3, /chat:r1
  EXPECT_EQ(stats.per_edge, (std::vector<EdgeStats>{
                                {"e1", 3, 3, false}, {"e2", 3, 3, false}, {"e3", 0, 0, false}}));
  EXPECT_EQ(stats.per_namespace, (std::vector<NamespaceStats>{{"/", 4, 2, 3}, {"/chat", 2, 2, 1}}));
}

TEST(IndexTest, SocketIdClaimedByAnotherEdgeMoves) {
  Index index;
  Feeder e1{index, "e1"}, e2{index, "e2"};
  e1(Connected{Sock("a", "/", "u", {"r"})});
  e2(Connected{Sock("a", "/chat", "v", {"s"})});
  auto a = index.GetSocket("a");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->edge_id, "e2");
  EXPECT_EQ(AllRooms(index), (std::vector<RoomInfo>{{"/chat", "s", 1}}));
  EXPECT_FALSE(index.GetPresence("u").online);
  EXPECT_EQ(index.GetStats().per_edge[0].sockets, 0u);
  e1(Disconnected{"a"});  // not e1's any more
  EXPECT_TRUE(index.GetSocket("a").has_value());
}

// ---------------------------------------------------------------------------
// Moves: MovedIn on the new edge, MovedOut on the old one, on two independent
// streams.

// e1 holds a (u1, rooms r1 r2) and b (u1, r1); e2 holds c. Returns e1's and

void TwoEdges(Feeder& e1, Feeder& e2) {
  e1(Connected{Sock("a", "/", "u1", {"r1", "r2"})});
  e1(Connected{Sock("b", "/", "u1", {"r1"})});
  e2(Connected{Sock("c", "/", "u2")});
}

// a as it moved to e2: same id, user and rooms.
SocketInfo MovedA() { return Sock("a", "/", "u1", {"r1", "r2"}); }

// What a user of the index sees: every socket with its edge and rooms, the
// rooms with their sizes, u1's presence, the stats.
std::string View(const Index& index) {
  std::string out;
  for (const SocketInfo& s : AllSockets(index)) {
    out += Cat(s.id, "@", s.edge_id, "[");
    for (const auto& room : s.rooms) out += Cat(room, " ");
    out += "] ";
  }
  out += "| ";
  for (const RoomInfo& r : AllRooms(index)) out += Cat(r.nsp, r.room, "=", Num(r.members), " ");
  out += "| u1:";
  for (const SocketInfo& s : index.GetPresence("u1").sockets) out += Cat(" ", s.id, "@", s.edge_id);
  Stats stats = index.GetStats();
  out += Cat(" | sockets=", Num(stats.sockets), " users=", Num(stats.users),
             " rooms=", Num(stats.rooms));
  for (const EdgeStats& e : stats.per_edge) out += Cat(" ", e.edge_id, "=", Num(e.sockets));
  return out;
}

const char kMoved[] =
    "a@e2[r1 r2 ] b@e1[r1 ] c@e2[] | /r1=2 /r2=1 | u1: a@e2 b@e1 | sockets=3 users=2 rooms=2 "
    "e1=1 e2=2";

TEST(IndexTest, MoveOutThenInEndsOnTheNewEdgeOnce) {
  Index index;
  Feeder e1{index, "e1"}, e2{index, "e2"};
  TwoEdges(e1, e2);
  EXPECT_EQ(e1(MovedOut{"a", "e2"}), ApplyResult::kApplied);
  EXPECT_EQ(View(index),
            "b@e1[r1 ] c@e2[] | /r1=1 | u1: b@e1 | sockets=2 users=2 rooms=1 e1=1 e2=1");
  EXPECT_EQ(index.ApplyHeartbeat({"e1", e1.seq, {1}}, kT0), ApplyResult::kApplied);
  EXPECT_EQ(e2(MovedIn{MovedA(), "e1"}), ApplyResult::kApplied);
  EXPECT_EQ(View(index), kMoved);
  // Both edges' heartbeats agree with the index: no snapshot needed.
  EXPECT_EQ(index.ApplyHeartbeat({"e1", e1.seq, {1}}, kT0), ApplyResult::kApplied);
  EXPECT_EQ(index.ApplyHeartbeat({"e2", e2.seq, {2}}, kT0), ApplyResult::kApplied);
  EXPECT_TRUE(index.EdgesNeedingSnapshot().empty());
}

TEST(IndexTest, MoveInThenOutEndsOnTheNewEdgeOnce) {
  Index index;
  Feeder e1{index, "e1"}, e2{index, "e2"};
  TwoEdges(e1, e2);
  EXPECT_EQ(e2(MovedIn{MovedA(), "e1"}), ApplyResult::kApplied);
  EXPECT_EQ(View(index), kMoved);
  // e1 has not said so yet: its heartbeat still counts a, and that is right.
  EXPECT_EQ(index.ApplyHeartbeat({"e1", e1.seq, {2}}, kT0), ApplyResult::kApplied);
  // e1's last changes to a before the move are not e1's to make any more.
  EXPECT_EQ(e1(Joined{"a", "r3"}), ApplyResult::kApplied);
  EXPECT_EQ(e1(Left{"a", "r1"}), ApplyResult::kApplied);
  EXPECT_EQ(View(index), kMoved);
  EXPECT_EQ(e1(MovedOut{"a", "e2"}), ApplyResult::kApplied);
  EXPECT_EQ(View(index), kMoved);
  EXPECT_EQ(index.ApplyHeartbeat({"e1", e1.seq, {1}}, kT0), ApplyResult::kApplied);
  EXPECT_EQ(index.ApplyHeartbeat({"e2", e2.seq, {2}}, kT0), ApplyResult::kApplied);
  EXPECT_TRUE(index.EdgesNeedingSnapshot().empty());
  // The moved socket is e2's like any other.
  EXPECT_EQ(e1(Disconnected{"a"}), ApplyResult::kApplied);  // not e1's: no-op
  EXPECT_EQ(View(index), kMoved);
  EXPECT_EQ(e2(Disconnected{"a"}), ApplyResult::kApplied);
  EXPECT_EQ(View(index),
            "b@e1[r1 ] c@e2[] | /r1=1 | u1: b@e1 | sockets=2 users=2 rooms=1 e1=1 e2=1");
}

// The old edge's snapshot taken before its MovedOut (after a gap) still lists
// the socket: it stays on the new edge, and the MovedOut held after the
// snapshot settles it.
TEST(IndexTest, StaleSnapshotOfTheOldEdgeDoesNotTakeTheSocketBack) {
  Index index;
  Feeder e1{index, "e1"}, e2{index, "e2"};
  TwoEdges(e1, e2);
  EXPECT_EQ(e2(MovedIn{MovedA(), "e1"}), ApplyResult::kApplied);
  const uint64_t before_move = e1.seq;
  ++e1.seq;  // lost
  EXPECT_EQ(e1(MovedOut{"a", "e2"}), ApplyResult::kGap);
  EXPECT_EQ(index.ApplySnapshot(
                {"e1",
                 before_move + 1,
                 {Sock("a", "/", "u1", {"r1", "r2", "r9"}), Sock("b", "/", "u1", {"r1"})}},
                kT0),
            ApplyResult::kApplied);
  EXPECT_EQ(View(index), kMoved);
  EXPECT_EQ(index.ApplyHeartbeat({"e1", e1.seq, {1}}, kT0), ApplyResult::kApplied);
  EXPECT_TRUE(index.EdgesNeedingSnapshot().empty());
}

// The old edge's snapshot taken after its MovedOut (which was lost) does not
// list the socket: the index expects no MovedOut any more.
TEST(IndexTest, SnapshotOfTheOldEdgeWithoutTheSocketSettlesTheMove) {
  Index index;
  Feeder e1{index, "e1"}, e2{index, "e2"};
  TwoEdges(e1, e2);
  EXPECT_EQ(e2(MovedIn{MovedA(), "e1"}), ApplyResult::kApplied);
  ++e1.seq;  // the MovedOut, lost (still missing at the second heartbeat)
  EXPECT_EQ(index.ApplyHeartbeat({"e1", e1.seq, {1}}, kT0), ApplyResult::kApplied);
  EXPECT_EQ(index.ApplyHeartbeat({"e1", e1.seq, {1}}, kT0), ApplyResult::kGap);
  EXPECT_EQ(index.ApplySnapshot({"e1", e1.seq, {Sock("b", "/", "u1", {"r1"})}}, kT0),
            ApplyResult::kApplied);
  EXPECT_EQ(View(index), kMoved);
  EXPECT_EQ(index.ApplyHeartbeat({"e1", e1.seq, {1}}, kT0), ApplyResult::kApplied);
  EXPECT_TRUE(index.EdgesNeedingSnapshot().empty());
}

// The new edge's MovedIn is lost and its snapshot lists the socket while the
// index still has it on the old edge: it moves to the new edge, in either
// order with the old edge's MovedOut.
TEST(IndexTest, SnapshotOfTheNewEdgeTakesTheSocket) {
  for (bool out_first : {false, true}) {
    SCOPED_TRACE(out_first ? "MovedOut first" : "snapshot first");
    Index index;
    Feeder e1{index, "e1"}, e2{index, "e2"};
    TwoEdges(e1, e2);
    if (out_first) {
      EXPECT_EQ(e1(MovedOut{"a", "e2"}), ApplyResult::kApplied);
    }
    ++e2.seq;  // the MovedIn, lost (still missing at the second heartbeat)
    EXPECT_EQ(index.ApplyHeartbeat({"e2", e2.seq, {2}}, kT0), ApplyResult::kApplied);
    EXPECT_EQ(index.ApplyHeartbeat({"e2", e2.seq, {2}}, kT0), ApplyResult::kGap);
    EXPECT_EQ(index.ApplySnapshot({"e2", e2.seq, {MovedA(), Sock("c", "/", "u2")}}, kT0),
              ApplyResult::kApplied);
    EXPECT_EQ(View(index), kMoved);
    if (!out_first) {
      EXPECT_EQ(index.ApplyHeartbeat({"e1", e1.seq, {2}}, kT0), ApplyResult::kApplied);
      EXPECT_EQ(e1(MovedOut{"a", "e2"}), ApplyResult::kApplied);
      EXPECT_EQ(View(index), kMoved);
    }
    EXPECT_EQ(index.ApplyHeartbeat({"e1", e1.seq, {1}}, kT0), ApplyResult::kApplied);
    EXPECT_EQ(index.ApplyHeartbeat({"e2", e2.seq, {2}}, kT0), ApplyResult::kApplied);
    EXPECT_TRUE(index.EdgesNeedingSnapshot().empty());
  }
}

// A restarted or expired old edge owes nothing: its debts go with it.
TEST(IndexTest, ForgettingTheOldEdgeForgetsWhatItOwed) {
  Index index;
  Feeder e1{index, "e1"}, e2{index, "e2"};
  TwoEdges(e1, e2);
  EXPECT_EQ(e2(MovedIn{MovedA(), "e1"}), ApplyResult::kApplied);
  EXPECT_TRUE(index.ForgetEdge("e1"));
  Feeder e1_again{index, "e1"};
  EXPECT_EQ(e1_again(Connected{Sock("b2", "/", "")}), ApplyResult::kApplied);
  EXPECT_EQ(index.ApplyHeartbeat({"e1", 1, {1}}, kT0), ApplyResult::kApplied);
  EXPECT_EQ(index.GetSocket("a")->edge_id, "e2");
}

// Sockets whose ids share long prefixes and differ in length, with long claims
// and IPv6 addresses, connected, moved between rooms and disconnected in a
// random order: every lookup by id afterwards gives exactly what the live
// socket was announced with, removed ones are gone, and the ordered views list
// the live ids in order.
TEST(IndexTest, LookupsByIdAfterManyRemovalsGiveTheAnnouncedSockets) {
  Index index;
  Feeder e1{index, "e1"};
  std::mt19937 rng(7);
  std::map<std::string, SocketInfo> live;
  std::vector<std::string> gone;
  for (int i = 0; i < 600; ++i) {
    // "sock-000" ... share their first 8 bytes with many others.
    std::string id = Cat("sock-", Num(i % 7), std::string(i % 5, 'z'), "-", Num(i));
    SocketInfo info = Sock(id, i % 3 == 0 ? "/chat" : "/", i % 4 == 0 ? "" : Cat("u", Num(i % 9)));
    info.remote_address = i % 2 == 0 ? "10.0.0.1" : Cat("2001:db8::", Num(i));
    if (i % 3 != 0) info.claims = Cat(R"({"sub":")", std::string(50 + i % 40, 'c'), R"("})");
    if (i % 11 == 0) info.claims.push_back('\0');  // any byte survives
    info.transport = i % 6 == 0 ? "polling" : "websocket";
    info.rooms = {Cat("r", Num(i % 10))};
    ASSERT_EQ(e1(Connected{info}), ApplyResult::kApplied);
    live[id] = info;
    if (rng() % 3 == 0) {
      ASSERT_EQ(e1(Joined{id, "extra"}), ApplyResult::kApplied);
      live[id].rooms.push_back("extra");
    }
    if (i > 0 && rng() % 2 == 0) {  // a random live socket goes
      auto victim = std::next(live.begin(), static_cast<long>(rng() % live.size()));
      ASSERT_EQ(e1(Disconnected{victim->first}), ApplyResult::kApplied);
      gone.push_back(victim->first);
      live.erase(victim);
    }
  }
  ASSERT_EQ(index.socket_count(), live.size());
  for (auto& [id, info] : live) {
    info.edge_id = "e1";
    std::sort(info.rooms.begin(), info.rooms.end());
    auto got = index.GetSocket(id);
    ASSERT_TRUE(got.has_value()) << id;
    EXPECT_EQ(*got, info) << id;
  }
  for (const std::string& id : gone) EXPECT_FALSE(index.GetSocket(id).has_value()) << id;

  std::vector<std::string> want;
  for (const auto& [id, info] : live) want.push_back(id);
  EXPECT_EQ(Ids(AllSockets(index, {.page_size = 7})), want);
  std::vector<std::string> chat;
  for (const auto& [id, info] : live) {
    if (info.nsp == "/chat") chat.push_back(id);
  }
  EXPECT_EQ(Ids(AllSockets(index, {.nsp = "/chat"})), chat);
  auto targets = index.Resolve({.nsp = "/chat"});
  ASSERT_EQ(targets.size(), 1u);
  EXPECT_EQ(targets[0].socket_ids, chat);
  EXPECT_EQ(index.Count({.nsp = "/chat"}, {}, nullptr), chat.size());
  // A socket's own-id room, by id, after the removals.
  const std::string& one = chat.front();
  EXPECT_EQ(index.Count({.nsp = "/chat", .rooms = {one}}, {}, nullptr), 1u);
  EXPECT_EQ(index.Count({.nsp = "/chat", .rooms = {gone.front()}}, {}, nullptr), 0u);
  EXPECT_EQ(index.Count({.nsp = "/chat"}, {one}, nullptr), chat.size() - 1);
}

}  // namespace
}  // namespace switchboard::broker
