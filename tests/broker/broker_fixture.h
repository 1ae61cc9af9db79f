#pragma once

// The broker on an InProcessBus: shared by the broker's tests (one file per
// piece of the broker). Fake edges, written here, publish the membership
// stream (proto MembershipEvent / Heartbeat on their subjects) and answer
// snapshot requests; the tests read the broker's answers and what it puts on
// the bus.

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
#include "broker/broker.h"
#include "bus/inproc_bus.h"
#include "bus/routing.h"
#include "switchboard/v1/bus.pb.h"
#include "tests/bus/flaky_bus.h"
#include "tests/support/eventually.h"

namespace switchboard::broker {

using namespace std::chrono_literals;
using Ids = std::vector<std::string>;

constexpr auto kWait = 5s;

using testing_support::Eventually;

// Every handler on the default executor runs on the bus's one worker thread,
// in order: once a message published now is handled, so is everything
// published before it.
inline void Flush(bus::Bus& bus) {
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

inline void SetTime(google::protobuf::Timestamp* out, int64_t seconds) {
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
    if (probe_sub_) probe_sub_->Unsubscribe();
  }

  void ServeSnapshots() {
    auto sub = bus_.Subscribe(bus::SnapshotSubject(id_), [this](bus::Message message) {
      v1::Snapshot snapshot = BuildSnapshot();
      requests_.fetch_add(1);
      EXPECT_TRUE(bus_.Publish(message.reply_to, snapshot.SerializeAsString()).ok());
    });
    ASSERT_TRUE(sub.ok());
    sub_ = std::move(*sub);
    auto probe_sub = bus_.Subscribe(bus::ProbeSubject(id_), [this](bus::Message message) {
      v1::ProbeReply reply;
      reply.set_edge_id(id_);
      reply.set_incarnation(incarnation_);
      EXPECT_TRUE(bus_.Publish(message.reply_to, reply.SerializeAsString()).ok());
    });
    ASSERT_TRUE(probe_sub.ok());
    probe_sub_ = std::move(*probe_sub);
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

  // A socket as an edge holds it (what moves with its session).
  struct Sock {
    std::string nsp;
    std::string user;
    v1::Transport transport = v1::TRANSPORT_POLLING;
    std::set<std::string> rooms;
    int64_t connected_at = 0;
  };
  // The socket as this edge holds it now.
  Sock Get(const std::string& sid) {
    std::lock_guard lock(mu_);
    return sockets_.at(sid);
  }
  // The socket's session moves to edge `to` (a WebSocket upgrade landed
  // there): moved_out here. Returns the socket for the other edge's MoveIn.
  Sock MoveOut(const std::string& sid, const std::string& to, bool publish = true) {
    std::lock_guard lock(mu_);
    Sock sock = sockets_.at(sid);
    sockets_.erase(sid);
    v1::MembershipEvent event;
    v1::SocketMovedOut* change = event.mutable_moved_out();
    change->set_socket_id(sid);
    change->set_namespace_(sock.nsp);
    change->set_user_id(sock.user);
    change->set_to_edge(to);
    Emit(event, publish);
    return sock;
  }
  // The session of `sid` arrives from edge `from` (its id unchanged), on
  // WebSocket: moved_in with its rooms.
  void MoveIn(const std::string& sid, Sock sock, const std::string& from, bool publish = true) {
    std::lock_guard lock(mu_);
    sock.transport = v1::TRANSPORT_WEBSOCKET;
    sockets_[sid] = sock;
    v1::MembershipEvent event;
    FillInfo(sid, sock, event.mutable_moved_in()->mutable_socket());
    event.mutable_moved_in()->set_from_edge(from);
    Emit(event, publish);
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
  // The heartbeat period its heartbeats announce (the broker probes it when
  // they are 1.5 periods late).
  void SetInterval(uint32_t ms) {
    std::lock_guard lock(mu_);
    interval_ms_ = ms;
  }
  // As NATS does when an edge's connection closes: its subscriptions go
  // (snapshot and probe requests then find no responder).
  void StopServing() {
    if (sub_) sub_->Unsubscribe();
    if (probe_sub_) probe_sub_->Unsubscribe();
  }
  void SetDraining(bool draining) {
    std::lock_guard lock(mu_);
    draining_ = draining;
  }
  // The namespaces later heartbeats announce connection state recovery for.
  void SetRecoveryNamespaces(std::vector<std::string> namespaces) {
    std::lock_guard lock(mu_);
    recovery_namespaces_ = std::move(namespaces);
  }

 private:
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
    heartbeat.set_interval_ms(interval_ms_);
    heartbeat.set_version(version_);
    if (started_at_ != 0) SetTime(heartbeat.mutable_started_at(), started_at_);
    heartbeat.set_draining(draining_);
    for (const std::string& nsp : recovery_namespaces_) heartbeat.add_recovery_namespaces(nsp);
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
  std::vector<std::string> recovery_namespaces_;
  uint32_t interval_ms_ = 2000;
  std::atomic<int> requests_{0};
  bus::SubscriptionPtr sub_;
  bus::SubscriptionPtr probe_sub_;
};

using testing_support::FlakyBus;

// Records the EdgeMessages put on target subjects (room / ns / user / edge).
class TargetTap {
 public:
  explicit TargetTap(bus::Bus& bus) {
    auto sub = bus.Subscribe("sb.v1.>", [this](bus::Message message) {
      static constexpr std::string_view kTargets[] = {"sb.v1.room.", "sb.v1.ns.", "sb.v1.user.",
                                                      "sb.v1.sock."};
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

inline BrokerOptions Options() {
  BrokerOptions options;
  options.broker_id = "b1";
  options.tick = 20ms;
  options.snapshot_timeout = 500ms;
  options.ack_grace = 50ms;
  return options;
}

inline std::unique_ptr<Broker> StartBroker(bus::Bus& bus, BrokerOptions options = Options()) {
  auto broker = Broker::Start(bus, std::move(options));
  EXPECT_TRUE(broker.ok()) << broker.status();
  return broker.ok() ? std::move(*broker) : nullptr;
}

inline Ids Listing(Broker& broker, v1::ListSocketsRequest request = {}) {
  request.set_page_size(1000);
  auto page = broker.ListSockets(request);
  EXPECT_TRUE(page.ok()) << page.status();
  Ids out;
  if (!page.ok()) return out;
  for (const auto& s : page->sockets()) out.push_back(FakeEdge::Describe(s));
  return out;
}

inline Ids ListedIds(Broker& broker, v1::ListSocketsRequest request = {}) {
  request.set_page_size(1000);
  auto page = broker.ListSockets(request);
  EXPECT_TRUE(page.ok()) << page.status();
  Ids out;
  if (!page.ok()) return out;
  for (const auto& s : page->sockets()) out.push_back(s.id());
  return out;
}

inline Ids Concat(Ids a, const Ids& b) {
  a.insert(a.end(), b.begin(), b.end());
  std::sort(a.begin(), a.end());
  return a;
}

inline std::string RoomsText(Broker& broker, v1::ListRoomsRequest request = {}) {
  auto page = broker.ListRooms(request);
  EXPECT_TRUE(page.ok()) << page.status();
  if (!page.ok()) return "";
  std::vector<std::string> out;
  for (const auto& r : page->rooms())
    out.push_back(absl::StrCat(r.namespace_(), ":", r.name(), "=", r.members()));
  return absl::StrJoin(out, " ");
}

inline v1::GetStatsResponse Stats(Broker& broker) {
  auto stats = broker.GetStats({});
  EXPECT_TRUE(stats.ok()) << stats.status();
  return stats.ok() ? *stats : v1::GetStatsResponse{};
}

inline uint64_t LastSeq(Broker& broker, const std::string& edge) {
  v1::GetStatsResponse stats = Stats(broker);
  for (const auto& e : stats.edges()) {
    if (e.edge_id() == edge) return e.last_seq();
  }
  return 0;
}

inline std::string CountsText(const v1::Counts& c) {
  return absl::StrCat("sockets=", c.sockets(), " users=", c.users(), " rooms=", c.rooms(),
                      " in=", c.messages_in(), " out=", c.messages_out());
}

// Publish without acks: `done` runs before Publish returns.
inline absl::StatusOr<v1::PublishResponse> PublishNow(Broker& broker,
                                                      const v1::PublishRequest& request) {
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

inline v1::Argument Json(const std::string& text) {
  v1::Argument arg;
  arg.set_json(text);
  return arg;
}

// ---------------------------------------------------------------------------
// Starting.

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

}  // namespace switchboard::broker
