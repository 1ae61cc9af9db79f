#include "broker/broker.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "broker/index.h"
#include "bus/routing.h"
#include "nlohmann/json.hpp"
#include "proto/convert.h"
#include "switchboard/v1/bus.pb.h"

namespace switchboard::broker {

// Named (not anonymous) so that Broker::State may hold it without
// -Wsubobject-linkage.
namespace broker_internal {
namespace {

using Clock = std::chrono::steady_clock;
using google::protobuf::RepeatedPtrField;

constexpr std::string_view kReservedEvents[] = {"connect",       "connect_error", "disconnect",
                                                "disconnecting", "newListener",   "removeListener"};

// SocketDisconnected.reason of the sockets of an edge the broker gave up on.
constexpr std::string_view kEdgeTimeoutReason = "edge timeout";

// Debian's Abseil has its own string_view, which StrCat wants.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string NormalizeNamespace(std::string_view nsp) {
  return nsp.empty() ? std::string("/") : std::string(nsp);
}

SocketInfo FromProto(const v1::SocketInfo& in) {
  SocketInfo out;
  out.id = in.id();
  out.edge_id = in.edge_id();
  out.nsp = in.namespace_();
  out.user_id = in.user_id();
  out.transport = proto::TransportName(in.transport());
  out.remote_address = in.remote_address();
  out.claims = in.claims();
  out.connected_at = proto::FromTimestamp(in.connected_at());
  out.rooms.assign(in.rooms().begin(), in.rooms().end());
  return out;
}

void ToProto(const SocketInfo& in, v1::SocketInfo* out) {
  out->set_id(in.id);
  out->set_edge_id(in.edge_id);
  out->set_user_id(in.user_id);
  out->set_namespace_(in.nsp);
  for (const std::string& room : in.rooms) out->add_rooms(room);  // sorted by the index
  out->set_transport(proto::TransportFromName(in.transport));
  out->set_remote_address(in.remote_address);
  out->set_claims(in.claims);
  proto::ToTimestamp(in.connected_at, out->mutable_connected_at());
}

Event ToIndexEvent(const v1::MembershipEvent& event) {
  switch (event.change_case()) {
    case v1::MembershipEvent::kConnected:
      return Connected{FromProto(event.connected().socket())};
    case v1::MembershipEvent::kDisconnected:
      return Disconnected{event.disconnected().socket_id()};
    case v1::MembershipEvent::kJoined:
      return Joined{event.joined().socket_id(), event.joined().room()};
    case v1::MembershipEvent::kLeft:
      return Left{event.left().socket_id(), event.left().room()};
    case v1::MembershipEvent::kTransportChanged:
      return TransportChanged{event.transport_changed().socket_id(),
                              proto::TransportName(event.transport_changed().transport())};
    default:
      // A change this broker does not know (a newer edge): no socket has the
      // empty id, so this only consumes the seq and keeps the stream gapless.
      return Disconnected{};
  }
}

// The watch view of a stream event; nullopt for changes watchers do not see.
struct WatchItem {
  v1::WatchEventsResponse response;
  v1::EventKind kind;
  std::string nsp;
};

std::optional<WatchItem> ToWatchItem(const v1::MembershipEvent& event) {
  WatchItem item;
  item.response.set_edge_id(event.edge_id());
  *item.response.mutable_time() = event.time();
  switch (event.change_case()) {
    case v1::MembershipEvent::kConnected:
      *item.response.mutable_connected() = event.connected();
      item.kind = v1::EVENT_KIND_CONNECTED;
      item.nsp = event.connected().socket().namespace_();
      break;
    case v1::MembershipEvent::kDisconnected:
      *item.response.mutable_disconnected() = event.disconnected();
      item.kind = v1::EVENT_KIND_DISCONNECTED;
      item.nsp = event.disconnected().namespace_();
      break;
    case v1::MembershipEvent::kJoined:
      *item.response.mutable_joined() = event.joined();
      item.kind = v1::EVENT_KIND_JOINED;
      item.nsp = event.joined().namespace_();
      break;
    case v1::MembershipEvent::kLeft:
      *item.response.mutable_left() = event.left();
      item.kind = v1::EVENT_KIND_LEFT;
      item.nsp = event.left().namespace_();
      break;
    default:
      return std::nullopt;
  }
  return item;
}

absl::Status CheckSocketIds(const RepeatedPtrField<std::string>& ids, std::string_view field) {
  for (const std::string& id : ids) {
    if (bus::EdgeOfSocketId(id).empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("malformed socket id in ", Sv(field), ": \"", absl::CHexEscape(id), "\""));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidatePublish(const v1::PublishRequest& request, uint32_t max_ack_timeout_ms) {
  if (request.event().empty()) return absl::InvalidArgumentError("event name must not be empty");
  for (std::string_view reserved : kReservedEvents) {
    if (request.event() == reserved) {
      return absl::InvalidArgumentError(
          absl::StrCat("event name \"", Sv(reserved), "\" is reserved by Socket.IO"));
    }
  }
  for (int i = 0; i < request.args_size(); ++i) {
    const v1::Argument& arg = request.args(i);
    if (arg.value_case() == v1::Argument::VALUE_NOT_SET) {
      return absl::InvalidArgumentError(
          absl::StrCat("args[", i, "] has no value: set json or binary"));
    }
    if (arg.has_json() && !nlohmann::json::accept(arg.json())) {
      return absl::InvalidArgumentError(absl::StrCat("args[", i, "].json is not valid JSON"));
    }
  }
  if (absl::Status s = CheckSocketIds(request.target().socket_ids(), "target.socket_ids");
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          CheckSocketIds(request.target().except_socket_ids(), "target.except_socket_ids");
      !s.ok()) {
    return s;
  }
  if (request.ack_timeout_ms() > max_ack_timeout_ms) {
    return absl::InvalidArgumentError(absl::StrCat("ack_timeout_ms ", request.ack_timeout_ms(),
                                                   " exceeds the maximum of ", max_ack_timeout_ms));
  }
  if (request.ack_timeout_ms() > 0 && request.volatile_()) {
    return absl::InvalidArgumentError("ack_timeout_ms is not allowed with volatile");
  }
  return absl::OkStatus();
}

absl::Status ValidateSelector(const v1::Selector& selector) {
  bool criteria =
      !selector.rooms().empty() || !selector.socket_ids().empty() || !selector.user_ids().empty();
  if (!criteria && !selector.all_sockets()) {
    return absl::InvalidArgumentError(
        "empty selector: name rooms, socket_ids or user_ids, or set all_sockets");
  }
  if (criteria && selector.all_sockets()) {
    return absl::InvalidArgumentError("all_sockets must be the only criterion of a selector");
  }
  return CheckSocketIds(selector.socket_ids(), "selector.socket_ids");
}

// The subjects a target (or selector) needs: each room, each user, the edge
// of each socket id, each once; the namespace subject when it names none.
std::vector<std::string> TargetSubjects(const std::string& nsp,
                                        const RepeatedPtrField<std::string>& rooms,
                                        const RepeatedPtrField<std::string>& socket_ids,
                                        const RepeatedPtrField<std::string>& user_ids) {
  std::set<std::string> subjects;
  for (const std::string& room : rooms) subjects.insert(bus::RoomSubject(nsp, room));
  for (const std::string& user : user_ids) subjects.insert(bus::UserSubject(nsp, user));
  for (const std::string& id : socket_ids) {
    subjects.insert(bus::EdgeSubject(bus::EdgeOfSocketId(id)));
  }
  if (subjects.empty()) subjects.insert(bus::NamespaceSubject(nsp));
  return {subjects.begin(), subjects.end()};
}

Selector IndexSelector(const std::string& nsp, const RepeatedPtrField<std::string>& rooms,
                       const RepeatedPtrField<std::string>& socket_ids,
                       const RepeatedPtrField<std::string>& user_ids) {
  Selector selector;
  selector.nsp = nsp;
  selector.rooms.assign(rooms.begin(), rooms.end());
  selector.socket_ids.assign(socket_ids.begin(), socket_ids.end());
  selector.user_ids.assign(user_ids.begin(), user_ids.end());
  return selector;
}

int PageSize(uint32_t requested) {
  // The index clamps to kMaxPageSize; only keep the value in int range.
  return static_cast<int>(std::min<uint32_t>(requested, kMaxPageSize + 1));
}

}  // namespace

// What the broker knows about an edge beyond the index.
struct EdgeState {
  std::string incarnation;
  // Highest seq of this incarnation passed to watchers (each event once).
  uint64_t watched_seq = 0;
  bool snapshot_in_flight = false;
  uint64_t snapshot_request = 0;  // id of the request in flight
  Clock::time_point snapshot_asked{};
  std::optional<WallTime> last_heartbeat;
  v1::Counts counts;                             // the last heartbeat's totals
  v1::ForwardStats forward;                      // the last heartbeat's forwarding counters
  std::map<std::string, v1::Counts> nsp_counts;  // and per namespace
  // From the heartbeats, for ListEdges.
  std::string version;
  std::optional<WallTime> started_at;
  bool draining = false;
};

// An edge that timed out without draining first, kept for ListEdges.
struct LostEdge {
  std::string incarnation;
  std::string version;
  std::optional<WallTime> started_at;
  std::optional<WallTime> last_heartbeat;
  WallTime lost_at;
  uint64_t sockets = 0;  // held when it was lost
};

struct PendingAck {
  std::set<std::string> expected;  // edges the index says hold recipients
  std::set<std::string> reported;
  Clock::time_point deadline;
  v1::PublishResponse response;
  Broker::PublishDone done;
};

struct Watcher {
  std::set<std::string> nsps;    // empty = every namespace
  std::set<std::string> events;  // client event names; empty = every one
  uint32_t kinds = 0;            // bit per v1::EventKind; 0 = every kind
  std::string group;             // "" = not load-balanced
  std::string group_key;         // group + filter: the GroupSub it belongs to
  Broker::WatchEvent on_event;
  std::function<void()> on_closed;
  // Held across each callback: serializes calls, and lets the handle's
  // destructor wait for a running one. Recursive so that the handle may be
  // destroyed from inside its own on_event.
  std::recursive_mutex mu;
  bool active = true;

  bool WantsKind(v1::EventKind kind) const {
    return kinds == 0 || (kinds & (1u << static_cast<unsigned>(kind))) != 0;
  }
  bool WantsLifecycle() const {
    return WantsKind(v1::EVENT_KIND_CONNECTED) || WantsKind(v1::EVENT_KIND_DISCONNECTED) ||
           WantsKind(v1::EVENT_KIND_JOINED) || WantsKind(v1::EVENT_KIND_LEFT);
  }
  bool Wants(const WatchItem& item) const {
    if (!WantsKind(item.kind)) return false;
    if (!nsps.empty() && !nsps.contains(item.nsp)) return false;
    if (item.kind == v1::EVENT_KIND_CLIENT_EVENT && !events.empty() &&
        !events.contains(item.response.client_event().event())) {
      return false;
    }
    return true;
  }
  // The forward subjects this watcher's filter needs.
  std::vector<std::string> ForwardPatterns() const {
    if (nsps.empty()) {
      if (events.empty()) return {std::string(bus::kAllForwarded)};
      std::vector<std::string> out;
      // Any namespace, these events: the event token is the subject's last.
      for (const std::string& event : events) {
        out.push_back(absl::StrCat("sb.v1.forward.*.", bus::NameToken(event)));
      }
      return out;
    }
    std::vector<std::string> out;
    for (const std::string& nsp : nsps) {
      if (events.empty()) {
        out.push_back(bus::ForwardNamespacePattern(nsp));
      } else {
        for (const std::string& event : events) out.push_back(bus::ForwardSubject(nsp, event));
      }
    }
    return out;
  }
};

// The bus subscriptions of one queue group of watchers (with one filter) on
// this broker: in the NATS queue group "sbw.<group token>", so that each
// event reaches one broker holding members, which hands it to one member.
struct GroupSub {
  std::vector<std::shared_ptr<Watcher>> members;
  size_t next = 0;  // round robin
  std::vector<bus::SubscriptionPtr> subs;
};

// Everything the broker's threads share. Request callbacks hold it weakly
// (they may fire after the broker is gone); subscriptions and the ticker end
// before it is released.
class Core : public std::enable_shared_from_this<Core> {
 public:
  Core(bus::Bus& bus, BrokerOptions options)
      : bus(bus),
        options(std::move(options)),
        ack_subject(bus::AckSubject(this->options.broker_id)) {}

  bus::Bus& bus;
  const BrokerOptions options;
  const std::string ack_subject;
  // Broker::counters() (metrics).
  struct {
    std::atomic<uint64_t> gaps{0};
    std::atomic<uint64_t> snapshot_requests{0};
    std::atomic<uint64_t> edges_expired{0};
    std::atomic<uint64_t> watch_dropped{0};      // events of any kind
    std::atomic<uint64_t> watch_acks_failed{0};  // client acks answered with an error for them
  } counters;

  std::string NextId() {
    return absl::StrCat(options.broker_id, ":", next_message_.fetch_add(1) + 1);
  }

  // --- Bus handlers.

  void OnMembership(const bus::Message& message) {
    v1::MembershipEvent event;
    if (!event.ParseFromString(message.payload) || !bus::ValidNodeId(event.edge_id())) return;
    const std::string& edge_id = event.edge_id();
    std::vector<Ask> asks;
    bool fresh = false;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      Clock::time_point now = Clock::now();
      EdgeState& edge = EdgeLocked(edge_id, event.incarnation());
      if (index_.ApplyEvent(edge_id, event.seq(), ToIndexEvent(event), now) == ApplyResult::kGap) {
        counters.gaps.fetch_add(1, std::memory_order_relaxed);
      }
      if (index_.NeedsSnapshot(edge_id)) AskLocked(edge_id, edge, now, asks);
      if (event.seq() > edge.watched_seq) {
        edge.watched_seq = event.seq();
        fresh = true;
      }
    }
    SendAsks(asks);
    if (fresh && watcher_count_.load() > 0) {
      if (auto item = ToWatchItem(event)) Fanout(*item);
    }
  }

  void OnHeartbeat(const bus::Message& message) {
    v1::Heartbeat heartbeat;
    if (!heartbeat.ParseFromString(message.payload) || !bus::ValidNodeId(heartbeat.edge_id())) {
      return;
    }
    std::vector<Ask> asks;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      Clock::time_point now = Clock::now();
      EdgeState& edge = EdgeLocked(heartbeat.edge_id(), heartbeat.incarnation());
      edge.last_heartbeat = std::chrono::system_clock::now();
      KeepCountsLocked(edge, heartbeat);
      KeepIdentityLocked(edge, heartbeat);
      edge.forward = heartbeat.forward();
      Heartbeat beat;
      beat.edge_id = heartbeat.edge_id();
      beat.last_seq = heartbeat.last_seq();
      beat.counts.sockets = heartbeat.totals().sockets();
      index_.ApplyHeartbeat(beat, now);
      if (index_.NeedsSnapshot(heartbeat.edge_id())) {
        AskLocked(heartbeat.edge_id(), edge, now, asks);
      }
    }
    SendAsks(asks);
  }

  void OnAck(const bus::Message& message) {
    v1::AckReport report;
    if (!report.ParseFromString(message.payload)) return;
    Broker::PublishDone done;
    v1::PublishResponse response;
    {
      std::lock_guard lock(mu_);
      auto it = acks_.find(report.delivery_id());
      if (it == acks_.end()) return;  // late, or not ours
      PendingAck& pending = it->second;
      if (!pending.reported.insert(report.edge_id()).second) return;  // one report per edge
      pending.response.set_recipients(pending.response.recipients() + report.recipients());
      for (const v1::Ack& ack : report.acks()) *pending.response.add_acks() = ack;
      if (!std::includes(pending.reported.begin(), pending.reported.end(), pending.expected.begin(),
                         pending.expected.end())) {
        return;
      }
      done = std::move(pending.done);
      response = std::move(pending.response);
      ack_deadlines_.erase({pending.deadline, it->first});
      acks_.erase(it);
    }
    done(std::move(response));
  }

  static WatchItem ForwardedItem(const v1::ForwardedEvent& forwarded) {
    WatchItem item;
    item.response.set_edge_id(forwarded.edge_id());
    *item.response.mutable_time() = forwarded.time();
    *item.response.mutable_client_event() = forwarded.event();
    item.kind = v1::EVENT_KIND_CLIENT_EVENT;
    item.nsp = forwarded.event().namespace_();
    return item;
  }

  void OnForwarded(const bus::Message& message) {
    v1::ForwardedEvent forwarded;
    if (!forwarded.ParseFromString(message.payload)) return;
    Fanout(ForwardedItem(forwarded));
  }

  // The sockets of an edge that stopped sending heartbeats are gone for the
  // backends too: each becomes a DISCONNECTED event (reason "edge timeout")
  // for this broker's watchers, and for one local member of each of its
  // groups (every broker expires the edge on its own, so a group with members
  // on several brokers hears it once per such broker).
  void AnnounceExpired(const std::vector<SocketInfo>& sockets) {
    if (watcher_count_.load() == 0) return;
    std::vector<std::weak_ptr<GroupSub>> groups;
    {
      std::lock_guard lock(watch_mu_);
      for (const auto& [key, group] : groups_) groups.push_back(group);
    }
    const auto now = std::chrono::system_clock::now();
    for (const SocketInfo& socket : sockets) {
      WatchItem item;
      item.kind = v1::EVENT_KIND_DISCONNECTED;
      item.nsp = socket.nsp;
      item.response.set_edge_id(socket.edge_id);
      proto::ToTimestamp(now, item.response.mutable_time());
      v1::SocketDisconnected* out = item.response.mutable_disconnected();
      out->set_socket_id(socket.id);
      out->set_namespace_(socket.nsp);
      out->set_user_id(socket.user_id);
      out->set_reason(std::string(kEdgeTimeoutReason));
      Fanout(item);
      for (const auto& group : groups) GroupDeliver(group, item);
    }
  }

  // --- Ticker.

  void Run() {
    std::unique_lock lock(mu_);
    Clock::time_point next_tick = Clock::now() + options.tick;
    while (!stopping_) {
      Clock::time_point wake = next_tick;
      if (!ack_deadlines_.empty()) wake = std::min(wake, ack_deadlines_.begin()->first);
      cv_.wait_until(lock, wake);
      if (stopping_) break;
      Clock::time_point now = Clock::now();

      std::vector<PendingAck> finished;
      while (!ack_deadlines_.empty() && ack_deadlines_.begin()->first <= now) {
        auto it = acks_.find(ack_deadlines_.begin()->second);
        ack_deadlines_.erase(ack_deadlines_.begin());
        if (it == acks_.end()) continue;
        finished.push_back(std::move(it->second));
        acks_.erase(it);
      }
      std::vector<Ask> asks;
      std::vector<SocketInfo> expired_sockets;
      bool ticked = now >= next_tick;
      if (ticked) {
        next_tick = now + options.tick;
        const WallTime wall_now = std::chrono::system_clock::now();
        for (const std::string& id :
             index_.ExpireEdges(now, options.edge_timeout, &expired_sockets)) {
          counters.edges_expired.fetch_add(1, std::memory_order_relaxed);
          auto it = edges_.find(id);
          // An edge that drained went away on purpose: not lost.
          if (it != edges_.end() && !it->second.draining) {
            const EdgeState& edge = it->second;
            LostEdge& lost = lost_[id];
            lost = LostEdge{edge.incarnation,    edge.version, edge.started_at,
                            edge.last_heartbeat, wall_now,     0};
            for (const SocketInfo& socket : expired_sockets) {
              if (socket.edge_id == id) ++lost.sockets;
            }
          }
          edges_.erase(id);
        }
        PruneLostLocked(wall_now);
        // Failed or timed-out asks are retried here, at most once per tick.
        for (const std::string& id : index_.EdgesNeedingSnapshot()) {
          auto it = edges_.find(id);
          if (it != edges_.end()) AskLocked(id, it->second, now, asks);
        }
      }
      lock.unlock();
      for (PendingAck& pending : finished) pending.done(std::move(pending.response));
      SendAsks(asks);
      if (!expired_sockets.empty()) AnnounceExpired(expired_sockets);
      if (ticked) MaybeDropForwardSubscription();
      lock.lock();
    }
  }

  // --- Snapshots.

  struct Ask {
    std::string edge_id;
    uint64_t request;
  };

  // Marks a snapshot ask for the edge unless one is already in flight.
  void AskLocked(const std::string& edge_id, EdgeState& edge, Clock::time_point now,
                 std::vector<Ask>& asks) {
    // The bus answers every request by its timeout; twice that means the
    // answer was lost, so ask again rather than wait forever.
    if (edge.snapshot_in_flight && now - edge.snapshot_asked < 2 * options.snapshot_timeout) {
      return;
    }
    edge.snapshot_in_flight = true;
    counters.snapshot_requests.fetch_add(1, std::memory_order_relaxed);
    edge.snapshot_request = ++next_snapshot_request_;
    edge.snapshot_asked = now;
    asks.push_back({edge_id, edge.snapshot_request});
  }

  // Never with mu_ held: a bus running handlers inline would re-enter.
  void SendAsks(const std::vector<Ask>& asks) {
    if (asks.empty()) return;
    v1::SnapshotRequest request;
    request.set_broker_id(options.broker_id);
    const std::string payload = request.SerializeAsString();
    std::weak_ptr<Core> weak = weak_from_this();
    for (const Ask& ask : asks) {
      bus.Request(bus::SnapshotSubject(ask.edge_id), payload, options.snapshot_timeout,
                  [weak, ask](absl::StatusOr<bus::Message> reply) {
                    std::shared_ptr<Core> core = weak.lock();
                    if (core == nullptr || !core->EnterCallback()) return;
                    core->OnSnapshotReply(ask, reply);
                    core->ExitCallback();
                  });
    }
  }

  void OnSnapshotReply(const Ask& ask, const absl::StatusOr<bus::Message>& reply) {
    std::vector<Ask> asks;
    {
      std::lock_guard lock(mu_);
      auto it = edges_.find(ask.edge_id);
      if (it == edges_.end()) return;  // expired meanwhile
      EdgeState& edge = it->second;
      if (edge.snapshot_request == ask.request) edge.snapshot_in_flight = false;
      if (!reply.ok()) return;  // the ticker asks again
      v1::Snapshot snapshot;
      if (!snapshot.ParseFromString(reply->payload) || snapshot.edge_id() != ask.edge_id) return;
      // A snapshot of another incarnation than the stream's is stale (or
      // early); the stream's next message settles which one is current.
      if (snapshot.incarnation() != edge.incarnation) return;
      Snapshot state;
      state.edge_id = snapshot.edge_id();
      state.seq = snapshot.seq();
      state.sockets.reserve(snapshot.sockets_size());
      for (const v1::SocketState& socket : snapshot.sockets()) {
        state.sockets.push_back(FromProto(socket.socket()));
      }
      Clock::time_point now = Clock::now();
      if (index_.ApplySnapshot(state, now) != ApplyResult::kDuplicate && snapshot.has_heartbeat()) {
        KeepCountsLocked(edge, snapshot.heartbeat());
        KeepIdentityLocked(edge, snapshot.heartbeat());
      }
      if (index_.NeedsSnapshot(ask.edge_id)) AskLocked(ask.edge_id, edge, now, asks);
    }
    SendAsks(asks);
  }

  // --- Publishes and commands.

  // Sends the same bytes on every subject; Unavailable on the first failure.
  absl::Status PublishAll(const std::vector<std::string>& subjects, const std::string& payload) {
    for (const std::string& subject : subjects) {
      absl::Status status = bus.Publish(subject, payload);
      if (!status.ok()) {
        return absl::UnavailableError(
            absl::StrCat("publish on ", subject, " failed: ", status.message()));
      }
    }
    return absl::OkStatus();
  }

  void Publish(const v1::PublishRequest& request, Broker::PublishDone done) {
    if (absl::Status status = ValidatePublish(request, options.max_ack_timeout_ms); !status.ok()) {
      done(status);
      return;
    }
    if (!bus.connected()) {
      done(absl::UnavailableError("the bus is not connected"));
      return;
    }
    const v1::Target& target = request.target();
    const std::string nsp = NormalizeNamespace(target.namespace_());
    const bool with_acks = request.ack_timeout_ms() > 0;
    const std::string id = NextId();

    v1::EdgeMessage message;
    v1::Delivery* delivery = message.mutable_delivery();
    delivery->set_id(id);
    *delivery->mutable_target() = target;
    delivery->mutable_target()->set_namespace_(nsp);
    delivery->set_event(request.event());
    *delivery->mutable_args() = request.args();
    delivery->set_volatile_(request.volatile_());
    delivery->set_published_unix_nanos(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                           std::chrono::system_clock::now().time_since_epoch())
                                           .count());
    if (with_acks) {
      delivery->set_ack_timeout_ms(request.ack_timeout_ms());
      delivery->set_ack_subject(ack_subject);
    }
    const std::string payload = message.SerializeAsString();
    // Over the bus's limit no edge would get it: refused as a whole.
    if (const uint64_t limit = bus.max_payload(); limit != 0 && payload.size() > limit) {
      done(absl::InvalidArgumentError(absl::StrCat("the message is ", payload.size(),
                                                   " bytes on the bus, over its max_payload of ",
                                                   limit, " bytes (nats-server max_payload)")));
      return;
    }
    const std::vector<std::string> subjects =
        TargetSubjects(nsp, target.rooms(), target.socket_ids(), target.user_ids());

    uint64_t recipients = 0;
    bool waiting = false;
    {
      std::lock_guard lock(mu_);
      std::set<std::string> edges;
      recipients = CountRecipientsLocked(target, nsp, with_acks ? &edges : nullptr);
      if (with_acks && !edges.empty()) {
        // Registered before publishing: an inline bus may report at once.
        PendingAck& pending = acks_[id];
        pending.expected = std::move(edges);
        pending.deadline =
            Clock::now() + std::chrono::milliseconds(request.ack_timeout_ms()) + options.ack_grace;
        pending.done = std::move(done);
        ack_deadlines_.insert({pending.deadline, id});
        waiting = true;
      }
    }
    if (waiting) cv_.notify_all();

    absl::Status status = PublishAll(subjects, payload);
    if (waiting) {
      if (status.ok()) return;  // completes from OnAck or the ticker
      {
        std::lock_guard lock(mu_);
        auto it = acks_.find(id);
        if (it == acks_.end()) return;  // already completed by reports
        done = std::move(it->second.done);
        ack_deadlines_.erase({it->second.deadline, id});
        acks_.erase(it);
      }
      done(status);
      return;
    }
    if (!status.ok()) {
      done(status);
      return;
    }
    v1::PublishResponse response;
    // With acks but no edge holding a recipient, nobody will report.
    response.set_recipients(with_acks ? 0 : recipients);
    done(std::move(response));
  }

  // Index count of the sockets the target matches; `edges` (when given) gets
  // the edges holding at least one of them.
  uint64_t CountRecipientsLocked(const v1::Target& target, const std::string& nsp,
                                 std::set<std::string>* edges) const {
    absl::flat_hash_set<std::string> excluded(target.except_socket_ids().begin(),
                                              target.except_socket_ids().end());
    if (!target.except_rooms().empty()) {
      Selector except;
      except.nsp = nsp;
      except.rooms.assign(target.except_rooms().begin(), target.except_rooms().end());
      for (const EdgeTargets& hit : index_.Resolve(except)) {
        excluded.insert(hit.socket_ids.begin(), hit.socket_ids.end());
      }
    }
    // Counted without listing the ids: this runs for every publish.
    return index_.Count(IndexSelector(nsp, target.rooms(), target.socket_ids(), target.user_ids()),
                        excluded, edges);
  }

  // Sends `command` (its action set) to the sockets `selector` matches;
  // returns the number the index matched.
  absl::StatusOr<uint64_t> SendCommand(const v1::Selector& selector, v1::Command command) {
    if (absl::Status status = ValidateSelector(selector); !status.ok()) return status;
    if (!bus.connected()) return absl::UnavailableError("the bus is not connected");
    const std::string nsp = NormalizeNamespace(selector.namespace_());
    command.set_id(NextId());
    *command.mutable_selector() = selector;
    command.mutable_selector()->set_namespace_(nsp);
    v1::EdgeMessage message;
    *message.mutable_command() = std::move(command);
    // all_sockets has no other criterion: TargetSubjects picks the namespace.
    const std::vector<std::string> subjects =
        TargetSubjects(nsp, selector.rooms(), selector.socket_ids(), selector.user_ids());

    uint64_t matched = 0;
    {
      std::lock_guard lock(mu_);
      for (const EdgeTargets& hit : index_.Resolve(
               IndexSelector(nsp, selector.rooms(), selector.socket_ids(), selector.user_ids()))) {
        matched += hit.socket_ids.size();
      }
    }
    if (absl::Status status = PublishAll(subjects, message.SerializeAsString()); !status.ok()) {
      return status;
    }
    return matched;
  }

  // --- Queries.

  v1::GetStatsResponse GetStats() {
    v1::GetStatsResponse response;
    response.set_broker_id(options.broker_id);
    response.mutable_forward()->set_watch_dropped(watch_dropped());
    response.mutable_watch()->set_dropped(counters.watch_dropped.load(std::memory_order_relaxed));
    response.mutable_watch()->set_acks_failed(
        counters.watch_acks_failed.load(std::memory_order_relaxed));
    std::lock_guard lock(mu_);
    Stats stats = index_.GetStats();
    v1::Counts* totals = response.mutable_totals();
    totals->set_sockets(stats.sockets);
    totals->set_users(stats.users);
    totals->set_rooms(stats.rooms);
    std::map<std::string, std::pair<uint64_t, uint64_t>> nsp_messages;  // in, out
    for (const EdgeStats& edge_stats : stats.per_edge) {
      v1::EdgeStats* out = response.add_edges();
      out->set_edge_id(edge_stats.edge_id);
      out->set_last_seq(edge_stats.last_seq);
      v1::Counts* counts = out->mutable_counts();
      auto it = edges_.find(edge_stats.edge_id);
      if (it != edges_.end()) {
        const EdgeState& edge = it->second;
        // The index counts sockets; per-edge users and rooms and the message
        // counters only the edge knows: its last heartbeat's.
        *counts = edge.counts;
        *out->mutable_forward() = edge.forward;
        v1::ForwardStats* sum = response.mutable_forward();
        sum->set_forwarded(sum->forwarded() + edge.forward.forwarded());
        sum->set_dropped(sum->dropped() + edge.forward.dropped());
        sum->set_acks_answered(sum->acks_answered() + edge.forward.acks_answered());
        sum->set_acks_timed_out(sum->acks_timed_out() + edge.forward.acks_timed_out());
        sum->set_acks_pending(sum->acks_pending() + edge.forward.acks_pending());
        if (edge.last_heartbeat) proto::ToTimestamp(*edge.last_heartbeat, out->mutable_last_heartbeat());
        for (const auto& [name, nsp_counts] : edge.nsp_counts) {
          auto& [in, sent] = nsp_messages[name];
          in += nsp_counts.messages_in();
          sent += nsp_counts.messages_out();
        }
      }
      counts->set_sockets(edge_stats.sockets);
      totals->set_messages_in(totals->messages_in() + counts->messages_in());
      totals->set_messages_out(totals->messages_out() + counts->messages_out());
    }
    for (const NamespaceStats& nsp_stats : stats.per_namespace) {
      v1::NamespaceStats* out = response.add_namespaces();
      out->set_namespace_(nsp_stats.nsp);
      v1::Counts* counts = out->mutable_counts();
      counts->set_sockets(nsp_stats.sockets);
      counts->set_users(nsp_stats.users);
      counts->set_rooms(nsp_stats.rooms);
      if (auto it = nsp_messages.find(nsp_stats.nsp); it != nsp_messages.end()) {
        counts->set_messages_in(it->second.first);
        counts->set_messages_out(it->second.second);
      }
    }
    return response;
  }

  v1::ListEdgesResponse ListEdges() {
    v1::ListEdgesResponse response;
    response.set_broker_id(options.broker_id);
    std::lock_guard lock(mu_);
    PruneLostLocked(std::chrono::system_clock::now());
    std::map<std::string, v1::EdgeInfo> out;  // live and lost merged, by id
    for (const EdgeStats& edge_stats : index_.GetStats().per_edge) {
      v1::EdgeInfo& info = out[edge_stats.edge_id];
      info.set_edge_id(edge_stats.edge_id);
      info.set_sockets(edge_stats.sockets);
      info.set_state(v1::EDGE_STATE_READY);
      auto it = edges_.find(edge_stats.edge_id);
      if (it == edges_.end()) continue;
      const EdgeState& edge = it->second;
      if (edge.draining) info.set_state(v1::EDGE_STATE_DRAINING);
      info.set_version(edge.version);
      info.set_incarnation(edge.incarnation);
      if (edge.started_at) proto::ToTimestamp(*edge.started_at, info.mutable_started_at());
      if (edge.last_heartbeat) {
        proto::ToTimestamp(*edge.last_heartbeat, info.mutable_last_heartbeat());
      }
    }
    for (const auto& [id, lost] : lost_) {
      auto [slot, fresh] = out.try_emplace(id);
      if (!fresh) continue;  // live again
      v1::EdgeInfo& info = slot->second;
      info.set_edge_id(id);
      info.set_state(v1::EDGE_STATE_LOST);
      info.set_sockets(lost.sockets);
      info.set_version(lost.version);
      info.set_incarnation(lost.incarnation);
      if (lost.started_at) proto::ToTimestamp(*lost.started_at, info.mutable_started_at());
      if (lost.last_heartbeat) {
        proto::ToTimestamp(*lost.last_heartbeat, info.mutable_last_heartbeat());
      }
      proto::ToTimestamp(lost.lost_at, info.mutable_lost_at());
    }
    for (auto& [id, info] : out) *response.add_edges() = std::move(info);
    return response;
  }

  absl::StatusOr<v1::ListSocketsResponse> ListSockets(const v1::ListSocketsRequest& request) {
    if (!request.room().empty() && request.namespace_().empty()) {
      return absl::InvalidArgumentError("a room filter requires a namespace");
    }
    ListSocketsRequest query;
    query.nsp = request.namespace_();
    query.room = request.room();
    query.user = request.user_id();
    query.page_size = PageSize(request.page_size());
    query.page_token = request.page_token();
    absl::StatusOr<ListSocketsResponse> page;
    {
      std::lock_guard lock(mu_);
      page = index_.ListSockets(query);
    }
    if (!page.ok()) return page.status();
    v1::ListSocketsResponse response;
    for (const SocketInfo& socket : page->sockets) ToProto(socket, response.add_sockets());
    response.set_next_page_token(page->next_page_token);
    return response;
  }

  absl::StatusOr<v1::ListRoomsResponse> ListRooms(const v1::ListRoomsRequest& request) {
    ListRoomsRequest query;
    query.nsp = request.namespace_();
    query.prefix = request.prefix();
    query.page_size = PageSize(request.page_size());
    query.page_token = request.page_token();
    absl::StatusOr<ListRoomsResponse> page;
    {
      std::lock_guard lock(mu_);
      page = index_.ListRooms(query);
    }
    if (!page.ok()) return page.status();
    v1::ListRoomsResponse response;
    for (const RoomInfo& room : page->rooms) {
      v1::RoomInfo* out = response.add_rooms();
      out->set_namespace_(room.nsp);
      out->set_name(room.room);
      out->set_members(room.members);
    }
    response.set_next_page_token(page->next_page_token);
    return response;
  }

  absl::StatusOr<v1::GetPresenceResponse> GetPresence(const v1::GetPresenceRequest& request) {
    if (request.user_id().empty()) return absl::InvalidArgumentError("user_id must not be empty");
    Presence presence;
    {
      std::lock_guard lock(mu_);
      presence = index_.GetPresence(request.user_id());
    }
    v1::GetPresenceResponse response;
    for (const SocketInfo& socket : presence.sockets) {
      if (!request.namespace_().empty() && socket.nsp != request.namespace_()) continue;
      ToProto(socket, response.add_sockets());
    }
    response.set_online(response.sockets_size() > 0);
    return response;
  }

  // --- Watchers.

  absl::StatusOr<std::shared_ptr<Watcher>> AddWatcher(const v1::WatchEventsRequest& request,
                                                      Broker::WatchEvent on_event,
                                                      std::function<void()> on_closed) {
    if (!on_event) return absl::InvalidArgumentError("on_event must be set");
    auto watcher = std::make_shared<Watcher>();
    if (!request.namespace_().empty()) watcher->nsps.insert(request.namespace_());
    for (const std::string& nsp : request.namespaces()) {
      if (nsp.empty()) return absl::InvalidArgumentError("namespaces: empty name");
      watcher->nsps.insert(nsp);
    }
    for (const std::string& event : request.events()) {
      if (event.empty()) return absl::InvalidArgumentError("events: empty name");
      watcher->events.insert(event);
    }
    for (int kind : request.kinds()) {
      if (kind <= v1::EVENT_KIND_UNSPECIFIED || kind > v1::EVENT_KIND_CLIENT_EVENT) {
        return absl::InvalidArgumentError(absl::StrCat("unknown event kind ", kind));
      }
      watcher->kinds |= 1u << static_cast<unsigned>(kind);
    }
    watcher->group = request.queue_group();
    if (!watcher->group.empty()) {
      watcher->group_key = absl::StrCat(watcher->group, "\n", watcher->kinds, "\n",
                                        absl::StrJoin(watcher->nsps, "\n"), "\n\n",
                                        absl::StrJoin(watcher->events, "\n"));
    }
    watcher->on_event = std::move(on_event);
    watcher->on_closed = std::move(on_closed);

    std::lock_guard forward_lock(forward_mu_);
    {
      std::lock_guard lock(watch_mu_);
      if (watch_closed_) return absl::UnavailableError("the broker is shutting down");
      watchers_.push_back(watcher);
      watcher_count_.store(watchers_.size());
    }
    if (!watcher->group.empty()) {
      if (absl::Status s = JoinGroupLocked(watcher); !s.ok()) {
        RemoveWatcher(watcher.get());
        return s;
      }
      return watcher;
    }
    if (watcher->WantsKind(v1::EVENT_KIND_CLIENT_EVENT) && forward_sub_ == nullptr) {
      // Forwarded events are only listened to while someone watches them.
      auto sub =
          bus.Subscribe(bus::kAllForwarded, [this](bus::Message message) { OnForwarded(message); });
      if (!sub.ok()) {
        RemoveWatcher(watcher.get());
        return sub.status();
      }
      forward_sub_ = std::move(*sub);
    }
    return watcher;
  }

  // With forward_mu_ held: adds a grouped watcher to its GroupSub, making the
  // group's queue subscriptions when it is the first member here.
  absl::Status JoinGroupLocked(const std::shared_ptr<Watcher>& watcher) {
    {
      std::lock_guard lock(watch_mu_);
      auto it = groups_.find(watcher->group_key);
      if (it != groups_.end()) {
        it->second->members.push_back(watcher);
        return absl::OkStatus();
      }
    }
    auto group = std::make_shared<GroupSub>();
    group->members.push_back(watcher);
    const std::string queue = absl::StrCat("sbw.", bus::NameToken(watcher->group));
    std::weak_ptr<GroupSub> weak = group;
    if (watcher->WantsKind(v1::EVENT_KIND_CLIENT_EVENT)) {
      for (const std::string& pattern : watcher->ForwardPatterns()) {
        auto sub = bus.Subscribe(
            pattern,
            [this, weak](bus::Message message) {
              v1::ForwardedEvent forwarded;
              if (!forwarded.ParseFromString(message.payload)) return;
              GroupDeliver(weak, ForwardedItem(forwarded));
            },
            queue);
        if (!sub.ok()) return sub.status();
        group->subs.push_back(std::move(*sub));
      }
    }
    if (watcher->WantsLifecycle()) {
      auto sub = bus.Subscribe(
          bus::kAllMembership,
          [this, weak](bus::Message message) {
            v1::MembershipEvent event;
            if (!event.ParseFromString(message.payload)) return;
            if (auto item = ToWatchItem(event)) GroupDeliver(weak, *item);
          },
          queue);
      if (!sub.ok()) return sub.status();
      group->subs.push_back(std::move(*sub));
    }
    std::lock_guard lock(watch_mu_);
    groups_[watcher->group_key] = std::move(group);
    return absl::OkStatus();
  }

  // Hands an event of a group subscription to one member that wants it. With
  // no member left for it (the subscription lasts until a tick), it is
  // dropped and counted; its client ack is left alone, as another queue group
  // may answer it. Members share one filter, so an event none of them wants
  // was merely filtered out.
  void GroupDeliver(const std::weak_ptr<GroupSub>& weak, const WatchItem& item) {
    std::shared_ptr<Watcher> target;
    bool filtered = false;
    {
      std::lock_guard lock(watch_mu_);
      std::shared_ptr<GroupSub> group = weak.lock();
      if (group != nullptr) {
        for (size_t i = 0; i < group->members.size() && target == nullptr; ++i) {
          const auto& member = group->members[(group->next + i) % group->members.size()];
          if (member->Wants(item)) {
            target = member;
            group->next = (group->next + i + 1) % group->members.size();
          }
        }
        filtered = target == nullptr && !group->members.empty();
      }
    }
    if (filtered) return;
    if (target != nullptr) {
      std::lock_guard lock(target->mu);
      if (target->active) {
        target->on_event(item.response);
        return;
      }
    }
    WatchDropped(item.response, /*owns_acks=*/false, "watcher gone");
  }

  // See Broker::WatchDropped.
  void WatchDropped(const v1::WatchEventsResponse& event, bool owns_acks, std::string_view error) {
    counters.watch_dropped.fetch_add(1, std::memory_order_relaxed);
    if (!event.has_client_event()) return;
    watch_dropped_.fetch_add(1, std::memory_order_relaxed);
    const v1::ClientEvent& client_event = event.client_event();
    if (!owns_acks || client_event.ack_ref().empty()) return;
    // "<edge-id>.<nonce>.<n>": the edge answers the client (at most once).
    const std::string& ref = client_event.ack_ref();
    const std::string edge = ref.substr(0, ref.find('.'));
    if (!bus::ValidNodeId(edge) || !bus.connected()) return;
    v1::ForwardAck message;
    message.set_ack_ref(ref);
    message.mutable_reply()->set_error(std::string(error));
    counters.watch_acks_failed.fetch_add(1, std::memory_order_relaxed);
    SendForwardAck(edge, message, [](absl::Status) {});
  }

  // Asks `edge` (sb.v1.fack.<edge>) to answer a client's ack; `done` gets OK
  // once the edge confirms it did (Broker::Ack's statuses otherwise).
  void SendForwardAck(const std::string& edge, const v1::ForwardAck& message,
                      Broker::AckDone done) {
    const std::string& ref = message.ack_ref();
    bus.Request(
        bus::ForwardAckSubject(edge), message.SerializeAsString(), options.forward_ack_timeout,
        [done = std::move(done), ref, edge](absl::StatusOr<bus::Message> reply) {
          if (!reply.ok()) {
            if (absl::IsNotFound(reply.status())) {
              done(absl::NotFoundError(absl::StrCat("ack_ref ", ref, ": edge ", edge, " is gone")));
            } else {
              done(absl::UnavailableError(
                  absl::StrCat("ack_ref ", ref, ": edge ", edge,
                               " did not confirm: ", reply.status().message())));
            }
            return;
          }
          v1::ForwardAckResult result;
          if (!result.ParseFromString(reply->payload)) {
            done(absl::UnavailableError(absl::StrCat("ack_ref ", ref, ": malformed confirmation")));
          } else if (!result.delivered()) {
            done(absl::NotFoundError(
                absl::StrCat("ack_ref ", ref, " is unknown, already answered or timed out")));
          } else {
            done(absl::OkStatus());
          }
        });
  }

  void RemoveWatcher(const Watcher* watcher) {
    std::lock_guard lock(watch_mu_);
    std::erase_if(watchers_, [&](const auto& w) { return w.get() == watcher; });
    watcher_count_.store(watchers_.size());
    if (!watcher->group_key.empty()) {
      auto it = groups_.find(watcher->group_key);
      if (it != groups_.end()) {
        std::erase_if(it->second->members, [&](const auto& w) { return w.get() == watcher; });
      }
    }
  }

  uint64_t watch_dropped() const { return watch_dropped_.load(std::memory_order_relaxed); }

  void Fanout(const WatchItem& item) {
    std::vector<std::shared_ptr<Watcher>> targets;
    {
      std::lock_guard lock(watch_mu_);
      for (const auto& watcher : watchers_) {
        if (watcher->group.empty() && watcher->Wants(item)) targets.push_back(watcher);
      }
    }
    for (const auto& watcher : targets) {
      std::lock_guard lock(watcher->mu);
      if (watcher->active) watcher->on_event(item.response);
    }
  }

  // Called by the ticker, not by Watch handles: unsubscribing waits for a
  // running handler, which may be blocked on the very watcher being dropped.
  void MaybeDropForwardSubscription() {
    bus::SubscriptionPtr doomed;
    std::vector<std::shared_ptr<GroupSub>> empty_groups;
    {
      std::lock_guard forward_lock(forward_mu_);
      std::lock_guard lock(watch_mu_);
      for (auto it = groups_.begin(); it != groups_.end();) {
        if (it->second->members.empty()) {
          empty_groups.push_back(std::move(it->second));
          it = groups_.erase(it);
        } else {
          ++it;
        }
      }
      bool wanted = std::any_of(watchers_.begin(), watchers_.end(), [](const auto& w) {
        return w->group.empty() && w->WantsKind(v1::EVENT_KIND_CLIENT_EVENT);
      });
      if (!wanted && forward_sub_ != nullptr) doomed = std::move(forward_sub_);
    }
    if (doomed) doomed->Unsubscribe();
    for (const auto& group : empty_groups) {
      for (auto& sub : group->subs) sub->Unsubscribe();
    }
  }

  // --- Lifetime.

  absl::Status Subscribe() {
    auto subscribe = [&](std::string_view subject,
                         void (Core::*handler)(const bus::Message&)) -> absl::Status {
      auto sub = bus.Subscribe(
          subject, [this, handler](bus::Message message) { (this->*handler)(message); });
      if (!sub.ok()) return sub.status();
      subs_.push_back(std::move(*sub));
      return absl::OkStatus();
    };
    if (absl::Status s = subscribe(ack_subject, &Core::OnAck); !s.ok()) return s;
    if (absl::Status s = subscribe(bus::kAllMembership, &Core::OnMembership); !s.ok()) return s;
    if (absl::Status s = subscribe(bus::kAllHeartbeats, &Core::OnHeartbeat); !s.ok()) return s;
    ticker_ = std::thread([this] { Run(); });
    return absl::OkStatus();
  }

  void Shutdown() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (ticker_.joinable()) ticker_.join();
    // Waits for running handlers; none starts afterwards.
    for (auto& sub : subs_) sub->Unsubscribe();
    subs_.clear();
    bus::SubscriptionPtr forward;
    {
      std::lock_guard lock(forward_mu_);
      forward = std::move(forward_sub_);
    }
    if (forward) forward->Unsubscribe();
    std::map<std::string, std::shared_ptr<GroupSub>> groups;
    {
      std::lock_guard forward_lock(forward_mu_);
      std::lock_guard lock(watch_mu_);
      groups.swap(groups_);
    }
    for (auto& [key, group] : groups) {
      for (auto& sub : group->subs) sub->Unsubscribe();
    }

    std::map<std::string, PendingAck> pending;
    {
      std::unique_lock lock(mu_);
      // A snapshot callback past its check may still use the bus: wait.
      cv_.wait(lock, [&] { return callbacks_running_ == 0; });
      pending = std::move(acks_);
      acks_.clear();
      ack_deadlines_.clear();
    }
    for (auto& [id, ack] : pending) ack.done(std::move(ack.response));

    std::vector<std::shared_ptr<Watcher>> watchers;
    {
      std::lock_guard lock(watch_mu_);
      watch_closed_ = true;
      watchers.swap(watchers_);
      watcher_count_.store(0);
    }
    for (const auto& watcher : watchers) {
      std::lock_guard lock(watcher->mu);
      if (!watcher->active) continue;
      watcher->active = false;
      if (watcher->on_closed) watcher->on_closed();
    }
  }

 private:
  bool EnterCallback() {
    std::lock_guard lock(mu_);
    if (stopping_) return false;
    ++callbacks_running_;
    return true;
  }
  void ExitCallback() {
    {
      std::lock_guard lock(mu_);
      --callbacks_running_;
    }
    cv_.notify_all();
  }

  // The edge's state; a new incarnation starts it afresh (the old process's
  // sockets are gone and its seq starts again).
  EdgeState& EdgeLocked(const std::string& edge_id, const std::string& incarnation) {
    auto [it, created] = edges_.try_emplace(edge_id);
    EdgeState& edge = it->second;
    if (created) {
      lost_.erase(edge_id);  // back
      edge.incarnation = incarnation;
    } else if (edge.incarnation != incarnation) {
      index_.ForgetEdge(edge_id);
      edge = EdgeState{};
      edge.incarnation = incarnation;
    }
    return edge;
  }

  static void KeepIdentityLocked(EdgeState& edge, const v1::Heartbeat& heartbeat) {
    edge.version = heartbeat.version();
    if (heartbeat.has_started_at()) edge.started_at = proto::FromTimestamp(heartbeat.started_at());
    // Sticky: a drain is never undone, and a reordered heartbeat must not
    // make the edge look ready again.
    edge.draining = edge.draining || heartbeat.draining();
  }

  // Lost edges past the retention, then the oldest beyond the bound.
  void PruneLostLocked(WallTime now) {
    std::erase_if(lost_, [&](const auto& entry) {
      return now - entry.second.lost_at > options.lost_edge_retention;
    });
    while (lost_.size() > options.max_lost_edges) {
      auto oldest = std::min_element(lost_.begin(), lost_.end(), [](const auto& a, const auto& b) {
        return a.second.lost_at < b.second.lost_at;
      });
      lost_.erase(oldest);
    }
  }

  static void KeepCountsLocked(EdgeState& edge, const v1::Heartbeat& heartbeat) {
    edge.counts = heartbeat.totals();
    edge.nsp_counts.clear();
    for (const v1::NamespaceCounts& nsp : heartbeat.namespaces()) {
      edge.nsp_counts[nsp.namespace_()] = nsp.counts();
    }
  }

  std::atomic<uint64_t> next_message_{0};

  std::mutex mu_;               // the index and everything below up to watch_mu_
  std::condition_variable cv_;  // ticker wake-ups; callbacks_running_ reaching 0
  Index index_;
  std::map<std::string, EdgeState> edges_;
  std::map<std::string, LostEdge> lost_;  // by edge id; never also in edges_
  uint64_t next_snapshot_request_ = 0;
  std::map<std::string, PendingAck> acks_;  // by delivery id
  std::set<std::pair<Clock::time_point, std::string>> ack_deadlines_;
  bool stopping_ = false;
  int callbacks_running_ = 0;

  std::mutex watch_mu_;  // after forward_mu_ when both are held
  std::vector<std::shared_ptr<Watcher>> watchers_;
  std::atomic<size_t> watcher_count_{0};
  bool watch_closed_ = false;

  std::map<std::string, std::shared_ptr<GroupSub>> groups_;  // by group key; under watch_mu_
  std::atomic<uint64_t> watch_dropped_{0};

  std::mutex forward_mu_;
  bus::SubscriptionPtr forward_sub_;

  std::vector<bus::SubscriptionPtr> subs_;  // ack, membership, heartbeat
  std::thread ticker_;
};

namespace {

class WatchHandle : public Broker::Watch {
 public:
  WatchHandle(std::shared_ptr<Watcher> watcher, std::weak_ptr<Core> core)
      : watcher_(std::move(watcher)), core_(std::move(core)) {}
  ~WatchHandle() override {
    {
      // Waits for a call running on another thread; none starts afterwards.
      std::lock_guard lock(watcher_->mu);
      watcher_->active = false;
    }
    if (auto core = core_.lock()) core->RemoveWatcher(watcher_.get());
  }

 private:
  std::shared_ptr<Watcher> watcher_;
  std::weak_ptr<Core> core_;
};

}  // namespace
}  // namespace broker_internal

struct Broker::State {
  std::shared_ptr<broker_internal::Core> core;
};

Broker::Broker(std::unique_ptr<State> state) : state_(std::move(state)) {}

Broker::~Broker() { state_->core->Shutdown(); }

absl::StatusOr<std::unique_ptr<Broker>> Broker::Start(bus::Bus& bus, BrokerOptions options) {
  if (options.broker_id.empty()) {
    options.broker_id = bus::RandomNodeId();
  } else if (!bus::ValidNodeId(options.broker_id)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid broker id \"",
                                                   absl::CHexEscape(options.broker_id),
                                                   "\": 1..64 characters of [A-Za-z0-9_-]"));
  }
  if (options.tick <= std::chrono::milliseconds::zero() ||
      options.edge_timeout <= std::chrono::milliseconds::zero() ||
      options.snapshot_timeout <= std::chrono::milliseconds::zero()) {
    return absl::InvalidArgumentError("tick, edge_timeout and snapshot_timeout must be positive");
  }
  auto core = std::make_shared<broker_internal::Core>(bus, std::move(options));
  if (absl::Status status = core->Subscribe(); !status.ok()) {
    core->Shutdown();
    return status;
  }
  auto state = std::make_unique<State>();
  state->core = std::move(core);
  return std::unique_ptr<Broker>(new Broker(std::move(state)));
}

const std::string& Broker::id() const { return state_->core->options.broker_id; }

bool Broker::bus_connected() const { return state_->core->bus.connected(); }

Broker::Counters Broker::counters() const {
  const auto& c = state_->core->counters;
  return {c.gaps.load(std::memory_order_relaxed),
          c.snapshot_requests.load(std::memory_order_relaxed),
          c.edges_expired.load(std::memory_order_relaxed),
          c.watch_dropped.load(std::memory_order_relaxed),
          c.watch_acks_failed.load(std::memory_order_relaxed)};
}

void Broker::Publish(const v1::PublishRequest& request, PublishDone done) {
  state_->core->Publish(request, std::move(done));
}

absl::StatusOr<v1::JoinRoomsResponse> Broker::JoinRooms(const v1::JoinRoomsRequest& request) {
  if (request.rooms().empty()) return absl::InvalidArgumentError("rooms must not be empty");
  v1::Command command;
  command.mutable_join()->mutable_rooms()->CopyFrom(request.rooms());
  auto matched = state_->core->SendCommand(request.selector(), std::move(command));
  if (!matched.ok()) return matched.status();
  v1::JoinRoomsResponse response;
  response.set_matched_sockets(*matched);
  return response;
}

absl::StatusOr<v1::LeaveRoomsResponse> Broker::LeaveRooms(const v1::LeaveRoomsRequest& request) {
  if (request.rooms().empty()) return absl::InvalidArgumentError("rooms must not be empty");
  v1::Command command;
  command.mutable_leave()->mutable_rooms()->CopyFrom(request.rooms());
  auto matched = state_->core->SendCommand(request.selector(), std::move(command));
  if (!matched.ok()) return matched.status();
  v1::LeaveRoomsResponse response;
  response.set_matched_sockets(*matched);
  return response;
}

absl::StatusOr<v1::DisconnectSocketsResponse> Broker::DisconnectSockets(
    const v1::DisconnectSocketsRequest& request) {
  v1::Command command;
  command.set_disconnect_close(request.close());
  auto matched = state_->core->SendCommand(request.selector(), std::move(command));
  if (!matched.ok()) return matched.status();
  v1::DisconnectSocketsResponse response;
  response.set_matched_sockets(*matched);
  return response;
}

absl::StatusOr<v1::GetStatsResponse> Broker::GetStats(const v1::GetStatsRequest&) {
  return state_->core->GetStats();
}

absl::StatusOr<v1::ListEdgesResponse> Broker::ListEdges(const v1::ListEdgesRequest&) {
  return state_->core->ListEdges();
}

absl::StatusOr<v1::ListSocketsResponse> Broker::ListSockets(const v1::ListSocketsRequest& request) {
  return state_->core->ListSockets(request);
}

absl::StatusOr<v1::ListRoomsResponse> Broker::ListRooms(const v1::ListRoomsRequest& request) {
  return state_->core->ListRooms(request);
}

absl::StatusOr<v1::GetPresenceResponse> Broker::GetPresence(const v1::GetPresenceRequest& request) {
  return state_->core->GetPresence(request);
}

void Broker::Ack(const v1::AckRequest& request, AckDone done) {
  // "<edge-id>.<nonce>.<n>"
  const std::string& ref = request.ack_ref();
  std::vector<absl::string_view> parts = absl::StrSplit(ref, '.');
  if (parts.size() != 3 || !bus::ValidNodeId(std::string_view(parts[0].data(), parts[0].size())) ||
      parts[1].empty() || parts[2].empty() ||
      !std::all_of(parts[2].begin(), parts[2].end(), [](char c) { return c >= '0' && c <= '9'; })) {
    done(absl::InvalidArgumentError(
        absl::StrCat("malformed ack_ref \"", absl::CHexEscape(ref), "\"")));
    return;
  }
  for (int i = 0; i < request.args_size(); ++i) {
    const v1::Argument& arg = request.args(i);
    if (arg.value_case() == v1::Argument::VALUE_NOT_SET) {
      done(absl::InvalidArgumentError(
          absl::StrCat("args[", i, "] has no value: set json or binary")));
      return;
    }
    if (arg.has_json() && !nlohmann::json::accept(arg.json())) {
      done(absl::InvalidArgumentError(absl::StrCat("args[", i, "].json is not valid JSON")));
      return;
    }
  }
  broker_internal::Core& core = *state_->core;
  if (!core.bus.connected()) {
    done(absl::UnavailableError("the bus is not connected"));
    return;
  }
  v1::ForwardAck message;
  message.set_ack_ref(ref);
  *message.mutable_reply()->mutable_args() = request.args();
  message.mutable_reply()->set_error(request.error());
  core.SendForwardAck(std::string(parts[0].data(), parts[0].size()), message, std::move(done));
}

void Broker::WatchDropped(const v1::WatchEventsResponse& event, bool owns_acks,
                          std::string_view error) {
  state_->core->WatchDropped(event, owns_acks, error);
}

absl::StatusOr<std::unique_ptr<Broker::Watch>> Broker::StartWatch(
    const v1::WatchEventsRequest& request, WatchEvent on_event, std::function<void()> on_closed) {
  auto watcher = state_->core->AddWatcher(request, std::move(on_event), std::move(on_closed));
  if (!watcher.ok()) return watcher.status();
  return std::make_unique<broker_internal::WatchHandle>(std::move(*watcher), state_->core);
}

}  // namespace switchboard::broker
