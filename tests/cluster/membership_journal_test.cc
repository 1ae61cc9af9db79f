// The membership journal: a real Socket.IO server reports to it, it publishes
// the ordered stream on an InProcessBus; a subscriber checks seq 1..n, the
// events, snapshots and heartbeats.
#include "cluster/membership_journal.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "bus/inproc_bus.h"
#include "edge/engineio/session.h"
#include "edge/runtime.h"
#include "edge/socketio/client.h"
#include "edge/socketio/server.h"
#include "edge/socketio/socket.h"
#include "switchboard/v1/bus.pb.h"
#include "tests/bus/flaky_bus.h"
#include "tests/support/edge_test.h"
#include "tests/support/eventually.h"

namespace switchboard {
namespace {

using sio::Json;
using testing_support::BlockingClient;
using testing_support::EdgeTest;
using testing_support::Eventually;
using testing_support::JoinRoom;
using namespace std::chrono_literals;

constexpr char kEdge[] = "edge-1";

using testing_support::FlakyBus;

// Collects decoded messages of one type from a subject.
template <typename Proto>
class Collector {
 public:
  Collector(bus::Bus& bus, const std::string& subject) {
    auto sub = bus.Subscribe(subject, [this](bus::Message message) {
      Proto proto;
      std::lock_guard lock(mu_);
      if (!proto.ParseFromString(message.payload)) {
        ++bad_;
        return;
      }
      items_.push_back(std::move(proto));
    });
    EXPECT_TRUE(sub.ok()) << sub.status();
    if (sub.ok()) sub_ = std::move(*sub);
  }
  ~Collector() {
    if (sub_) sub_->Unsubscribe();
  }

  std::vector<Proto> Items() {
    std::lock_guard lock(mu_);
    return items_;
  }
  int bad() {
    std::lock_guard lock(mu_);
    return bad_;
  }
  bool WaitFor(size_t n, std::chrono::milliseconds timeout = 5s) {
    return Eventually([&] { return Items().size() >= n; }, timeout);
  }

 private:
  std::mutex mu_;
  std::vector<Proto> items_;
  int bad_ = 0;
  bus::SubscriptionPtr sub_;
};

// One line per event, as the tests compare them.
std::string Describe(const v1::MembershipEvent& e) {
  switch (e.change_case()) {
    case v1::MembershipEvent::kConnected:
      return "connected " + e.connected().socket().id() + " " + e.connected().socket().namespace_();
    case v1::MembershipEvent::kDisconnected:
      return "disconnected " + e.disconnected().socket_id() + " " + e.disconnected().reason();
    case v1::MembershipEvent::kJoined:
      return "joined " + e.joined().socket_id() + " " + e.joined().room();
    case v1::MembershipEvent::kLeft: return "left " + e.left().socket_id() + " " + e.left().room();
    case v1::MembershipEvent::kMovedIn:
      return "moved_in " + e.moved_in().socket().id() + " from " + e.moved_in().from_edge();
    case v1::MembershipEvent::kMovedOut:
      return "moved_out " + e.moved_out().socket_id() + " to " + e.moved_out().to_edge();
    default: return "other";
  }
}

// Applies a stream of events to a socket id -> rooms map (what a broker does).
using State = std::map<std::string, std::vector<std::string>>;
void Apply(State& state, const v1::MembershipEvent& e) {
  switch (e.change_case()) {
    case v1::MembershipEvent::kConnected: state[e.connected().socket().id()]; break;
    case v1::MembershipEvent::kDisconnected: state.erase(e.disconnected().socket_id()); break;
    case v1::MembershipEvent::kMovedIn: {
      const v1::SocketInfo& socket = e.moved_in().socket();
      state[socket.id()] = {socket.rooms().begin(), socket.rooms().end()};
      break;
    }
    case v1::MembershipEvent::kMovedOut: state.erase(e.moved_out().socket_id()); break;
    case v1::MembershipEvent::kJoined: {
      auto& rooms = state[e.joined().socket_id()];
      rooms.push_back(e.joined().room());
      std::sort(rooms.begin(), rooms.end());
      break;
    }
    case v1::MembershipEvent::kLeft: {
      auto& rooms = state[e.left().socket_id()];
      rooms.erase(std::remove(rooms.begin(), rooms.end(), e.left().room()), rooms.end());
      break;
    }
    default: break;
  }
}

State FromSnapshot(const v1::Snapshot& snapshot) {
  State state;
  for (const auto& s : snapshot.sockets()) {
    state[s.socket().id()] = {s.socket().rooms().begin(), s.socket().rooms().end()};
  }
  return state;
}

class MembershipJournalTest : public EdgeTest {
 protected:
  void SetUp() override {
    journal_ = std::make_unique<cluster::MembershipJournal>(bus_, kEdge);
    ASSERT_TRUE(journal_->ServeSnapshots().ok());
    events_ = std::make_unique<Collector<v1::MembershipEvent>>(bus_, "sb.v1.membership.edge-1");
    heartbeats_ = std::make_unique<Collector<v1::Heartbeat>>(bus_, "sb.v1.heartbeat.edge-1");

    server_.io().SetMembershipObserver(journal_.get());
    testing_support::UserFromAuth(server_.io().Of("/"));
    server_.Start();
  }

  bool WaitForSeq(uint64_t seq) {
    return Eventually([&] { return journal_->last_seq() >= seq; });
  }

  absl::StatusOr<v1::Snapshot> RequestSnapshot() {
    v1::SnapshotRequest request;
    request.set_broker_id("broker-test");
    return RequestSnapshot(request);
  }
  // `bytes` (when given) gets the reply's size.
  absl::StatusOr<v1::Snapshot> RequestSnapshot(const v1::SnapshotRequest& request,
                                               std::chrono::milliseconds timeout = 2s,
                                               size_t* bytes = nullptr) {
    std::promise<absl::StatusOr<bus::Message>> reply;
    bus_.Request(journal_->snapshot_subject(), request.SerializeAsString(), timeout,
                 [&](absl::StatusOr<bus::Message> m) { reply.set_value(std::move(m)); });
    absl::StatusOr<bus::Message> message = reply.get_future().get();
    if (!message.ok()) return message.status();
    if (bytes != nullptr) *bytes = message->payload.size();
    v1::Snapshot snapshot;
    if (!snapshot.ParseFromString(message->payload)) return absl::DataLossError("bad snapshot");
    return snapshot;
  }

  static void ExpectContiguous(const std::vector<v1::MembershipEvent>& events) {
    for (size_t i = 0; i < events.size(); ++i) {
      EXPECT_EQ(events[i].seq(), i + 1) << "event " << i << ": " << Describe(events[i]);
      EXPECT_EQ(events[i].edge_id(), kEdge);
    }
  }

  // Declared first: destroyed last (subscriptions and journal go before it).
  FlakyBus bus_;
  std::unique_ptr<cluster::MembershipJournal> journal_;
  std::unique_ptr<Collector<v1::MembershipEvent>> events_;
  std::unique_ptr<Collector<v1::Heartbeat>> heartbeats_;
};

TEST_F(MembershipJournalTest, PublishesEveryChangeInSeqOrder) {
  BlockingClient a(server_.port());
  BlockingClient b(server_.port());  // the other shard
  std::string id_a = JoinRoom(a, "lobby");
  std::string id_b = JoinRoom(b, "lobby");
  JoinRoom(a, "lobby");  // already in: no event
  JoinRoom(a, "games");
  a.Call(R"(["leave","lobby"])");
  a.Call(R"(["leave","nowhere"])");  // not in: no event
  a.Close();
  ASSERT_TRUE(WaitForSeq(7));
  ASSERT_TRUE(events_->WaitFor(7));

  std::vector<v1::MembershipEvent> events = events_->Items();
  ASSERT_EQ(events.size(), 7u);
  ExpectContiguous(events);
  EXPECT_EQ(events_->bad(), 0);
  const std::string incarnation = events[0].incarnation();
  EXPECT_FALSE(incarnation.empty());
  for (const auto& e : events) EXPECT_EQ(e.incarnation(), incarnation);

  auto of = [&](const std::string& id) {
    std::vector<std::string> mine;
    for (const auto& e : events) {
      std::string line = Describe(e);
      if (line.find(id) != std::string::npos) mine.push_back(line);
    }
    return mine;
  };
  EXPECT_EQ(of(id_a), (std::vector<std::string>{
                          "connected " + id_a + " /",
                          "joined " + id_a + " lobby",
                          "joined " + id_a + " games",
                          "left " + id_a + " lobby",
                          "disconnected " + id_a + " transport close",
                      }));
  EXPECT_EQ(of(id_b), (std::vector<std::string>{
                          "connected " + id_b + " /",
                          "joined " + id_b + " lobby",
                      }));

  // The connected event carries what the broker indexes.
  for (const auto& e : events) {
    if (e.change_case() != v1::MembershipEvent::kConnected) continue;
    const v1::SocketInfo& info = e.connected().socket();
    EXPECT_EQ(info.edge_id(), kEdge);
    EXPECT_EQ(info.transport(), v1::TRANSPORT_WEBSOCKET);
    EXPECT_EQ(info.remote_address(), "127.0.0.1");
    EXPECT_TRUE(info.user_id().empty());
    EXPECT_TRUE(info.rooms().empty());
    EXPECT_GT(info.connected_at().seconds(), 0);
  }

  // Snapshot: the live state (b in lobby), as of the last event.
  absl::StatusOr<v1::Snapshot> snapshot = RequestSnapshot();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  EXPECT_EQ(snapshot->edge_id(), kEdge);
  EXPECT_EQ(snapshot->incarnation(), incarnation);
  EXPECT_EQ(snapshot->seq(), events.back().seq());
  EXPECT_EQ(FromSnapshot(*snapshot), (State{{id_b, {"lobby"}}}));
  EXPECT_EQ(snapshot->heartbeat().last_seq(), 7u);
  EXPECT_EQ(snapshot->heartbeat().totals().sockets(), 1u);
  EXPECT_EQ(journal_->snapshots_served(), 1u);

  // Heartbeat: last seq and counters.
  ASSERT_TRUE(journal_->PublishHeartbeat().ok());
  ASSERT_TRUE(heartbeats_->WaitFor(1));
  v1::Heartbeat hb = heartbeats_->Items().at(0);
  EXPECT_EQ(hb.edge_id(), kEdge);
  EXPECT_EQ(hb.incarnation(), incarnation);
  EXPECT_EQ(hb.last_seq(), 7u);
  EXPECT_EQ(hb.totals().sockets(), 1u);
  EXPECT_EQ(hb.totals().rooms(), 1u);
  EXPECT_EQ(hb.interval_ms(), 1000u);  // the default period
  ASSERT_EQ(hb.namespaces_size(), 1);
  EXPECT_EQ(hb.namespaces(0).namespace_(), "/");
  EXPECT_EQ(hb.namespaces(0).counts().sockets(), 1u);

  b.Close();
  ASSERT_TRUE(events_->WaitFor(8));
  events = events_->Items();
  ExpectContiguous(events);
  EXPECT_EQ(Describe(events.back()), "disconnected " + id_b + " transport close");
  snapshot = RequestSnapshot();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  EXPECT_EQ(snapshot->seq(), 8u);
  EXPECT_EQ(snapshot->sockets_size(), 0);
  EXPECT_EQ(journal_->publish_failures(), 0u);
}

// Many clients on both shards at once: the stream is still 1..n in order, and
// replaying it gives exactly the snapshot's state.
TEST_F(MembershipJournalTest, ConcurrentShardsStayOrderedAndMatchSnapshot) {
  constexpr int kClients = 8;
  constexpr int kRooms = 5;
  std::vector<std::unique_ptr<BlockingClient>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<BlockingClient>(server_.port()));
  }
  std::vector<std::thread> threads;
  std::vector<std::string> ids(kClients);
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      for (int r = 0; r < kRooms; ++r) ids[i] = JoinRoom(*clients[i], "room-" + std::to_string(r));
      clients[i]->Call(R"(["leave","room-)" + std::to_string(i % kRooms) + R"("])");
    });
  }
  for (auto& t : threads) t.join();
  clients[0]->Close();  // one leaves entirely
  const uint64_t expected = kClients * (1 + kRooms + 1) + 1;
  ASSERT_TRUE(WaitForSeq(expected));
  ASSERT_TRUE(events_->WaitFor(expected));

  std::vector<v1::MembershipEvent> events = events_->Items();
  ASSERT_EQ(events.size(), expected);
  ExpectContiguous(events);
  State replayed;
  for (const auto& e : events) Apply(replayed, e);
  EXPECT_EQ(replayed.size(), static_cast<size_t>(kClients - 1));
  EXPECT_EQ(replayed.count(ids[0]), 0u);
  for (int i = 1; i < kClients; ++i) EXPECT_EQ(replayed[ids[i]].size(), size_t{kRooms - 1});

  absl::StatusOr<v1::Snapshot> snapshot = RequestSnapshot();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  EXPECT_EQ(snapshot->seq(), expected);
  EXPECT_EQ(FromSnapshot(*snapshot), replayed);
  for (auto& c : clients) c.reset();
}

// A publish the bus refuses costs its seq (a gap brokers see), is counted, and
// the next heartbeat and snapshot still tell the whole truth.
TEST_F(MembershipJournalTest, PublishFailuresAreCountedAndLeaveAGap) {
  BlockingClient a(server_.port());
  ASSERT_TRUE(WaitForSeq(1));
  bus_.down = true;
  std::string id_a = JoinRoom(a, "hidden");  // seq 2, lost
  ASSERT_TRUE(WaitForSeq(2));
  EXPECT_FALSE(journal_->PublishHeartbeat().ok());
  EXPECT_EQ(journal_->publish_failures(), 2u);
  bus_.down = false;
  JoinRoom(a, "seen");  // seq 3
  ASSERT_TRUE(events_->WaitFor(2));

  std::vector<v1::MembershipEvent> events = events_->Items();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].seq(), 1u);
  EXPECT_EQ(events[1].seq(), 3u);  // the gap
  EXPECT_EQ(Describe(events[1]), "joined " + id_a + " seen");

  ASSERT_TRUE(journal_->PublishHeartbeat().ok());
  ASSERT_TRUE(heartbeats_->WaitFor(1));
  EXPECT_EQ(heartbeats_->Items().at(0).last_seq(), 3u);

  absl::StatusOr<v1::Snapshot> snapshot = RequestSnapshot();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  EXPECT_EQ(snapshot->seq(), 3u);
  EXPECT_EQ(FromSnapshot(*snapshot), (State{{id_a, {"hidden", "seen"}}}));
  EXPECT_EQ(journal_->publish_failures(), 2u);
  a.Close();
}

// After many connects, joins, leaves and disconnects, a snapshot lists exactly
// the live sockets, by id, each with its user id, address, claims and rooms.
TEST_F(MembershipJournalTest, SnapshotListsExactlyTheLiveSocketsWithTheirFields) {
  constexpr int kClients = 12;
  struct Expected {
    std::string user;
    std::string claims;
    std::vector<std::string> rooms;
  };
  std::vector<std::unique_ptr<BlockingClient>> clients;
  std::vector<Expected> expected(kClients);
  for (int i = 0; i < kClients; ++i) {
    std::string connect = "40";
    if (i % 3 != 0) {  // claims well beyond any inline string buffer
      Json auth = {{"user", "user-" + std::to_string(i % 4)}, {"note", std::string(40 + i, 'x')}};
      connect += auth.dump();
      expected[i].user = auth["user"].get<std::string>();
      expected[i].claims = auth.dump();
    }
    clients.push_back(std::make_unique<BlockingClient>(server_.port(), false, connect));
  }
  std::vector<std::string> ids(kClients);
  uint64_t events = kClients;
  for (int i = 0; i < kClients; ++i) {
    ids[i] = JoinRoom(*clients[i], "r" + std::to_string(i % 5));
    JoinRoom(*clients[i], "all");
    events += 2;
    expected[i].rooms = {"all", "r" + std::to_string(i % 5)};
    if (i % 2 == 1) {
      clients[i]->Call(R"(["leave","all"])");
      ++events;
      expected[i].rooms = {"r" + std::to_string(i % 5)};
    }
  }
  std::map<std::string, Expected> live;
  for (int i = 0; i < kClients; ++i) {
    if (i % 4 == 1) {
      clients[i]->Close();
      ++events;
    } else {
      std::sort(expected[i].rooms.begin(), expected[i].rooms.end());
      live[ids[i]] = expected[i];
    }
  }
  ASSERT_TRUE(WaitForSeq(events));
  EXPECT_EQ(journal_->socket_count(), live.size());

  absl::StatusOr<v1::Snapshot> snapshot = RequestSnapshot();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  EXPECT_EQ(snapshot->seq(), events);
  ASSERT_EQ(snapshot->sockets_size(), static_cast<int>(live.size()));
  auto want = live.begin();
  for (const auto& state : snapshot->sockets()) {  // by id, as `live`
    const v1::SocketInfo& info = state.socket();
    EXPECT_EQ(info.id(), want->first);
    EXPECT_EQ(info.edge_id(), kEdge);
    EXPECT_EQ(info.namespace_(), "/");
    EXPECT_EQ(info.user_id(), want->second.user);
    EXPECT_EQ(info.claims(), want->second.claims);
    EXPECT_EQ(info.remote_address(), "127.0.0.1");
    EXPECT_EQ(info.transport(), v1::TRANSPORT_WEBSOCKET);
    EXPECT_EQ(std::vector<std::string>(info.rooms().begin(), info.rooms().end()),
              want->second.rooms);
    EXPECT_GT(info.connected_at().seconds(), 0);
    ++want;
  }
  EXPECT_EQ(snapshot->heartbeat().totals().sockets(), live.size());
  EXPECT_EQ(snapshot->heartbeat().totals().users(), 3u);  // user-0, -2, -3 (-1s left)
  for (auto& c : clients) c.reset();
}

// A snapshot over the bus's max_payload (NATS: 1 MiB, some 13,000 sockets)
// goes in pages to a broker that takes them: cut at one instant, every page
// within the limit, together exactly the whole snapshot. A broker that does
// not take pages gets no answer (the bus refuses the publish, counted), as
// before pages existed.
TEST_F(MembershipJournalTest, SnapshotOverMaxPayloadComesInPagesThatAddUpToTheWhole) {
  constexpr int kClients = 24;
  constexpr uint64_t kLimit = 4096;
  std::vector<std::unique_ptr<BlockingClient>> clients;
  for (int i = 0; i < kClients; ++i) {  // some 500 bytes a socket: about 7 a page
    Json auth = {{"user", "user-" + std::to_string(i)}, {"note", std::string(400, 'a' + i % 26)}};
    clients.push_back(std::make_unique<BlockingClient>(server_.port(), false, "40" + auth.dump()));
    JoinRoom(*clients.back(), "r" + std::to_string(i % 3));
  }
  ASSERT_TRUE(WaitForSeq(2 * kClients));
  const v1::Snapshot whole = journal_->BuildSnapshot();
  ASSERT_GT(whole.ByteSizeLong(), 3 * kLimit);
  bus_.payload_limit = kLimit;

  v1::SnapshotRequest request;
  request.set_broker_id("old-broker");
  const uint64_t failures = journal_->publish_failures();
  EXPECT_TRUE(absl::IsDeadlineExceeded(RequestSnapshot(request, 300ms).status()));
  EXPECT_EQ(journal_->publish_failures(), failures + 1);

  request.set_accepts_pages(true);
  size_t bytes = 0;
  absl::StatusOr<v1::Snapshot> first = RequestSnapshot(request, 2s, &bytes);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_LE(bytes, kLimit);
  EXPECT_FALSE(first->snapshot_id().empty());
  EXPECT_EQ(first->page(), 0u);
  ASSERT_GE(first->page_count(), 4u);
  EXPECT_EQ(first->seq(), whole.seq());
  EXPECT_EQ(first->heartbeat().totals().sockets(), static_cast<uint64_t>(kClients));
  EXPECT_EQ(journal_->paged_snapshots_held(), 1u);

  // A change after the cut is not in the later pages: the next snapshot has it.
  BlockingClient late(server_.port());
  JoinRoom(late, "late");
  ASSERT_TRUE(WaitForSeq(2 * kClients + 2));

  v1::Snapshot joined = *first;
  request.set_snapshot_id(first->snapshot_id());
  for (uint32_t page = 1; page < first->page_count(); ++page) {
    request.set_page(page);
    absl::StatusOr<v1::Snapshot> next = RequestSnapshot(request, 2s, &bytes);
    ASSERT_TRUE(next.ok()) << next.status();
    EXPECT_LE(bytes, kLimit);
    EXPECT_EQ(next->page(), page);
    EXPECT_EQ(next->page_count(), first->page_count());
    EXPECT_EQ(next->seq(), whole.seq());
    EXPECT_FALSE(next->has_heartbeat());
    joined.mutable_sockets()->MergeFrom(next->sockets());
  }
  EXPECT_EQ(FromSnapshot(joined), FromSnapshot(whole));
  ASSERT_EQ(joined.sockets_size(), kClients);
  for (int i = 0; i < kClients; ++i) {
    EXPECT_EQ(joined.sockets(i).socket().claims(), whole.sockets(i).socket().claims());
  }

  // Served whole, it is let go: asking again, or for an id never given, says
  // so (page_count 0) and the broker starts over.
  EXPECT_EQ(journal_->paged_snapshots_held(), 0u);
  request.set_page(0);
  absl::StatusOr<v1::Snapshot> gone = RequestSnapshot(request);
  ASSERT_TRUE(gone.ok()) << gone.status();
  EXPECT_EQ(gone->snapshot_id(), first->snapshot_id());
  EXPECT_EQ(gone->page_count(), 0u);
  EXPECT_EQ(gone->sockets_size(), 0);
  request.set_snapshot_id("never");
  gone = RequestSnapshot(request);
  ASSERT_TRUE(gone.ok()) << gone.status();
  EXPECT_EQ(gone->page_count(), 0u);

  bus_.payload_limit = 0;
  for (auto& c : clients) c.reset();
}

// A snapshot of an idle edge: seq 0, nothing in it.
TEST(MembershipJournalStandalone, EmptySnapshotAndHeartbeat) {
  bus::InProcessBus bus;
  cluster::MembershipJournal journal(bus, "e2",
                                     {.heartbeat_interval_ms = 500, .incarnation = "inc"});
  ASSERT_TRUE(journal.ServeSnapshots().ok());
  ASSERT_TRUE(journal.ServeSnapshots().ok());  // idempotent
  Collector<v1::Heartbeat> heartbeats(bus, "sb.v1.heartbeat.>");
  std::promise<absl::StatusOr<bus::Message>> reply;
  bus.Request("sb.v1.snapshot.e2", "", 2s,
              [&](absl::StatusOr<bus::Message> m) { reply.set_value(std::move(m)); });
  absl::StatusOr<bus::Message> message = reply.get_future().get();
  ASSERT_TRUE(message.ok()) << message.status();
  v1::Snapshot snapshot;
  ASSERT_TRUE(snapshot.ParseFromString(message->payload));
  EXPECT_EQ(snapshot.edge_id(), "e2");
  EXPECT_EQ(snapshot.incarnation(), "inc");
  EXPECT_EQ(snapshot.seq(), 0u);
  EXPECT_EQ(snapshot.sockets_size(), 0);

  ASSERT_TRUE(journal.PublishHeartbeat(/*draining=*/true).ok());
  ASSERT_TRUE(heartbeats.WaitFor(1));
  v1::Heartbeat hb = heartbeats.Items().at(0);
  EXPECT_EQ(hb.last_seq(), 0u);
  EXPECT_EQ(hb.interval_ms(), 500u);
  EXPECT_TRUE(hb.draining());
  EXPECT_EQ(hb.totals().sockets(), 0u);
}

// Brokers probe an edge whose heartbeats are late: the journal answers with
// its incarnation while it serves; once it is gone (as when NATS drops a dead
// edge's subscriptions), nobody answers.
TEST(MembershipJournalStandalone, AnswersProbesWhileItServes) {
  bus::InProcessBus bus;
  auto probe = [&] {
    std::promise<absl::StatusOr<bus::Message>> reply;
    bus.Request("sb.v1.probe.e4", "", 2s,
                [&](absl::StatusOr<bus::Message> m) { reply.set_value(std::move(m)); });
    return reply.get_future().get();
  };
  {
    cluster::MembershipJournal journal(bus, "e4", {.incarnation = "inc-4"});
    ASSERT_TRUE(journal.ServeSnapshots().ok());
    absl::StatusOr<bus::Message> message = probe();
    ASSERT_TRUE(message.ok()) << message.status();
    v1::ProbeReply reply;
    ASSERT_TRUE(reply.ParseFromString(message->payload));
    EXPECT_EQ(reply.edge_id(), "e4");
    EXPECT_EQ(reply.incarnation(), "inc-4");
  }
  EXPECT_TRUE(absl::IsNotFound(probe().status()));
}

TEST_F(MembershipJournalTest, SocketsByNamespaceAndTransport) {
  BlockingClient a(server_.port());
  BlockingClient b(server_.port());
  JoinRoom(a, "lobby");
  JoinRoom(b, "lobby");
  ASSERT_TRUE(WaitForSeq(4));  // 2 connects + 2 joins
  using Counts = std::map<std::pair<std::string, std::string>, uint64_t>;
  EXPECT_EQ(journal_->SocketsByTransport(), (Counts{{{"/", "websocket"}, 2}}));
  a.Close();
  ASSERT_TRUE(WaitForSeq(5));
  EXPECT_EQ(journal_->SocketsByTransport(), (Counts{{{"/", "websocket"}, 1}}));
  b.Close();
  ASSERT_TRUE(WaitForSeq(6));
  // Still listed, at 0: the metric series stays.
  EXPECT_EQ(journal_->SocketsByTransport(), (Counts{{{"/", "websocket"}, 0}}));
}

TEST(MembershipJournalStandalone, HeartbeatsCarryVersionStartAndAStickyDrain) {
  bus::InProcessBus bus;
  const auto started = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));
  cluster::MembershipJournal journal(
      bus, "e3", {.incarnation = "inc", .version = "1.2.3", .started_at = started});
  ASSERT_TRUE(journal.ServeSnapshots().ok());
  Collector<v1::Heartbeat> heartbeats(bus, "sb.v1.heartbeat.>");
  ASSERT_TRUE(journal.PublishHeartbeat().ok());
  ASSERT_TRUE(journal.PublishHeartbeat(/*draining=*/true).ok());
  ASSERT_TRUE(journal.PublishHeartbeat().ok());  // the periodic one, after the drain began
  ASSERT_TRUE(heartbeats.WaitFor(3));
  std::vector<v1::Heartbeat> hbs = heartbeats.Items();
  for (const v1::Heartbeat& hb : hbs) {
    EXPECT_EQ(hb.version(), "1.2.3");
    EXPECT_EQ(hb.started_at().seconds(), 1'700'000'000);
  }
  EXPECT_FALSE(hbs[0].draining());
  EXPECT_TRUE(hbs[1].draining());
  EXPECT_TRUE(hbs[2].draining());
  EXPECT_TRUE(journal.draining());
  EXPECT_TRUE(journal.BuildSnapshot().heartbeat().draining());

  // Without a start time: the journal's construction.
  const auto before = std::chrono::system_clock::now();
  cluster::MembershipJournal later(bus, "e4");
  EXPECT_GE(later.BuildSnapshot().heartbeat().started_at().seconds(),
            std::chrono::duration_cast<std::chrono::seconds>(before.time_since_epoch()).count());
}

// The heartbeat's counts are kept as the mirror changes (not recounted under
// the lock): through a random run of connects, joins, leaves and disconnects
// in two namespaces, every heartbeat equals a recount of the snapshot's
// sockets.
TEST(MembershipJournalStandalone, KeptCountsEqualARecount) {
  edge::Runtime runtime(1);  // never started: the sockets only exist in memory
  sio::Server io(runtime, {}, {});
  bus::InProcessBus bus;
  cluster::MembershipJournal journal(bus, "e5",
                                     {.incarnation = "inc", .message_counts = [] {
                                        return std::map<std::string, std::pair<uint64_t, uint64_t>>{
                                            {"/", {1, 2}}, {"/quiet", {3, 4}}, {"/unused", {0, 0}}};
                                      }});
  struct Fake {
    eio::SessionPtr session;
    sio::SocketPtr socket;
  };
  int made = 0;
  auto make = [&](const std::string& nsp, const std::string& user) {
    char id[32];
    std::snprintf(id, sizeof(id), "sock%016d", made++);
    Fake fake;
    fake.session = std::make_shared<eio::Session>(
        io.engine(), id, 0,
        eio::Handshake("127.0.0.1", "/socket.io/?EIO=4", std::chrono::system_clock::now()));
    fake.socket = std::make_shared<sio::Socket>(std::make_shared<sio::Client>(io, fake.session),
                                                io.Of(nsp), id, Json());
    fake.socket->SetUserId(user);
    return fake;
  };

  auto check = [&](int step) {
    v1::Snapshot snapshot = journal.BuildSnapshot();
    struct Tally {
      uint64_t sockets = 0;
      std::set<std::string> users, rooms;
    };
    Tally total;
    std::set<std::pair<std::string, std::string>> total_rooms;
    std::map<std::string, Tally> per_nsp;
    for (const auto& state : snapshot.sockets()) {
      const v1::SocketInfo& s = state.socket();
      Tally& nsp = per_nsp[s.namespace_()];
      ++total.sockets;
      ++nsp.sockets;
      if (!s.user_id().empty()) {
        total.users.insert(s.user_id());
        nsp.users.insert(s.user_id());
      }
      for (const std::string& room : s.rooms()) {
        nsp.rooms.insert(room);
        total_rooms.emplace(s.namespace_(), room);
      }
    }
    const v1::Heartbeat& hb = snapshot.heartbeat();
    ASSERT_EQ(hb.totals().sockets(), total.sockets) << "step " << step;
    ASSERT_EQ(hb.totals().users(), total.users.size()) << "step " << step;
    ASSERT_EQ(hb.totals().rooms(), total_rooms.size()) << "step " << step;
    EXPECT_EQ(hb.totals().messages_in(), 4u);
    EXPECT_EQ(hb.totals().messages_out(), 6u);
    // Namespaces with sockets or messages ("/unused" has neither); by name.
    per_nsp.try_emplace("/");
    per_nsp.try_emplace("/quiet");
    ASSERT_EQ(static_cast<size_t>(hb.namespaces_size()), per_nsp.size()) << "step " << step;
    int i = 0;
    for (const auto& [name, tally] : per_nsp) {
      const v1::NamespaceCounts& counts = hb.namespaces(i++);
      ASSERT_EQ(counts.namespace_(), name) << "step " << step;
      ASSERT_EQ(counts.counts().sockets(), tally.sockets) << name << " step " << step;
      ASSERT_EQ(counts.counts().users(), tally.users.size()) << name << " step " << step;
      ASSERT_EQ(counts.counts().rooms(), tally.rooms.size()) << name << " step " << step;
      if (name == "/quiet") {
        EXPECT_EQ(counts.counts().messages_in(), 3u);
      }
    }
  };

  std::mt19937 room_random(16);
  auto pick_rooms = [&] { return static_cast<int>(room_random() % 4u); };
  // A socket that moves in arrives connected, already in its rooms.
  auto make_moved = [&](const std::string& nsp, const std::string& user) {
    Fake fake = make(nsp, user);
    fake.socket->MarkConnected();
    for (int i = pick_rooms(); i > 0; --i) fake.socket->Join("room-" + std::to_string(i * 3 % 8));
    return fake;
  };
  // Out of the namespace's room lists before it goes (io has no observer).
  auto drop = [](Fake& fake) {
    const std::vector<std::string> rooms = fake.socket->joined_rooms();
    for (const std::string& room : rooms) fake.socket->Leave(room);
  };

  std::mt19937 random(14);
  auto pick = [&](int n) { return static_cast<int>(random() % static_cast<unsigned>(n)); };
  const std::vector<std::string> nsps = {"/", "/chat"};
  std::vector<Fake> live;
  for (int step = 0; step < 3000; ++step) {
    const int op = pick(10);
    if (live.empty() || op < 3) {  // connect or move in, sometimes a second report of it
      const std::string& nsp = nsps[pick(2)];
      const std::string user = pick(4) == 0 ? "" : "user-" + std::to_string(pick(6));
      if (pick(4) == 0) {
        live.push_back(make_moved(nsp, user));
        journal.OnMovedIn(*live.back().socket, "e-other");
        if (pick(5) == 0) journal.OnMovedIn(*live.back().socket, "e-other");
      } else {
        live.push_back(make(nsp, user));
        journal.OnConnected(*live.back().socket);
        if (pick(5) == 0) journal.OnConnected(*live.back().socket);
      }
    } else if (op < 7) {  // join (maybe again), or a join of the own-id room
      const sio::Socket& socket = *live[pick(static_cast<int>(live.size()))].socket;
      journal.OnJoined(socket, pick(10) == 0 ? socket.id() : "room-" + std::to_string(pick(8)));
    } else if (op < 9) {  // leave (maybe a room it is not in)
      const sio::Socket& socket = *live[pick(static_cast<int>(live.size()))].socket;
      journal.OnLeft(socket, "room-" + std::to_string(pick(8)));
    } else {  // disconnect or move out, sometimes reported twice
      const size_t at = static_cast<size_t>(pick(static_cast<int>(live.size())));
      if (pick(3) == 0) {
        journal.OnMovedOut(*live[at].socket, "e-other");
        if (pick(5) == 0) journal.OnMovedOut(*live[at].socket, "e-other");
      } else {
        journal.OnDisconnected(*live[at].socket, "transport close");
        if (pick(5) == 0) journal.OnDisconnected(*live[at].socket, "transport close");
      }
      drop(live[at]);
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(at));
    }
    ASSERT_NO_FATAL_FAILURE(check(step));
  }
  // Everyone leaves: all counts back to 0, only the namespace with messages listed.
  for (Fake& fake : live) {
    journal.OnDisconnected(*fake.socket, "server shutting down");
    drop(fake);
  }
  ASSERT_NO_FATAL_FAILURE(check(-1));
  EXPECT_EQ(journal.BuildSnapshot().heartbeat().totals().rooms(), 0u);
}

// A session that moves between edges: the old edge's journal says moved_out,
// the new one's moved_in with the socket and its rooms, in their seq order,
// never disconnected / connected / joined; both mirrors, snapshots and
// heartbeat counts follow.
TEST(MembershipJournalStandalone, MovesPublishMovedOutAndMovedInWithTheSocketsRooms) {
  edge::Runtime runtime(1);  // never started: the sockets only exist in memory
  sio::Server io(runtime, {}, {});
  bus::InProcessBus bus;
  cluster::MembershipJournal old_edge(bus, "e-old", {.incarnation = "inc-old"});
  cluster::MembershipJournal new_edge(bus, "e-new", {.incarnation = "inc-new"});
  Collector<v1::MembershipEvent> old_events(bus, "sb.v1.membership.e-old");
  Collector<v1::MembershipEvent> new_events(bus, "sb.v1.membership.e-new");
  auto make = [&](const std::string& id, const std::string& user) {
    auto session = std::make_shared<eio::Session>(
        io.engine(), id, 0,
        eio::Handshake("10.1.2.3", "/socket.io/?EIO=4", std::chrono::system_clock::now()));
    auto socket = std::make_shared<sio::Socket>(std::make_shared<sio::Client>(io, session),
                                                io.Of("/"), id, Json());
    socket->SetUserId(user);
    socket->SetClaims(Json{{"user", user}});
    socket->MarkConnected();
    return std::make_pair(session, socket);
  };
  auto [moving_session, moving] = make("sock-moving", "u1");
  auto [staying_session, staying] = make("sock-staying", "u1");
  moving->Join("lobby");
  moving->Join("games");
  moving->Join("sock-moving");  // the own-id room: never reported

  old_edge.OnConnected(*moving);          // 1 connected, 2-3 joined
  old_edge.OnConnected(*staying);         // 4
  old_edge.OnMovedOut(*moving, "e-new");  // 5
  old_edge.OnMovedOut(*moving, "e-new");  // reported twice: nothing more
  const auto first_connected =
      std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'123));
  new_edge.OnMovedIn(*moving, "e-old", first_connected);  // 1
  new_edge.OnMovedIn(*moving, "e-old");                   // reported twice: nothing more
  ASSERT_TRUE(old_events.WaitFor(5));
  ASSERT_TRUE(new_events.WaitFor(1));

  // The old edge: moved_out at seq 5 with the socket's id, namespace, user and destination.
  std::vector<v1::MembershipEvent> olds = old_events.Items();
  ASSERT_EQ(olds.size(), 5u);
  for (size_t i = 0; i < olds.size(); ++i) EXPECT_EQ(olds[i].seq(), i + 1);
  EXPECT_EQ(Describe(olds[4]), "moved_out sock-moving to e-new");
  const v1::SocketMovedOut& out = olds[4].moved_out();
  EXPECT_EQ(out.namespace_(), "/");
  EXPECT_EQ(out.user_id(), "u1");
  EXPECT_EQ(olds[4].edge_id(), "e-old");
  EXPECT_EQ(olds[4].incarnation(), "inc-old");
  EXPECT_EQ(old_edge.last_seq(), 5u);
  EXPECT_EQ(old_edge.socket_count(), 1u);
  v1::Snapshot old_snapshot = old_edge.BuildSnapshot();
  EXPECT_EQ(old_snapshot.seq(), 5u);
  EXPECT_EQ(FromSnapshot(old_snapshot), (State{{"sock-staying", {}}}));
  EXPECT_EQ(old_snapshot.heartbeat().totals().sockets(), 1u);
  EXPECT_EQ(old_snapshot.heartbeat().totals().users(), 1u);  // u1 is still here (staying)
  EXPECT_EQ(old_snapshot.heartbeat().totals().rooms(), 0u);

  // The new edge: one moved_in (seq 1) with the whole socket and its rooms, no connect or join.
  std::vector<v1::MembershipEvent> news = new_events.Items();
  ASSERT_EQ(news.size(), 1u);
  EXPECT_EQ(news[0].seq(), 1u);
  EXPECT_EQ(news[0].edge_id(), "e-new");
  EXPECT_EQ(Describe(news[0]), "moved_in sock-moving from e-old");
  const v1::SocketInfo& in = news[0].moved_in().socket();
  EXPECT_EQ(in.edge_id(), "e-new");
  EXPECT_EQ(in.namespace_(), "/");
  EXPECT_EQ(in.user_id(), "u1");
  EXPECT_EQ(std::vector<std::string>(in.rooms().begin(), in.rooms().end()),
            (std::vector<std::string>{"games", "lobby"}));
  EXPECT_EQ(in.remote_address(), "10.1.2.3");
  EXPECT_EQ(in.claims(), R"({"user":"u1"})");
  EXPECT_EQ(in.transport(), v1::TRANSPORT_UNSPECIFIED);  // an in-memory session has none
  EXPECT_EQ(in.connected_at().seconds(), 1'700'000'123);
  v1::Snapshot new_snapshot = new_edge.BuildSnapshot();
  EXPECT_EQ(new_snapshot.seq(), 1u);
  ASSERT_EQ(new_snapshot.sockets_size(), 1);
  EXPECT_EQ(new_snapshot.sockets(0).socket().SerializeAsString(), in.SerializeAsString());
  const v1::Heartbeat& hb = new_snapshot.heartbeat();
  EXPECT_EQ(hb.last_seq(), 1u);
  EXPECT_EQ(hb.totals().sockets(), 1u);
  EXPECT_EQ(hb.totals().users(), 1u);
  EXPECT_EQ(hb.totals().rooms(), 2u);
  ASSERT_EQ(hb.namespaces_size(), 1);
  EXPECT_EQ(hb.namespaces(0).counts().rooms(), 2u);
  using Counts = std::map<std::pair<std::string, std::string>, uint64_t>;
  EXPECT_EQ(new_edge.SocketsByTransport(), (Counts{{{"/", ""}, 1}}));
  EXPECT_EQ(old_edge.SocketsByTransport(), (Counts{{{"/", ""}, 1}}));

  // The moved-in socket is an ordinary one of the new edge from now on.
  new_edge.OnJoined(*moving, "lobby");                  // in already: nothing
  new_edge.OnLeft(*moving, "games");                    // 2
  new_edge.OnDisconnected(*moving, "transport close");  // 3
  ASSERT_TRUE(new_events.WaitFor(3));
  news = new_events.Items();
  ASSERT_EQ(news.size(), 3u);
  EXPECT_EQ(Describe(news[1]), "left sock-moving games");
  EXPECT_EQ(Describe(news[2]), "disconnected sock-moving transport close");
  new_snapshot = new_edge.BuildSnapshot();
  EXPECT_EQ(new_snapshot.sockets_size(), 0);
  EXPECT_EQ(new_snapshot.heartbeat().totals().rooms(), 0u);
  EXPECT_EQ(new_snapshot.heartbeat().totals().users(), 0u);

  // Without a connect time: the move's.
  const auto before = std::chrono::system_clock::now();
  new_edge.OnMovedIn(*staying, "e-old");
  EXPECT_GE(new_edge.BuildSnapshot().sockets(0).socket().connected_at().seconds(),
            std::chrono::duration_cast<std::chrono::seconds>(before.time_since_epoch()).count());
  for (const std::string room : {"lobby", "games", "sock-moving"}) moving->Leave(room);
}

}  // namespace
}  // namespace switchboard
