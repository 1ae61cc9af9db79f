// The broker on an InProcessBus. Fake edges, written here, publish the
// membership stream (proto MembershipEvent / Heartbeat on their subjects) and
// answer snapshot requests; the tests read the broker's answers and what it
// puts on the bus.
#include "broker/broker.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "bus/inproc_bus.h"
#include "bus/routing.h"
#include "switchboard/v1/bus.pb.h"
#include "tests/bus/flaky_bus.h"

namespace switchboard::broker {
namespace {

using namespace std::chrono_literals;
using Ids = std::vector<std::string>;

constexpr auto kWait = 5s;

bool Eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout = kWait) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

// Every handler on the default executor runs on the bus's one worker thread,
// in order: once a message published now is handled, so is everything
// published before it.
void Flush(bus::Bus& bus) {
  std::mutex mu;
  std::condition_variable cv;
  bool seen = false;
  auto sub = bus.Subscribe("test.flush", [&](bus::Message) {
    std::lock_guard lock(mu);
    seen = true;
    cv.notify_all();
  });
  ASSERT_TRUE(sub.ok());
  ASSERT_TRUE(bus.Publish("test.flush", "").ok());
  std::unique_lock lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, kWait, [&] { return seen; }));
}

void SetTime(google::protobuf::Timestamp* out, int64_t seconds) {
  out->set_seconds(seconds);
  out->set_nanos(0);
}

// Messages in / out a heartbeat reports (totals, or one namespace's).
struct Messages {
  uint64_t in = 0, out = 0;
};

// An edge as the broker sees it: sockets with rooms, an ordered stream,
// heartbeats and snapshots. Events can be "lost" (seq used, not published).
class FakeEdge {
 public:
  FakeEdge(bus::Bus& bus, std::string id, std::string incarnation = "inc-1")
      : bus_(bus), id_(std::move(id)), incarnation_(std::move(incarnation)) {}
  ~FakeEdge() {
    if (sub_) sub_->Unsubscribe();
  }

  void ServeSnapshots() {
    auto sub = bus_.Subscribe(bus::SnapshotSubject(id_), [this](bus::Message message) {
      v1::Snapshot snapshot = BuildSnapshot();
      requests_.fetch_add(1);
      EXPECT_TRUE(bus_.Publish(message.reply_to, snapshot.SerializeAsString()).ok());
    });
    ASSERT_TRUE(sub.ok());
    sub_ = std::move(*sub);
  }
  // Snapshots claim this incarnation instead (empty: the real one).
  void SetSnapshotIncarnation(std::string incarnation) {
    std::lock_guard lock(mu_);
    snapshot_incarnation_ = std::move(incarnation);
  }

  std::string Connect(const std::string& local, const std::string& nsp = "/",
                      const std::string& user = "", bool publish = true) {
    std::string sid = bus::MakeSocketId(id_, local);
    std::lock_guard lock(mu_);
    Sock& sock = sockets_[sid];
    sock.nsp = nsp;
    sock.user = user;
    sock.connected_at = 1'700'000'000 + static_cast<int64_t>(sockets_.size());
    v1::MembershipEvent event;
    FillInfo(sid, sock, event.mutable_connected()->mutable_socket());
    Emit(event, publish);
    return sid;
  }
  void Join(const std::string& sid, const std::string& room, bool publish = true) {
    std::lock_guard lock(mu_);
    Sock& sock = sockets_.at(sid);
    sock.rooms.insert(room);
    v1::MembershipEvent event;
    FillChange(sid, sock, room, event.mutable_joined());
    Emit(event, publish);
  }
  void Leave(const std::string& sid, const std::string& room, bool publish = true) {
    std::lock_guard lock(mu_);
    Sock& sock = sockets_.at(sid);
    sock.rooms.erase(room);
    v1::MembershipEvent event;
    FillChange(sid, sock, room, event.mutable_left());
    Emit(event, publish);
  }
  void Disconnect(const std::string& sid, bool publish = true) {
    std::lock_guard lock(mu_);
    Sock sock = sockets_.at(sid);
    sockets_.erase(sid);
    v1::MembershipEvent event;
    v1::SocketDisconnected* change = event.mutable_disconnected();
    change->set_socket_id(sid);
    change->set_namespace_(sock.nsp);
    change->set_user_id(sock.user);
    change->set_reason("transport close");
    Emit(event, publish);
  }
  void Upgrade(const std::string& sid) {
    std::lock_guard lock(mu_);
    Sock& sock = sockets_.at(sid);
    sock.transport = v1::TRANSPORT_WEBSOCKET;
    v1::MembershipEvent event;
    v1::TransportChange* change = event.mutable_transport_changed();
    change->set_socket_id(sid);
    change->set_namespace_(sock.nsp);
    change->set_transport(v1::TRANSPORT_WEBSOCKET);
    Emit(event, true);
  }

  void Heartbeat(Messages totals = {}, std::map<std::string, Messages> per_nsp = {},
                 const v1::ForwardStats* forward = nullptr) {
    v1::Heartbeat heartbeat;
    {
      std::lock_guard lock(mu_);
      FillHeartbeat(heartbeat, totals, per_nsp);
    }
    if (forward != nullptr) *heartbeat.mutable_forward() = *forward;
    ASSERT_TRUE(bus_.Publish(bus::HeartbeatSubject(id_), heartbeat.SerializeAsString()).ok());
  }

  v1::Snapshot BuildSnapshot() {
    std::lock_guard lock(mu_);
    v1::Snapshot snapshot;
    snapshot.set_edge_id(id_);
    snapshot.set_incarnation(snapshot_incarnation_.empty() ? incarnation_ : snapshot_incarnation_);
    snapshot.set_seq(seq_);
    for (const auto& [sid, sock] : sockets_) {
      FillInfo(sid, sock, snapshot.add_sockets()->mutable_socket());
    }
    FillHeartbeat(*snapshot.mutable_heartbeat(), {}, {});
    return snapshot;
  }

  // What ListSockets should show of this edge, in Describe() form.
  Ids Expected() {
    std::lock_guard lock(mu_);
    Ids out;
    for (const auto& [sid, sock] : sockets_) {
      v1::SocketInfo info;
      FillInfo(sid, sock, &info);
      out.push_back(Describe(info));
    }
    return out;
  }

  static std::string Describe(const v1::SocketInfo& s) {
    return absl::StrCat(s.id(), " edge=", s.edge_id(), " nsp=", s.namespace_(),
                        " user=", s.user_id(), " rooms=", absl::StrJoin(s.rooms(), ","), " ",
                        v1::Transport_Name(s.transport()), " ", s.remote_address(),
                        " t=", s.connected_at().seconds());
  }

  const std::string& id() const { return id_; }
  uint64_t seq() {
    std::lock_guard lock(mu_);
    return seq_;
  }
  int snapshot_requests() const { return requests_.load(); }
  // What later heartbeats (and snapshots) report as the edge's version, start
  // time and drain.
  void SetIdentity(std::string version, int64_t started_at) {
    std::lock_guard lock(mu_);
    version_ = std::move(version);
    started_at_ = started_at;
  }
  void SetDraining(bool draining) {
    std::lock_guard lock(mu_);
    draining_ = draining;
  }

 private:
  struct Sock {
    std::string nsp;
    std::string user;
    v1::Transport transport = v1::TRANSPORT_POLLING;
    std::set<std::string> rooms;
    int64_t connected_at = 0;
  };

  void FillInfo(const std::string& sid, const Sock& sock, v1::SocketInfo* info) const {
    info->set_id(sid);
    info->set_edge_id(id_);
    info->set_user_id(sock.user);
    info->set_namespace_(sock.nsp);
    for (const std::string& room : sock.rooms) info->add_rooms(room);
    info->set_transport(sock.transport);
    info->set_remote_address("10.0.0.7:4242");
    SetTime(info->mutable_connected_at(), sock.connected_at);
  }
  static void FillChange(const std::string& sid, const Sock& sock, const std::string& room,
                         v1::RoomChange* change) {
    change->set_socket_id(sid);
    change->set_namespace_(sock.nsp);
    change->set_user_id(sock.user);
    change->set_room(room);
  }
  void Emit(v1::MembershipEvent& event, bool publish) {
    event.set_edge_id(id_);
    event.set_incarnation(incarnation_);
    event.set_seq(++seq_);
    SetTime(event.mutable_time(), 1'700'000'000 + static_cast<int64_t>(seq_));
    if (publish) {
      ASSERT_TRUE(bus_.Publish(bus::MembershipSubject(id_), event.SerializeAsString()).ok());
    }
  }
  void FillHeartbeat(v1::Heartbeat& heartbeat, Messages totals,
                     const std::map<std::string, Messages>& per_nsp) const {
    heartbeat.set_edge_id(id_);
    heartbeat.set_incarnation(incarnation_);
    heartbeat.set_last_seq(seq_);
    heartbeat.set_interval_ms(2000);
    heartbeat.set_version(version_);
    if (started_at_ != 0) SetTime(heartbeat.mutable_started_at(), started_at_);
    heartbeat.set_draining(draining_);
    std::set<std::string> users;
    std::set<std::pair<std::string, std::string>> rooms;
    std::map<std::string, v1::Counts> nsp_counts;
    for (const auto& [sid, sock] : sockets_) {
      v1::Counts& counts = nsp_counts[sock.nsp];
      counts.set_sockets(counts.sockets() + 1);
      if (!sock.user.empty()) users.insert(sock.user);
      for (const std::string& room : sock.rooms) rooms.emplace(sock.nsp, room);
    }
    for (const auto& [nsp, messages] : per_nsp) {
      nsp_counts[nsp].set_messages_in(messages.in);
      nsp_counts[nsp].set_messages_out(messages.out);
    }
    v1::Counts* total = heartbeat.mutable_totals();
    total->set_sockets(sockets_.size());
    total->set_users(users.size());
    total->set_rooms(rooms.size());
    total->set_messages_in(totals.in);
    total->set_messages_out(totals.out);
    for (const auto& [nsp, counts] : nsp_counts) {
      v1::NamespaceCounts* out = heartbeat.add_namespaces();
      out->set_namespace_(nsp);
      *out->mutable_counts() = counts;
    }
  }

  bus::Bus& bus_;
  const std::string id_;
  const std::string incarnation_;
  std::mutex mu_;
  std::map<std::string, Sock> sockets_;
  uint64_t seq_ = 0;
  std::string snapshot_incarnation_;
  std::string version_;
  int64_t started_at_ = 0;
  bool draining_ = false;
  std::atomic<int> requests_{0};
  bus::SubscriptionPtr sub_;
};

using testing_support::FlakyBus;

// Records the EdgeMessages put on target subjects (room / ns / user / edge).
class TargetTap {
 public:
  explicit TargetTap(bus::Bus& bus) {
    auto sub = bus.Subscribe("sb.v1.>", [this](bus::Message message) {
      static constexpr std::string_view kTargets[] = {"sb.v1.room.", "sb.v1.ns.", "sb.v1.user.",
                                                      "sb.v1.edge."};
      bool target = std::any_of(std::begin(kTargets), std::end(kTargets),
                                [&](std::string_view p) { return message.subject.starts_with(p); });
      if (!target) return;
      std::lock_guard lock(mu_);
      messages_.push_back(std::move(message));
    });
    EXPECT_TRUE(sub.ok());
    if (sub.ok()) sub_ = std::move(*sub);
  }
  std::vector<bus::Message> Take() {
    std::lock_guard lock(mu_);
    return std::exchange(messages_, {});
  }

 private:
  std::mutex mu_;
  std::vector<bus::Message> messages_;
  bus::SubscriptionPtr sub_;
};

BrokerOptions Options() {
  BrokerOptions options;
  options.broker_id = "b1";
  options.tick = 20ms;
  options.snapshot_timeout = 500ms;
  options.ack_grace = 50ms;
  return options;
}

std::unique_ptr<Broker> StartBroker(bus::Bus& bus, BrokerOptions options = Options()) {
  auto broker = Broker::Start(bus, std::move(options));
  EXPECT_TRUE(broker.ok()) << broker.status();
  return broker.ok() ? std::move(*broker) : nullptr;
}

Ids Listing(Broker& broker, v1::ListSocketsRequest request = {}) {
  request.set_page_size(1000);
  auto page = broker.ListSockets(request);
  EXPECT_TRUE(page.ok()) << page.status();
  Ids out;
  if (!page.ok()) return out;
  for (const auto& s : page->sockets()) out.push_back(FakeEdge::Describe(s));
  return out;
}

Ids ListedIds(Broker& broker, v1::ListSocketsRequest request = {}) {
  request.set_page_size(1000);
  auto page = broker.ListSockets(request);
  EXPECT_TRUE(page.ok()) << page.status();
  Ids out;
  if (!page.ok()) return out;
  for (const auto& s : page->sockets()) out.push_back(s.id());
  return out;
}

Ids Concat(Ids a, const Ids& b) {
  a.insert(a.end(), b.begin(), b.end());
  std::sort(a.begin(), a.end());
  return a;
}

std::string RoomsText(Broker& broker, v1::ListRoomsRequest request = {}) {
  auto page = broker.ListRooms(request);
  EXPECT_TRUE(page.ok()) << page.status();
  if (!page.ok()) return "";
  std::vector<std::string> out;
  for (const auto& r : page->rooms())
    out.push_back(absl::StrCat(r.namespace_(), ":", r.name(), "=", r.members()));
  return absl::StrJoin(out, " ");
}

v1::GetStatsResponse Stats(Broker& broker) {
  auto stats = broker.GetStats({});
  EXPECT_TRUE(stats.ok()) << stats.status();
  return stats.ok() ? *stats : v1::GetStatsResponse{};
}

uint64_t LastSeq(Broker& broker, const std::string& edge) {
  v1::GetStatsResponse stats = Stats(broker);
  for (const auto& e : stats.edges()) {
    if (e.edge_id() == edge) return e.last_seq();
  }
  return 0;
}

std::string CountsText(const v1::Counts& c) {
  return absl::StrCat("sockets=", c.sockets(), " users=", c.users(), " rooms=", c.rooms(),
                      " in=", c.messages_in(), " out=", c.messages_out());
}

// Publish without acks: `done` runs before Publish returns.
absl::StatusOr<v1::PublishResponse> PublishNow(Broker& broker, const v1::PublishRequest& request) {
  std::optional<absl::StatusOr<v1::PublishResponse>> result;
  broker.Publish(request, [&](absl::StatusOr<v1::PublishResponse> r) { result = std::move(r); });
  EXPECT_TRUE(result.has_value()) << "done did not run before Publish returned";
  if (!result.has_value()) return absl::InternalError("no result");
  return *result;
}

// Collects an asynchronous Publish result, and how often `done` ran.
struct PublishWaiter {
  std::mutex mu;
  std::condition_variable cv;
  int calls = 0;
  std::optional<absl::StatusOr<v1::PublishResponse>> result;
  std::chrono::steady_clock::time_point at;

  Broker::PublishDone Done() {
    return [this](absl::StatusOr<v1::PublishResponse> r) {
      std::lock_guard lock(mu);
      ++calls;
      result = std::move(r);
      at = std::chrono::steady_clock::now();
      cv.notify_all();
    };
  }
  bool Wait(std::chrono::milliseconds timeout = kWait) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, timeout, [&] { return result.has_value(); });
  }
  bool Done_() {
    std::lock_guard lock(mu);
    return result.has_value();
  }
};

v1::Argument Json(const std::string& text) {
  v1::Argument arg;
  arg.set_json(text);
  return arg;
}

// ---------------------------------------------------------------------------
// Starting.

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
  e1.Heartbeat();  // last_seq 2: one event lost
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
struct Cluster {
  explicit Cluster(bus::Bus& bus) : e1(bus, "e1"), e2(bus, "e2") {
    a = e1.Connect("a", "/", "u1");
    e1.Join(a, "r1");
    b = e1.Connect("b", "/", "u2");
    c = e2.Connect("c", "/", "u1");
    e2.Join(c, "r1");
    e2.Join(c, "r2");
    d = e2.Connect("d", "/chat", "u1");
  }
  bool Indexed(Broker& broker) { return ListedIds(broker).size() == 4; }
  FakeEdge e1, e2;
  std::string a, b, c, d;
};

TEST(BrokerPublishTest, OneDeliveryOnEverySubjectTheTargetNeeds) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);
  Cluster cluster(bus);
  ASSERT_TRUE(Eventually([&] { return cluster.Indexed(*broker); }));
  TargetTap tap(bus);

  v1::PublishRequest request;
  v1::Target* target = request.mutable_target();
  target->add_rooms("r1");
  target->add_rooms("r2");
  target->add_rooms("r1");
  target->add_user_ids("u1");
  target->add_socket_ids(cluster.b);
  target->add_socket_ids("e2.unknown");
  target->add_socket_ids(cluster.a);
  target->add_except_rooms("r2");
  request.set_event("hello");
  *request.add_args() = Json(R"({"a":1})");
  request.add_args()->set_binary(std::string("\0\x01", 2));
  auto response = PublishNow(*broker, request);
  ASSERT_TRUE(response.ok()) << response.status();
  // a (r1, u1, id), b (id); c is in except room r2; d is in /chat.
  EXPECT_EQ(response->recipients(), 2u);
  EXPECT_EQ(response->acks_size(), 0);

  Flush(bus);
  std::vector<bus::Message> sent = tap.Take();
  std::set<std::string> subjects;
  for (const auto& m : sent) subjects.insert(m.subject);
  EXPECT_EQ(sent.size(), 5u);
  EXPECT_EQ(subjects,
            (std::set<std::string>{bus::RoomSubject("/", "r1"), bus::RoomSubject("/", "r2"),
                                   bus::UserSubject("/", "u1"), bus::EdgeSubject("e1"),
                                   bus::EdgeSubject("e2")}));
  ASSERT_FALSE(sent.empty());
  for (const auto& m : sent) EXPECT_EQ(m.payload, sent[0].payload) << m.subject;
  v1::EdgeMessage message;
  ASSERT_TRUE(message.ParseFromString(sent[0].payload));
  ASSERT_TRUE(message.has_delivery());
  const v1::Delivery& delivery = message.delivery();
  EXPECT_EQ(delivery.id(), "b1:1");
  EXPECT_EQ(delivery.target().namespace_(), "/");  // "" means "/"
  EXPECT_EQ(delivery.target().rooms_size(), 3);
  EXPECT_EQ(delivery.target().except_rooms(0), "r2");
  EXPECT_EQ(delivery.target().socket_ids_size(), 3);
  EXPECT_EQ(delivery.event(), "hello");
  ASSERT_EQ(delivery.args_size(), 2);
  EXPECT_EQ(delivery.args(0).json(), R"({"a":1})");
  EXPECT_EQ(delivery.args(1).binary(), std::string("\0\x01", 2));
  EXPECT_EQ(delivery.ack_timeout_ms(), 0u);
  EXPECT_TRUE(delivery.ack_subject().empty());
  EXPECT_FALSE(delivery.volatile_());

  // No room, user or socket: the namespace subject only.
  v1::PublishRequest whole;
  whole.mutable_target()->set_namespace_("/chat");
  whole.set_event("news");
  whole.set_volatile_(true);
  response = PublishNow(*broker, whole);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->recipients(), 1u);
  Flush(bus);
  sent = tap.Take();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].subject, bus::NamespaceSubject("/chat"));
  ASSERT_TRUE(message.ParseFromString(sent[0].payload));
  EXPECT_EQ(message.delivery().id(), "b1:2");
  EXPECT_TRUE(message.delivery().volatile_());
}

TEST(BrokerPublishTest, RecipientsAreTheIndexMatches) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);
  Cluster cluster(bus);
  ASSERT_TRUE(Eventually([&] { return cluster.Indexed(*broker); }));

  auto count = [&](std::function<void(v1::Target&)> fill) -> uint64_t {
    v1::PublishRequest request;
    request.set_event("e");
    fill(*request.mutable_target());
    auto response = PublishNow(*broker, request);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? response->recipients() : 999;
  };
  EXPECT_EQ(count([](v1::Target&) {}), 3u);  // "/": a, b, c
  EXPECT_EQ(count([](v1::Target& t) { t.set_namespace_("/chat"); }), 1u);
  EXPECT_EQ(count([](v1::Target& t) { t.set_namespace_("/nope"); }), 0u);
  EXPECT_EQ(count([](v1::Target& t) { t.add_rooms("r1"); }), 2u);
  EXPECT_EQ(count([](v1::Target& t) {
              t.add_rooms("r1");
              t.add_rooms("r2");
            }),
            2u);
  EXPECT_EQ(count([](v1::Target& t) { t.add_user_ids("u1"); }), 2u);     // d is in /chat
  EXPECT_EQ(count([&](v1::Target& t) { t.add_rooms(cluster.b); }), 1u);  // own-id room
  EXPECT_EQ(count([&](v1::Target& t) {
              t.add_user_ids("u1");
              t.add_socket_ids(cluster.b);
            }),
            3u);
  EXPECT_EQ(count([&](v1::Target& t) { t.add_except_rooms("r1"); }), 1u);  // b
  EXPECT_EQ(count([&](v1::Target& t) {
              t.add_except_rooms("r2");
              t.add_except_socket_ids(cluster.b);
            }),
            1u);                                                              // a
  EXPECT_EQ(count([&](v1::Target& t) { t.add_socket_ids(cluster.d); }), 0u);  // wrong nsp
}

TEST(BrokerPublishTest, InvalidRequestsAreRejected) {
  bus::InProcessBus bus;
  BrokerOptions options = Options();
  options.max_ack_timeout_ms = 1000;
  auto broker = StartBroker(bus, options);
  TargetTap tap(bus);

  auto status_of = [&](std::function<void(v1::PublishRequest&)> edit) {
    v1::PublishRequest request;
    request.set_event("ok");
    *request.add_args() = Json("[1,2]");
    edit(request);
    auto response = PublishNow(*broker, request);
    return response.status();
  };
  EXPECT_TRUE(status_of([](v1::PublishRequest&) {}).ok());
  EXPECT_TRUE(status_of([](v1::PublishRequest& r) { r.set_ack_timeout_ms(1000); }).ok());

  struct Case {
    const char* what;
    std::function<void(v1::PublishRequest&)> edit;
    const char* message_part;
  };
  std::vector<Case> cases = {
      {"empty event", [](auto& r) { r.clear_event(); }, "empty"},
      {"connect", [](auto& r) { r.set_event("connect"); }, "reserved"},
      {"connect_error", [](auto& r) { r.set_event("connect_error"); }, "reserved"},
      {"disconnect", [](auto& r) { r.set_event("disconnect"); }, "reserved"},
      {"disconnecting", [](auto& r) { r.set_event("disconnecting"); }, "reserved"},
      {"newListener", [](auto& r) { r.set_event("newListener"); }, "reserved"},
      {"removeListener", [](auto& r) { r.set_event("removeListener"); }, "reserved"},
      {"unset argument", [](auto& r) { r.add_args(); }, "args[1]"},
      {"bad json", [](auto& r) { *r.add_args() = Json("{a:1}"); }, "args[1].json"},
      {"truncated json", [](auto& r) { *r.add_args() = Json("[1,"); }, "JSON"},
      {"empty json", [](auto& r) { *r.add_args() = Json(""); }, "JSON"},
      {"socket id without edge", [](auto& r) { r.mutable_target()->add_socket_ids("nodot"); },
       "malformed socket id"},
      {"socket id with two dots", [](auto& r) { r.mutable_target()->add_socket_ids("e1.a.b"); },
       "malformed socket id"},
      {"socket id with a bad edge", [](auto& r) { r.mutable_target()->add_socket_ids("e 1.a"); },
       "malformed socket id"},
      {"except socket id", [](auto& r) { r.mutable_target()->add_except_socket_ids(".a"); },
       "except_socket_ids"},
      {"ack timeout above max", [](auto& r) { r.set_ack_timeout_ms(1001); }, "maximum"},
      {"ack with volatile",
       [](auto& r) {
         r.set_ack_timeout_ms(10);
         r.set_volatile_(true);
       },
       "volatile"},
  };
  for (const Case& c : cases) {
    absl::Status status = status_of(c.edit);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.what << ": " << status;
    EXPECT_NE(status.message().find(c.message_part), std::string::npos) << c.what << ": " << status;
  }
  Flush(bus);
  EXPECT_EQ(tap.Take().size(), 2u);  // the two valid ones only
}

TEST(BrokerPublishTest, BusDownIsUnavailable) {
  FlakyBus bus;
  auto broker = StartBroker(bus);
  v1::PublishRequest request;
  request.set_event("e");
  request.mutable_target()->add_rooms("r");

  bus.down = true;
  EXPECT_FALSE(broker->bus_connected());
  EXPECT_EQ(PublishNow(*broker, request).status().code(), absl::StatusCode::kUnavailable);
  v1::JoinRoomsRequest join;
  join.mutable_selector()->set_all_sockets(true);
  join.add_rooms("x");
  EXPECT_EQ(broker->JoinRooms(join).status().code(), absl::StatusCode::kUnavailable);
  // Validation comes first.
  request.clear_event();
  EXPECT_EQ(PublishNow(*broker, request).status().code(), absl::StatusCode::kInvalidArgument);
  request.set_event("e");

  // Connected, but the publish itself fails.
  bus.down = false;
  bus.fail_publish = true;
  EXPECT_EQ(PublishNow(*broker, request).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(broker->JoinRooms(join).status().code(), absl::StatusCode::kUnavailable);
  PublishWaiter waiter;
  request.set_ack_timeout_ms(5000);
  broker->Publish(request, waiter.Done());
  ASSERT_TRUE(waiter.Wait(1s));
  EXPECT_EQ(waiter.result->status().code(), absl::StatusCode::kUnavailable);

  bus.fail_publish = false;
  request.set_ack_timeout_ms(0);
  EXPECT_TRUE(PublishNow(*broker, request).ok());
}

// Answers deliveries on room "r1" with one AckReport per listed edge.
class AckingEdges {
 public:
  AckingEdges(bus::Bus& bus, Cluster& cluster, std::vector<std::string> edges, int copies = 1)
      : bus_(bus) {
    auto sub = bus.Subscribe(
        bus::RoomSubject("/", "r1"), [this, &cluster, edges, copies](bus::Message message) {
          v1::EdgeMessage edge_message;
          ASSERT_TRUE(edge_message.ParseFromString(message.payload));
          const v1::Delivery& delivery = edge_message.delivery();
          ack_subject_ = delivery.ack_subject();
          for (const std::string& edge : edges) {
            v1::AckReport report;
            report.set_delivery_id(delivery.id());
            report.set_edge_id(edge);
            report.set_recipients(1);
            v1::Ack* ack = report.add_acks();
            ack->set_socket_id(edge == "e1" ? cluster.a : cluster.c);
            *ack->add_args() = Json(R"("ok")");
            for (int i = 0; i < copies; ++i) {
              EXPECT_TRUE(bus_.Publish(delivery.ack_subject(), report.SerializeAsString()).ok());
            }
          }
          // Noise: a report for a delivery nobody waits for.
          v1::AckReport stray;
          stray.set_delivery_id("b1:999");
          stray.set_edge_id("e1");
          stray.set_recipients(5);
          EXPECT_TRUE(bus_.Publish(delivery.ack_subject(), stray.SerializeAsString()).ok());
        });
    EXPECT_TRUE(sub.ok());
    if (sub.ok()) sub_ = std::move(*sub);
  }
  std::string ack_subject_;

 private:
  bus::Bus& bus_;
  bus::SubscriptionPtr sub_;
};

v1::PublishRequest AckRequest(uint32_t timeout_ms) {
  v1::PublishRequest request;
  request.set_event("ask");
  request.mutable_target()->add_rooms("r1");
  request.set_ack_timeout_ms(timeout_ms);
  return request;
}

TEST(BrokerAckTest, CompletesAsSoonAsEveryEdgeReported) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);
  Cluster cluster(bus);
  ASSERT_TRUE(Eventually([&] { return cluster.Indexed(*broker); }));
  AckingEdges acking(bus, cluster, {"e1", "e2"}, /*copies=*/2);
  TargetTap tap(bus);

  PublishWaiter waiter;
  auto start = std::chrono::steady_clock::now();
  broker->Publish(AckRequest(5000), waiter.Done());
  ASSERT_TRUE(waiter.Wait());
  EXPECT_LT(waiter.at - start, 2s);
  ASSERT_TRUE(waiter.result->ok()) << waiter.result->status();
  const v1::PublishResponse& response = **waiter.result;
  EXPECT_EQ(response.recipients(), 2u);  // duplicates and strays ignored
  ASSERT_EQ(response.acks_size(), 2);
  std::set<std::string> acked = {response.acks(0).socket_id(), response.acks(1).socket_id()};
  EXPECT_EQ(acked, (std::set<std::string>{cluster.a, cluster.c}));
  EXPECT_EQ(response.acks(0).args(0).json(), R"("ok")");

  Flush(bus);
  std::vector<bus::Message> sent = tap.Take();
  ASSERT_EQ(sent.size(), 1u);
  v1::EdgeMessage message;
  ASSERT_TRUE(message.ParseFromString(sent[0].payload));
  EXPECT_EQ(message.delivery().ack_timeout_ms(), 5000u);
  EXPECT_EQ(message.delivery().ack_subject(), bus::AckSubject("b1"));
  EXPECT_EQ(acking.ack_subject_, "sb.v1.ack.b1");
  std::this_thread::sleep_for(50ms);
  std::lock_guard lock(waiter.mu);
  EXPECT_EQ(waiter.calls, 1);
}

TEST(BrokerAckTest, CompletesAtTheTimeoutWithWhatArrived) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);  // ack_grace 50 ms
  Cluster cluster(bus);
  ASSERT_TRUE(Eventually([&] { return cluster.Indexed(*broker); }));
  AckingEdges acking(bus, cluster, {"e1"});  // e2 never reports

  PublishWaiter waiter;
  auto start = std::chrono::steady_clock::now();
  broker->Publish(AckRequest(200), waiter.Done());
  ASSERT_TRUE(waiter.Wait());
  EXPECT_GE(waiter.at - start, 250ms);
  EXPECT_LT(waiter.at - start, 2s);
  ASSERT_TRUE(waiter.result->ok());
  EXPECT_EQ((*waiter.result)->recipients(), 1u);
  ASSERT_EQ((*waiter.result)->acks_size(), 1);
  EXPECT_EQ((*waiter.result)->acks(0).socket_id(), cluster.a);
  std::this_thread::sleep_for(50ms);
  std::lock_guard lock(waiter.mu);
  EXPECT_EQ(waiter.calls, 1);
}

TEST(BrokerAckTest, NoRecipientsCompletesAtOnce) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);
  PublishWaiter waiter;
  broker->Publish(AckRequest(5000), waiter.Done());
  ASSERT_TRUE(waiter.Done_());
  ASSERT_TRUE(waiter.result->ok());
  EXPECT_EQ((*waiter.result)->recipients(), 0u);
}

TEST(BrokerAckTest, DestroyingTheBrokerCompletesPendingPublishes) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);
  Cluster cluster(bus);
  ASSERT_TRUE(Eventually([&] { return cluster.Indexed(*broker); }));
  AckingEdges acking(bus, cluster, {"e2"});

  PublishWaiter waiter;
  broker->Publish(AckRequest(30'000), waiter.Done());
  Flush(bus);  // the delivery and e2's report are handled
  Flush(bus);
  EXPECT_FALSE(waiter.Done_());
  broker.reset();
  ASSERT_TRUE(waiter.Done_());
  ASSERT_TRUE(waiter.result->ok());
  EXPECT_EQ((*waiter.result)->recipients(), 1u);
  ASSERT_EQ((*waiter.result)->acks_size(), 1);
  EXPECT_EQ((*waiter.result)->acks(0).socket_id(), cluster.c);
  std::lock_guard lock(waiter.mu);
  EXPECT_EQ(waiter.calls, 1);
}

// ---------------------------------------------------------------------------
// Commands.

TEST(BrokerCommandTest, CommandsGoToTheSelectorsSubjects) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);
  Cluster cluster(bus);
  ASSERT_TRUE(Eventually([&] { return cluster.Indexed(*broker); }));
  TargetTap tap(bus);

  v1::JoinRoomsRequest join;
  join.mutable_selector()->add_rooms("r2");
  join.mutable_selector()->add_user_ids("u2");
  join.mutable_selector()->add_socket_ids(cluster.a);
  join.add_rooms("x");
  join.add_rooms("y");
  auto joined = broker->JoinRooms(join);
  ASSERT_TRUE(joined.ok()) << joined.status();
  EXPECT_EQ(joined->matched_sockets(), 3u);  // c (r2), b (u2), a
  Flush(bus);
  std::vector<bus::Message> sent = tap.Take();
  std::set<std::string> subjects;
  for (const auto& m : sent) {
    subjects.insert(m.subject);
    EXPECT_EQ(m.payload, sent[0].payload);
  }
  EXPECT_EQ(sent.size(), 3u);
  EXPECT_EQ(subjects, (std::set<std::string>{bus::RoomSubject("/", "r2"),
                                             bus::UserSubject("/", "u2"), bus::EdgeSubject("e1")}));
  v1::EdgeMessage message;
  ASSERT_TRUE(message.ParseFromString(sent.at(0).payload));
  ASSERT_TRUE(message.has_command());
  EXPECT_EQ(message.command().id(), "b1:1");
  EXPECT_EQ(message.command().selector().namespace_(), "/");
  EXPECT_EQ(message.command().selector().rooms(0), "r2");
  ASSERT_TRUE(message.command().has_join());
  EXPECT_EQ(message.command().join().rooms_size(), 2);
  EXPECT_EQ(message.command().join().rooms(1), "y");

  v1::LeaveRoomsRequest leave;
  leave.mutable_selector()->set_namespace_("/chat");
  leave.mutable_selector()->set_all_sockets(true);
  leave.add_rooms("r1");
  auto left = broker->LeaveRooms(leave);
  ASSERT_TRUE(left.ok()) << left.status();
  EXPECT_EQ(left->matched_sockets(), 1u);
  Flush(bus);
  sent = tap.Take();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].subject, bus::NamespaceSubject("/chat"));
  ASSERT_TRUE(message.ParseFromString(sent[0].payload));
  EXPECT_EQ(message.command().id(), "b1:2");
  EXPECT_TRUE(message.command().selector().all_sockets());
  ASSERT_TRUE(message.command().has_leave());
  EXPECT_EQ(message.command().leave().rooms(0), "r1");

  v1::DisconnectSocketsRequest disconnect;
  disconnect.mutable_selector()->add_socket_ids(cluster.c);
  disconnect.mutable_selector()->add_socket_ids("e2.gone");
  disconnect.set_close(true);
  auto disconnected = broker->DisconnectSockets(disconnect);
  ASSERT_TRUE(disconnected.ok()) << disconnected.status();
  EXPECT_EQ(disconnected->matched_sockets(), 1u);
  Flush(bus);
  sent = tap.Take();
  ASSERT_EQ(sent.size(), 1u);  // both ids on e2: one message
  EXPECT_EQ(sent[0].subject, bus::EdgeSubject("e2"));
  ASSERT_TRUE(message.ParseFromString(sent[0].payload));
  EXPECT_EQ(message.command().action_case(), v1::Command::kDisconnectClose);
  EXPECT_TRUE(message.command().disconnect_close());

  v1::DisconnectSocketsRequest everyone;
  everyone.mutable_selector()->set_all_sockets(true);
  auto all = broker->DisconnectSockets(everyone);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->matched_sockets(), 3u);  // "/" only
  Flush(bus);
  sent = tap.Take();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].subject, bus::NamespaceSubject("/"));
  ASSERT_TRUE(message.ParseFromString(sent[0].payload));
  EXPECT_EQ(message.command().action_case(), v1::Command::kDisconnectClose);
  EXPECT_FALSE(message.command().disconnect_close());
}

TEST(BrokerCommandTest, InvalidSelectorsAreRejected) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);
  TargetTap tap(bus);
  auto join_status = [&](std::function<void(v1::JoinRoomsRequest&)> edit) {
    v1::JoinRoomsRequest request;
    request.mutable_selector()->add_rooms("r");
    request.add_rooms("x");
    edit(request);
    return broker->JoinRooms(request).status();
  };
  EXPECT_TRUE(join_status([](auto&) {}).ok());
  EXPECT_EQ(join_status([](auto& r) { r.mutable_selector()->clear_rooms(); }).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(join_status([](auto& r) { r.mutable_selector()->set_all_sockets(true); }).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(join_status([](auto& r) { r.clear_rooms(); }).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(join_status([](auto& r) { r.mutable_selector()->add_socket_ids("x"); }).code(),
            absl::StatusCode::kInvalidArgument);

  v1::LeaveRoomsRequest leave;
  leave.mutable_selector()->set_all_sockets(true);
  EXPECT_EQ(broker->LeaveRooms(leave).status().code(), absl::StatusCode::kInvalidArgument);
  leave.add_rooms("x");
  leave.mutable_selector()->add_user_ids("u");
  EXPECT_EQ(broker->LeaveRooms(leave).status().code(), absl::StatusCode::kInvalidArgument);

  v1::DisconnectSocketsRequest disconnect;
  EXPECT_EQ(broker->DisconnectSockets(disconnect).status().code(),
            absl::StatusCode::kInvalidArgument);
  disconnect.mutable_selector()->add_socket_ids("e1.a.");
  EXPECT_EQ(broker->DisconnectSockets(disconnect).status().code(),
            absl::StatusCode::kInvalidArgument);
  Flush(bus);
  EXPECT_EQ(tap.Take().size(), 1u);  // the one valid join
}

// ---------------------------------------------------------------------------
// Watching.

// Records what a watcher gets, in Describe form.
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
        default:
          text = "?";
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

TEST(BrokerAckTest, AcksGoToTheEdgeTheRefNames) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);
  auto ack = [&](const std::string& ref, const std::string& json = "1") {
    v1::AckRequest request;
    request.set_ack_ref(ref);
    request.add_args()->set_json(json);
    std::promise<absl::Status> result;
    broker->Ack(request, [&](absl::Status status) { result.set_value(status); });
    return result.get_future().get();
  };
  EXPECT_EQ(ack("no-dots").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ack("e1.n.x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ack("bad edge.n.1").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ack("e1.n.1", "{not json").code(), absl::StatusCode::kInvalidArgument);
  // Nobody serves e1: its edge is gone.
  EXPECT_EQ(ack("e1.n.1").code(), absl::StatusCode::kNotFound);

  // A fake edge that knows ack 1 once.
  std::mutex mu;
  std::vector<v1::ForwardAck> got;
  auto sub = bus.Subscribe(bus::ForwardAckSubject("e1"), [&](bus::Message message) {
    v1::ForwardAck request;
    ASSERT_TRUE(request.ParseFromString(message.payload));
    v1::ForwardAckResult result;
    {
      std::lock_guard lock(mu);
      result.set_delivered(request.ack_ref() == "e1.n.1" && got.empty());
      got.push_back(request);
    }
    ASSERT_TRUE(bus.Publish(message.reply_to, result.SerializeAsString()).ok());
  });
  ASSERT_TRUE(sub.ok());
  EXPECT_TRUE(ack("e1.n.1", R"({"ok":true})").ok());
  absl::Status again = ack("e1.n.1");
  EXPECT_EQ(again.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(again.message().find("already answered"), absl::string_view::npos) << again;
  std::lock_guard lock(mu);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].reply().args(0).json(), R"({"ok":true})");
}

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

TEST(BrokerPublishTest, DeliveriesCarryThePublishTime) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);
  FakeEdge e1(bus, "e1");
  e1.Connect("a");
  ASSERT_TRUE(Eventually([&] { return ListedIds(*broker).size() == 1; }));
  TargetTap tap(bus);
  auto unix_nanos = [] {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  v1::PublishRequest request;
  request.set_event("hello");
  const int64_t before = unix_nanos();
  ASSERT_TRUE(PublishNow(*broker, request).ok());
  const int64_t after = unix_nanos();
  Flush(bus);
  std::vector<bus::Message> sent = tap.Take();
  ASSERT_EQ(sent.size(), 1u);
  v1::EdgeMessage message;
  ASSERT_TRUE(message.ParseFromString(sent[0].payload));
  EXPECT_GE(message.delivery().published_unix_nanos(), before);
  EXPECT_LE(message.delivery().published_unix_nanos(), after);
}

}  // namespace
}  // namespace switchboard::broker
