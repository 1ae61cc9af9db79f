#pragma once

// WatchEvents: membership changes and forwarded client events handed to the
// API's watchers, each filtered by namespaces, kinds and event names; watchers
// in a queue group share each event once across brokers (NATS queue group
// bus::WatchQueueGroup).
//
// Locks, in this order when nested: a Watcher's own mu (held across its
// callbacks, which may destroy their handle), forward_mu_, watch_mu_.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "broker/broker.h"
#include "broker/counters.h"
#include "broker/index.h"
#include "bus/bus.h"
#include "switchboard/v1/bus.pb.h"
#include "switchboard/v1/switchboard.pb.h"

namespace switchboard::broker {

// An event as watchers see it, with what their filters look at.
struct WatchItem {
  v1::WatchEventsResponse response;
  v1::EventKind kind;
  std::string nsp;
};
// The watch view of a stream event; nullopt for changes watchers do not see.
std::optional<WatchItem> ToWatchItem(const v1::MembershipEvent& event);

struct Watcher;
struct GroupSub;

// Held by shared_ptr: watch handles hold it weakly.
class Watchers : public std::enable_shared_from_this<Watchers> {
 public:
  Watchers(bus::Bus& bus, const BrokerOptions& options, BrokerCounters& counters);
  ~Watchers();

  // See Broker::StartWatch.
  absl::StatusOr<std::unique_ptr<Broker::Watch>> Start(const v1::WatchEventsRequest& request,
                                                       Broker::WatchEvent on_event,
                                                       std::function<void()> on_closed)
      ABSL_LOCKS_EXCLUDED(forward_mu_, watch_mu_);
  bool any() const { return count_.load() > 0; }
  // To every ungrouped watcher that wants it (grouped ones get events from
  // their group's own subscriptions).
  void Fanout(const WatchItem& item) ABSL_LOCKS_EXCLUDED(watch_mu_);
  // The sockets of an edge that stopped sending heartbeats are gone for the
  // backends too: each becomes a DISCONNECTED event (reason "edge timeout")
  // for this broker's watchers, and for one local member of each of its
  // groups (every broker expires the edge on its own, so a group with members
  // on several brokers hears it once per such broker).
  void AnnounceExpired(const std::vector<SocketInfo>& sockets) ABSL_LOCKS_EXCLUDED(watch_mu_);
  // The ticker's: drops subscriptions no watcher needs any more. Not the
  // handles' job: unsubscribing waits for a running handler, which may be
  // blocked on the very watcher being dropped.
  void DropUnusedSubscriptions() ABSL_LOCKS_EXCLUDED(forward_mu_, watch_mu_);
  // See Broker::WatchDropped.
  void Dropped(const v1::WatchEventsResponse& event, bool owns_acks, std::string_view error);
  // Client events handed over but never delivered (GetStats forward).
  uint64_t client_events_dropped() const {
    return client_events_dropped_.load(std::memory_order_relaxed);
  }
  // Shutdown, first step: no bus handler of a watcher runs after this.
  void Unsubscribe() ABSL_LOCKS_EXCLUDED(forward_mu_, watch_mu_);
  // Shutdown, last step: every watcher gets `on_closed`; no Start succeeds.
  void Close() ABSL_LOCKS_EXCLUDED(watch_mu_);

  // For the handles.
  void Remove(const Watcher* watcher) ABSL_LOCKS_EXCLUDED(watch_mu_);

 private:
  // Adds a grouped watcher to its GroupSub, making the group's queue
  // subscriptions when it is the first member here.
  absl::Status JoinGroup(const std::shared_ptr<Watcher>& watcher)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(forward_mu_) ABSL_LOCKS_EXCLUDED(watch_mu_);
  // Hands an event of a group subscription to one member that wants it.
  void GroupDeliver(const std::weak_ptr<GroupSub>& group, const WatchItem& item)
      ABSL_LOCKS_EXCLUDED(watch_mu_);
  void OnForwarded(const bus::Message& message);

  bus::Bus& bus_;
  const BrokerOptions& options_;
  BrokerCounters& counters_;

  std::mutex forward_mu_;
  // All forwarded events, for ungrouped watchers: only while one wants them.
  bus::SubscriptionPtr forward_sub_ ABSL_GUARDED_BY(forward_mu_);

  std::mutex watch_mu_ ABSL_ACQUIRED_AFTER(forward_mu_);
  std::vector<std::shared_ptr<Watcher>> watchers_ ABSL_GUARDED_BY(watch_mu_);
  std::map<std::string, std::shared_ptr<GroupSub>> groups_ ABSL_GUARDED_BY(watch_mu_);  // by key
  bool closed_ ABSL_GUARDED_BY(watch_mu_) = false;

  std::atomic<size_t> count_{0};  // watchers_.size(), read without the lock
  std::atomic<uint64_t> client_events_dropped_{0};
};

}  // namespace switchboard::broker
