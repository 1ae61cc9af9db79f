// The broker's composition: the membership feed (index + edges), publishing,
// acks and watchers wired to the bus, and one ticker for edge expiry,
// snapshot retries, ack deadlines and unused watch subscriptions.
#include "broker/broker.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "broker/acks.h"
#include "broker/counters.h"
#include "broker/membership_feed.h"
#include "broker/publisher.h"
#include "broker/validation.h"
#include "broker/watchers.h"
#include "bus/routing.h"
#include "switchboard/v1/bus.pb.h"

namespace switchboard::broker {

// Members in dependency order: what uses another is declared after it, so it
// is destroyed first.
struct Broker::State {
  using Clock = std::chrono::steady_clock;

  State(bus::Bus& bus, BrokerOptions options)
      : bus(bus),
        options(std::move(options)),
        feed(
            std::make_shared<MembershipFeed>(bus, this->options, counters, [this] { TickSoon(); })),
        watchers(std::make_shared<Watchers>(bus, this->options, counters)),
        publisher(bus, this->options, *feed, acks, counters, [this] { WakeTicker(); }) {}

  absl::Status Subscribe();
  void Shutdown();

  void OnMembership(const bus::Message& message);
  void OnHeartbeat(const bus::Message& message);
  void OnAck(const bus::Message& message);
  void RunTicker();
  void WakeTicker();
  // The feed has an edge to drop now: tick without waiting for the period.
  void TickSoon();

  bus::Bus& bus;
  const BrokerOptions options;
  BrokerCounters counters;
  PendingAcks acks;
  const std::shared_ptr<MembershipFeed> feed;
  const std::shared_ptr<Watchers> watchers;
  Publisher publisher;

  std::vector<bus::SubscriptionPtr> subs;  // ack, membership, heartbeat

  std::mutex ticker_mu;
  std::condition_variable ticker_cv;
  bool stopping ABSL_GUARDED_BY(ticker_mu) = false;
  uint64_t wakeups ABSL_GUARDED_BY(ticker_mu) = 0;  // an earlier ack deadline may be due
  bool tick_soon ABSL_GUARDED_BY(ticker_mu) = false;
  std::thread ticker;
};

void Broker::State::OnMembership(const bus::Message& message) {
  v1::MembershipEvent event;
  if (!event.ParseFromString(message.payload) || !bus::ValidNodeId(event.edge_id())) return;
  if (feed->OnMembership(event) && watchers->any()) {
    if (auto item = ToWatchItem(event)) watchers->Fanout(*item);
  }
}

void Broker::State::OnHeartbeat(const bus::Message& message) {
  v1::Heartbeat heartbeat;
  if (!heartbeat.ParseFromString(message.payload) || !bus::ValidNodeId(heartbeat.edge_id())) {
    return;
  }
  feed->OnHeartbeat(heartbeat);
}

void Broker::State::OnAck(const bus::Message& message) {
  v1::AckReport report;
  if (report.ParseFromString(message.payload)) acks.OnReport(report);
}

void Broker::State::WakeTicker() {
  {
    std::lock_guard lock(ticker_mu);
    ++wakeups;
  }
  ticker_cv.notify_all();
}

void Broker::State::TickSoon() {
  {
    std::lock_guard lock(ticker_mu);
    tick_soon = true;
    ++wakeups;
  }
  ticker_cv.notify_all();
}

void Broker::State::RunTicker() {
  Clock::time_point next_tick = Clock::now() + options.tick;
  std::unique_lock lock(ticker_mu);
  while (!stopping) {
    const uint64_t seen = wakeups;
    lock.unlock();
    Clock::time_point wake = std::min(next_tick, acks.NextDeadline().value_or(next_tick));
    lock.lock();
    ticker_cv.wait_until(lock, wake, [&] { return stopping || wakeups != seen; });
    if (stopping) break;
    const bool soon = std::exchange(tick_soon, false);
    lock.unlock();
    const Clock::time_point now = Clock::now();
    acks.ExpireDue(now);
    if (now >= next_tick || soon) {
      next_tick = now + options.tick;
      std::vector<SocketInfo> expired = feed->Tick(now);
      if (!expired.empty()) watchers->AnnounceExpired(expired);
      watchers->DropUnusedSubscriptions();
    }
    lock.lock();
  }
}

absl::Status Broker::State::Subscribe() {
  auto subscribe = [&](std::string_view subject,
                       void (State::*handler)(const bus::Message&)) -> absl::Status {
    auto sub = bus.Subscribe(subject,
                             [this, handler](bus::Message message) { (this->*handler)(message); });
    if (!sub.ok()) return sub.status();
    subs.push_back(std::move(*sub));
    return absl::OkStatus();
  };
  if (absl::Status s = subscribe(bus::AckSubject(options.broker_id), &State::OnAck); !s.ok()) {
    return s;
  }
  if (absl::Status s = subscribe(bus::kAllMembership, &State::OnMembership); !s.ok()) return s;
  if (absl::Status s = subscribe(bus::kAllHeartbeats, &State::OnHeartbeat); !s.ok()) return s;
  ticker = std::thread([this] { RunTicker(); });
  return absl::OkStatus();
}

void Broker::State::Shutdown() {
  // The streams stop acting, and no snapshot reply runs past this.
  feed->Stop();
  {
    std::lock_guard lock(ticker_mu);
    stopping = true;
  }
  ticker_cv.notify_all();
  if (ticker.joinable()) ticker.join();
  // Waits for running handlers; none starts afterwards.
  for (auto& sub : subs) sub->Unsubscribe();
  subs.clear();
  watchers->Unsubscribe();
  // Appends in flight complete (the log answers each) before the state goes.
  publisher.WaitForAppends();
  acks.CompleteAll();
  watchers->Close();
}

Broker::Broker(std::unique_ptr<State> state) : state_(std::move(state)) {}

Broker::~Broker() { state_->Shutdown(); }

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
  auto state = std::make_unique<State>(bus, std::move(options));
  if (absl::Status status = state->Subscribe(); !status.ok()) {
    state->Shutdown();
    return status;
  }
  return std::unique_ptr<Broker>(new Broker(std::move(state)));
}

const std::string& Broker::id() const { return state_->options.broker_id; }

bool Broker::bus_connected() const { return state_->bus.connected(); }

Broker::Counters Broker::counters() const {
  const BrokerCounters& c = state_->counters;
  return {c.gaps.load(std::memory_order_relaxed),
          c.snapshot_requests.load(std::memory_order_relaxed),
          c.edges_expired.load(std::memory_order_relaxed),
          c.watch_dropped.load(std::memory_order_relaxed),
          c.watch_acks_failed.load(std::memory_order_relaxed),
          c.edge_probes.load(std::memory_order_relaxed),
          c.log_stored.load(std::memory_order_relaxed),
          c.log_fallback.load(std::memory_order_relaxed),
          c.log_failed.load(std::memory_order_relaxed)};
}

void Broker::Publish(const v1::PublishRequest& request, PublishDone done) {
  state_->publisher.Publish(request, std::move(done));
}

bool Broker::Recoverable(std::string_view nsp) const {
  return state_->feed->Recoverable(bus::NamespaceOrDefault(nsp));
}

absl::StatusOr<v1::JoinRoomsResponse> Broker::JoinRooms(const v1::JoinRoomsRequest& request) {
  if (request.rooms().empty()) return absl::InvalidArgumentError("rooms must not be empty");
  v1::Command command;
  command.mutable_join()->mutable_rooms()->CopyFrom(request.rooms());
  auto matched = state_->publisher.SendCommand(request.selector(), std::move(command));
  if (!matched.ok()) return matched.status();
  v1::JoinRoomsResponse response;
  response.set_matched_sockets(*matched);
  return response;
}

absl::StatusOr<v1::LeaveRoomsResponse> Broker::LeaveRooms(const v1::LeaveRoomsRequest& request) {
  if (request.rooms().empty()) return absl::InvalidArgumentError("rooms must not be empty");
  v1::Command command;
  command.mutable_leave()->mutable_rooms()->CopyFrom(request.rooms());
  auto matched = state_->publisher.SendCommand(request.selector(), std::move(command));
  if (!matched.ok()) return matched.status();
  v1::LeaveRoomsResponse response;
  response.set_matched_sockets(*matched);
  return response;
}

absl::StatusOr<v1::DisconnectSocketsResponse> Broker::DisconnectSockets(
    const v1::DisconnectSocketsRequest& request) {
  v1::Command command;
  command.set_disconnect_close(request.close());
  auto matched = state_->publisher.SendCommand(request.selector(), std::move(command));
  if (!matched.ok()) return matched.status();
  v1::DisconnectSocketsResponse response;
  response.set_matched_sockets(*matched);
  return response;
}

absl::StatusOr<v1::GetStatsResponse> Broker::GetStats(const v1::GetStatsRequest&) {
  v1::GetStatsResponse response = state_->feed->GetStats();
  response.set_broker_id(state_->options.broker_id);
  response.mutable_forward()->set_watch_dropped(state_->watchers->client_events_dropped());
  const BrokerCounters& c = state_->counters;
  response.mutable_watch()->set_dropped(c.watch_dropped.load(std::memory_order_relaxed));
  response.mutable_watch()->set_acks_failed(c.watch_acks_failed.load(std::memory_order_relaxed));
  v1::RecoveryStats* recovery = response.mutable_recovery();
  recovery->set_log_appends(c.log_stored.load(std::memory_order_relaxed));
  recovery->set_log_fallbacks(c.log_fallback.load(std::memory_order_relaxed));
  recovery->set_log_append_failures(c.log_failed.load(std::memory_order_relaxed));
  return response;
}

absl::StatusOr<v1::ListEdgesResponse> Broker::ListEdges(const v1::ListEdgesRequest&) {
  return state_->feed->ListEdges();
}

absl::StatusOr<v1::ListSocketsResponse> Broker::ListSockets(const v1::ListSocketsRequest& request) {
  return state_->feed->ListSockets(request);
}

absl::StatusOr<v1::ListRoomsResponse> Broker::ListRooms(const v1::ListRoomsRequest& request) {
  return state_->feed->ListRooms(request);
}

absl::StatusOr<v1::GetPresenceResponse> Broker::GetPresence(const v1::GetPresenceRequest& request) {
  return state_->feed->GetPresence(request);
}

void Broker::Ack(const v1::AckRequest& request, AckDone done) {
  absl::StatusOr<std::string_view> edge = EdgeOfAckRef(request.ack_ref());
  if (!edge.ok()) {
    done(edge.status());
    return;
  }
  if (absl::Status status = CheckArguments(request.args()); !status.ok()) {
    done(status);
    return;
  }
  if (!state_->bus.connected()) {
    done(absl::UnavailableError("the bus is not connected"));
    return;
  }
  v1::ForwardAck message;
  message.set_ack_ref(request.ack_ref());
  *message.mutable_reply()->mutable_args() = request.args();
  message.mutable_reply()->set_error(request.error());
  SendForwardAck(state_->bus, state_->options.forward_ack_timeout, std::string(*edge), message,
                 std::move(done));
}

void Broker::WatchDropped(const v1::WatchEventsResponse& event, bool owns_acks,
                          std::string_view error) {
  state_->watchers->Dropped(event, owns_acks, error);
}

absl::StatusOr<std::unique_ptr<Broker::Watch>> Broker::StartWatch(
    const v1::WatchEventsRequest& request, WatchEvent on_event, std::function<void()> on_closed) {
  return state_->watchers->Start(request, std::move(on_event), std::move(on_closed));
}

}  // namespace switchboard::broker
