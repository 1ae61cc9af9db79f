#include "broker/watchers.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "broker/acks.h"
#include "broker/validation.h"
#include "bus/routing.h"
#include "proto/convert.h"

namespace switchboard::broker {
namespace {

// SocketDisconnected.reason of the sockets of an edge the broker gave up on.
constexpr std::string_view kEdgeTimeoutReason = "edge timeout";

WatchItem ForwardedItem(const v1::ForwardedEvent& forwarded) {
  WatchItem item;
  item.response.set_edge_id(forwarded.edge_id());
  *item.response.mutable_time() = forwarded.time();
  *item.response.mutable_client_event() = forwarded.event();
  item.kind = v1::EVENT_KIND_CLIENT_EVENT;
  item.nsp = forwarded.event().namespace_();
  return item;
}

}  // namespace

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
    default: return std::nullopt;
  }
  return item;
}

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
  bool active ABSL_GUARDED_BY(mu) = true;

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
    std::vector<std::string> out;
    if (nsps.empty()) {
      if (events.empty()) return {std::string(bus::kAllForwarded)};
      for (const std::string& event : events) out.push_back(bus::ForwardEventPattern(event));
      return out;
    }
    for (const std::string& nsp : nsps) {
      if (events.empty()) {
        out.push_back(bus::ForwardNamespacePattern(nsp));
      } else {
        for (const std::string& event : events) out.push_back(bus::ForwardSubject(nsp, event));
      }
    }
    return out;
  }
  // Calls on_event unless the handle is gone; false when it is.
  bool Deliver(const v1::WatchEventsResponse& response) {
    std::lock_guard lock(mu);
    if (!active) return false;
    on_event(response);
    return true;
  }
};

// The bus subscriptions of one queue group of watchers (with one filter) on
// this broker, in the group's NATS queue group, so that each event reaches
// one broker holding members, which hands it to one member.
struct GroupSub {
  std::vector<std::shared_ptr<Watcher>> members;
  size_t next = 0;  // round robin
  std::vector<bus::SubscriptionPtr> subs;
};

namespace {

class WatchHandle : public Broker::Watch {
 public:
  WatchHandle(std::shared_ptr<Watcher> watcher, std::weak_ptr<Watchers> watchers)
      : watcher_(std::move(watcher)), watchers_(std::move(watchers)) {}
  ~WatchHandle() override {
    {
      // Waits for a call running on another thread; none starts afterwards.
      std::lock_guard lock(watcher_->mu);
      watcher_->active = false;
    }
    if (auto watchers = watchers_.lock()) watchers->Remove(watcher_.get());
  }

 private:
  std::shared_ptr<Watcher> watcher_;
  std::weak_ptr<Watchers> watchers_;
};

// The watcher a request describes; InvalidArgument for a bad filter.
absl::StatusOr<std::shared_ptr<Watcher>> MakeWatcher(const v1::WatchEventsRequest& request) {
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
    watcher->group_key =
        absl::StrCat(watcher->group, "\n", watcher->kinds, "\n", absl::StrJoin(watcher->nsps, "\n"),
                     "\n\n", absl::StrJoin(watcher->events, "\n"));
  }
  return watcher;
}

}  // namespace

Watchers::Watchers(bus::Bus& bus, const BrokerOptions& options, BrokerCounters& counters)
    : bus_(bus), options_(options), counters_(counters) {}

Watchers::~Watchers() = default;

absl::StatusOr<std::unique_ptr<Broker::Watch>> Watchers::Start(
    const v1::WatchEventsRequest& request, Broker::WatchEvent on_event,
    std::function<void()> on_closed) {
  if (!on_event) return absl::InvalidArgumentError("on_event must be set");
  absl::StatusOr<std::shared_ptr<Watcher>> made = MakeWatcher(request);
  if (!made.ok()) return made.status();
  std::shared_ptr<Watcher> watcher = std::move(*made);
  watcher->on_event = std::move(on_event);
  watcher->on_closed = std::move(on_closed);
  auto handle = [&] {
    return std::unique_ptr<Broker::Watch>(new WatchHandle(watcher, weak_from_this()));
  };

  std::lock_guard forward_lock(forward_mu_);
  {
    std::lock_guard lock(watch_mu_);
    if (closed_) return absl::UnavailableError("the broker is shutting down");
    watchers_.push_back(watcher);
    count_.store(watchers_.size());
  }
  if (!watcher->group.empty()) {
    if (absl::Status s = JoinGroup(watcher); !s.ok()) {
      Remove(watcher.get());
      return s;
    }
    return handle();
  }
  if (watcher->WantsKind(v1::EVENT_KIND_CLIENT_EVENT) && forward_sub_ == nullptr) {
    auto sub =
        bus_.Subscribe(bus::kAllForwarded, [this](bus::Message message) { OnForwarded(message); });
    if (!sub.ok()) {
      Remove(watcher.get());
      return sub.status();
    }
    forward_sub_ = std::move(*sub);
  }
  return handle();
}

absl::Status Watchers::JoinGroup(const std::shared_ptr<Watcher>& watcher) {
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
  const std::string queue = bus::WatchQueueGroup(watcher->group);
  std::weak_ptr<GroupSub> weak = group;
  if (watcher->WantsKind(v1::EVENT_KIND_CLIENT_EVENT)) {
    for (const std::string& pattern : watcher->ForwardPatterns()) {
      auto sub = bus_.Subscribe(
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
    auto sub = bus_.Subscribe(
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

void Watchers::Remove(const Watcher* watcher) {
  std::lock_guard lock(watch_mu_);
  std::erase_if(watchers_, [&](const auto& w) { return w.get() == watcher; });
  count_.store(watchers_.size());
  if (!watcher->group_key.empty()) {
    auto it = groups_.find(watcher->group_key);
    if (it != groups_.end()) {
      std::erase_if(it->second->members, [&](const auto& w) { return w.get() == watcher; });
    }
  }
}

void Watchers::OnForwarded(const bus::Message& message) {
  v1::ForwardedEvent forwarded;
  if (!forwarded.ParseFromString(message.payload)) return;
  Fanout(ForwardedItem(forwarded));
}

void Watchers::Fanout(const WatchItem& item) {
  std::vector<std::shared_ptr<Watcher>> targets;
  {
    std::lock_guard lock(watch_mu_);
    for (const auto& watcher : watchers_) {
      if (watcher->group.empty() && watcher->Wants(item)) targets.push_back(watcher);
    }
  }
  for (const auto& watcher : targets) watcher->Deliver(item.response);
}

void Watchers::AnnounceExpired(const std::vector<SocketInfo>& sockets) {
  if (!any()) return;
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

// With no member left for it (the subscription lasts until a tick), an event
// is dropped and counted; its client ack is left alone, as another queue
// group may answer it. Members share one filter, so an event none of them
// wants was merely filtered out.
void Watchers::GroupDeliver(const std::weak_ptr<GroupSub>& weak, const WatchItem& item) {
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
  if (target != nullptr && target->Deliver(item.response)) return;
  Dropped(item.response, /*owns_acks=*/false, "watcher gone");
}

void Watchers::Dropped(const v1::WatchEventsResponse& event, bool owns_acks,
                       std::string_view error) {
  counters_.watch_dropped.fetch_add(1, std::memory_order_relaxed);
  if (!event.has_client_event()) return;
  client_events_dropped_.fetch_add(1, std::memory_order_relaxed);
  const v1::ClientEvent& client_event = event.client_event();
  if (!owns_acks || client_event.ack_ref().empty()) return;
  // The edge answers the client (at most once).
  absl::StatusOr<std::string_view> edge = EdgeOfAckRef(client_event.ack_ref());
  if (!edge.ok() || !bus_.connected()) return;
  v1::ForwardAck message;
  message.set_ack_ref(client_event.ack_ref());
  message.mutable_reply()->set_error(std::string(error));
  counters_.watch_acks_failed.fetch_add(1, std::memory_order_relaxed);
  SendForwardAck(bus_, options_.forward_ack_timeout, std::string(*edge), message,
                 [](absl::Status) {});
}

void Watchers::DropUnusedSubscriptions() {
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

void Watchers::Unsubscribe() {
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
}

void Watchers::Close() {
  std::vector<std::shared_ptr<Watcher>> watchers;
  {
    std::lock_guard lock(watch_mu_);
    closed_ = true;
    watchers.swap(watchers_);
    count_.store(0);
  }
  for (const auto& watcher : watchers) {
    std::lock_guard lock(watcher->mu);
    if (!watcher->active) continue;
    watcher->active = false;
    if (watcher->on_closed) watcher->on_closed();
  }
}

}  // namespace switchboard::broker
