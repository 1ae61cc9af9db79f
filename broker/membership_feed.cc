#include "broker/membership_feed.h"

#include <utility>

#include "broker/convert.h"
#include "bus/routing.h"

namespace switchboard::broker {

MembershipFeed::MembershipFeed(bus::Bus& bus, BrokerOptions options, BrokerCounters& counters,
                               std::function<void()> tick_soon)
    : bus_(bus),
      options_(std::move(options)),
      counters_(counters),
      tick_soon_(std::move(tick_soon)),
      edges_(options_.lost_edge_retention, options_.max_lost_edges) {}

bool MembershipFeed::OnMembership(const v1::MembershipEvent& event) {
  const std::string& edge_id = event.edge_id();
  std::vector<Ask> asks;
  bool fresh = false;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return false;
    Clock::time_point now = Clock::now();
    EdgeState& edge = edges_.Get(edge_id, event.incarnation(), index_);
    if (index_.ApplyEvent(edge_id, event.seq(), ToIndexEvent(event), now) == ApplyResult::kGap) {
      counters_.gaps.fetch_add(1, std::memory_order_relaxed);
    }
    if (index_.NeedsSnapshot(edge_id)) AskLocked(edge_id, edge, now, asks);
    if (event.seq() > edge.watched_seq) {
      edge.watched_seq = event.seq();
      fresh = true;
    }
    NoteRecoverableLocked();  // a new incarnation forgot the old one's
  }
  SendAsks(asks);
  return fresh;
}

void MembershipFeed::OnHeartbeat(const v1::Heartbeat& heartbeat) {
  std::vector<Ask> asks;
  std::vector<std::string> announced;  // recovery namespaces new to the cluster
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    Clock::time_point now = Clock::now();
    EdgeState& edge = edges_.Get(heartbeat.edge_id(), heartbeat.incarnation(), index_);
    edge.last_heartbeat = std::chrono::system_clock::now();
    edge.KeepCounts(heartbeat);
    edge.KeepIdentity(heartbeat);
    edge.forward = heartbeat.forward();
    edge.interval = std::chrono::milliseconds(heartbeat.interval_ms());
    edge.recovery = heartbeat.recovery();
    announced = edges_.SetRecoveryNamespaces(edge, heartbeat);
    NoteRecoverableLocked();
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
  if (options_.on_recovery_announced) {
    for (const std::string& nsp : announced) options_.on_recovery_announced(nsp);
  }
}

bool MembershipFeed::Recoverable(std::string_view nsp) const {
  if (!any_recoverable_.load(std::memory_order_acquire)) return false;
  std::lock_guard lock(mu_);
  return edges_.Recoverable(nsp);
}

std::vector<SocketInfo> MembershipFeed::Tick(Clock::time_point now) {
  std::vector<Ask> asks;
  std::vector<Probe> probes;
  std::vector<SocketInfo> expired_sockets;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return {};
    const WallTime wall_now = std::chrono::system_clock::now();
    for (const std::string& id : index_.ExpireEdges(now, options_.edge_timeout, &expired_sockets)) {
      counters_.edges_expired.fetch_add(1, std::memory_order_relaxed);
      edges_.Expire(id, wall_now, expired_sockets);
    }
    ProbeLocked(now, wall_now, probes, expired_sockets);
    edges_.PruneLost(wall_now);
    NoteRecoverableLocked();  // expired and dropped edges took theirs
    // Failed or timed-out asks are retried here, at most once per tick.
    for (const std::string& id : index_.EdgesNeedingSnapshot()) {
      if (EdgeState* edge = edges_.Find(id)) AskLocked(id, *edge, now, asks);
    }
  }
  SendAsks(asks);
  SendProbes(probes);
  return expired_sockets;
}

void MembershipFeed::Stop() {
  std::unique_lock lock(mu_);
  stopping_ = true;
  // A snapshot callback past its check may still use the bus: wait.
  callbacks_done_.wait(lock, [&] { return callbacks_running_ == 0; });
}

bool MembershipFeed::EnterCallback() {
  std::lock_guard lock(mu_);
  if (stopping_) return false;
  ++callbacks_running_;
  return true;
}

void MembershipFeed::ExitCallback() {
  {
    std::lock_guard lock(mu_);
    --callbacks_running_;
  }
  callbacks_done_.notify_all();
}

void MembershipFeed::AskLocked(const std::string& edge_id, EdgeState& edge, Clock::time_point now,
                               std::vector<Ask>& asks) {
  // The bus answers every request by its timeout; twice that means the
  // answer was lost, so ask again rather than wait forever.
  if (edge.snapshot_in_flight && now - edge.snapshot_asked < 2 * options_.snapshot_timeout) {
    return;
  }
  edge.snapshot_in_flight = true;
  counters_.snapshot_requests.fetch_add(1, std::memory_order_relaxed);
  edge.snapshot_request = ++next_snapshot_request_;
  edge.snapshot_asked = now;
  edge.paged.reset();  // pages of an earlier ask are not this one's
  asks.push_back({edge_id, edge.snapshot_request, {}, 0});
}

void MembershipFeed::SendAsks(const std::vector<Ask>& asks) {
  if (asks.empty()) return;
  v1::SnapshotRequest request;
  request.set_broker_id(options_.broker_id);
  request.set_accepts_pages(true);
  std::weak_ptr<MembershipFeed> weak = weak_from_this();
  for (const Ask& ask : asks) {
    request.set_snapshot_id(ask.snapshot_id);
    request.set_page(ask.page);
    bus_.Request(bus::SnapshotSubject(ask.edge_id), request.SerializeAsString(),
                 options_.snapshot_timeout, [weak, ask](absl::StatusOr<bus::Message> reply) {
                   std::shared_ptr<MembershipFeed> feed = weak.lock();
                   if (feed == nullptr || !feed->EnterCallback()) return;
                   feed->OnSnapshotReply(ask, reply);
                   feed->ExitCallback();
                 });
  }
}

MembershipFeed::PageResult MembershipFeed::AddPage(EdgeState& edge, uint64_t request,
                                                   v1::Snapshot& page) {
  if (page.page_count() == 0) return PageResult::kStartOver;  // the edge let it go
  if (page.page() == 0) {
    edge.paged = std::make_unique<PagedSnapshot>();
    edge.paged->request = request;
    edge.paged->id = page.snapshot_id();
    edge.paged->page_count = page.page_count();
    edge.paged->seq = page.seq();
    edge.paged->heartbeat.Swap(page.mutable_heartbeat());
  }
  PagedSnapshot* paged = edge.paged.get();
  if (paged == nullptr || paged->request != request || paged->id != page.snapshot_id() ||
      paged->next_page != page.page() || paged->page_count != page.page_count() ||
      paged->seq != page.seq()) {
    return PageResult::kStartOver;  // not the page asked for
  }
  paged->sockets.reserve(paged->sockets.size() + page.sockets_size());
  for (const v1::SocketState& socket : page.sockets()) {
    paged->sockets.push_back(FromProto(socket.socket()));
  }
  return ++paged->next_page == paged->page_count ? PageResult::kComplete : PageResult::kMore;
}

void MembershipFeed::OnSnapshotReply(const Ask& ask, const absl::StatusOr<bus::Message>& reply) {
  std::vector<Ask> asks;
  {
    std::lock_guard lock(mu_);
    EdgeState* edge = edges_.Find(ask.edge_id);
    if (edge == nullptr) return;  // expired meanwhile
    const bool current = edge->snapshot_request == ask.request;
    if (current) edge->snapshot_in_flight = false;
    if (!reply.ok()) {
      if (current) edge->paged.reset();  // the ticker asks again, from the start
      return;
    }
    v1::Snapshot snapshot;
    if (!snapshot.ParseFromString(reply->payload) || snapshot.edge_id() != ask.edge_id) return;
    // A snapshot of another incarnation than the stream's is stale (or
    // early); the stream's next message settles which one is current.
    if (snapshot.incarnation() != edge->incarnation) return;
    Clock::time_point now = Clock::now();
    Snapshot state;
    state.edge_id = snapshot.edge_id();
    if (snapshot.snapshot_id().empty()) {  // whole
      state.seq = snapshot.seq();
      state.sockets.reserve(snapshot.sockets_size());
      for (const v1::SocketState& socket : snapshot.sockets()) {
        state.sockets.push_back(FromProto(socket.socket()));
      }
      ApplySnapshotLocked(*edge, state, snapshot.has_heartbeat() ? &snapshot.heartbeat() : nullptr,
                          now, asks);
    } else if (current) {  // a page (those of an ask given up on are dropped)
      switch (AddPage(*edge, ask.request, snapshot)) {
        case PageResult::kMore:
          edge->snapshot_in_flight = true;
          edge->snapshot_asked = now;
          asks.push_back({ask.edge_id, ask.request, edge->paged->id, edge->paged->next_page});
          break;
        case PageResult::kStartOver: AskLocked(ask.edge_id, *edge, now, asks); break;
        case PageResult::kComplete: {
          std::unique_ptr<PagedSnapshot> paged = std::move(edge->paged);
          state.seq = paged->seq;
          state.sockets = std::move(paged->sockets);
          ApplySnapshotLocked(*edge, state, &paged->heartbeat, now, asks);
          break;
        }
      }
    }
  }
  SendAsks(asks);
}

void MembershipFeed::ApplySnapshotLocked(EdgeState& edge, const Snapshot& state,
                                         const v1::Heartbeat* heartbeat, Clock::time_point now,
                                         std::vector<Ask>& asks) {
  if (index_.ApplySnapshot(state, now) != ApplyResult::kDuplicate && heartbeat != nullptr) {
    edge.KeepCounts(*heartbeat);
    edge.KeepIdentity(*heartbeat);
  }
  if (index_.NeedsSnapshot(state.edge_id)) AskLocked(state.edge_id, edge, now, asks);
}

}  // namespace switchboard::broker
