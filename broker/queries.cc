// MembershipFeed's read side: the API's queries, served from the index and
// the edges' last heartbeats with no scatter/gather.
#include <map>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "broker/convert.h"
#include "broker/membership_feed.h"
#include "proto/convert.h"

namespace switchboard::broker {

v1::GetStatsResponse MembershipFeed::GetStats() const {
  v1::GetStatsResponse response;
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
    if (const EdgeState* edge = edges_.Find(edge_stats.edge_id)) {
      // The index counts sockets; per-edge users and rooms and the message
      // counters only the edge knows: its last heartbeat's.
      *counts = edge->counts;
      *out->mutable_forward() = edge->forward;
      v1::ForwardStats* sum = response.mutable_forward();
      sum->set_forwarded(sum->forwarded() + edge->forward.forwarded());
      sum->set_dropped(sum->dropped() + edge->forward.dropped());
      sum->set_acks_answered(sum->acks_answered() + edge->forward.acks_answered());
      sum->set_acks_timed_out(sum->acks_timed_out() + edge->forward.acks_timed_out());
      sum->set_acks_pending(sum->acks_pending() + edge->forward.acks_pending());
      *out->mutable_recovery() = edge->recovery;
      const v1::RecoveryStats& rec = edge->recovery;
      v1::RecoveryStats* rsum = response.mutable_recovery();
      rsum->set_recovered(rsum->recovered() + rec.recovered());
      rsum->set_expired(rsum->expired() + rec.expired());
      rsum->set_unknown(rsum->unknown() + rec.unknown());
      rsum->set_reused(rsum->reused() + rec.reused());
      rsum->set_packets_replayed(rsum->packets_replayed() + rec.packets_replayed());
      rsum->set_log_bytes(rsum->log_bytes() + rec.log_bytes());
      rsum->set_log_entries(rsum->log_entries() + rec.log_entries());
      if (edge->last_heartbeat) {
        proto::ToTimestamp(*edge->last_heartbeat, out->mutable_last_heartbeat());
      }
      for (const auto& [name, nsp_counts] : edge->nsp_counts) {
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

v1::ListEdgesResponse MembershipFeed::ListEdges() {
  v1::ListEdgesResponse response;
  response.set_broker_id(options_.broker_id);
  std::lock_guard lock(mu_);
  edges_.PruneLost(std::chrono::system_clock::now());
  edges_.ListEdges(index_.GetStats(), response);
  return response;
}

absl::StatusOr<v1::ListSocketsResponse> MembershipFeed::ListSockets(
    const v1::ListSocketsRequest& request) const {
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

absl::StatusOr<v1::ListRoomsResponse> MembershipFeed::ListRooms(
    const v1::ListRoomsRequest& request) const {
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

absl::StatusOr<v1::GetPresenceResponse> MembershipFeed::GetPresence(
    const v1::GetPresenceRequest& request) const {
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

uint64_t MembershipFeed::CountRecipients(const v1::Target& target, const std::string& nsp,
                                         std::set<std::string>* edges) const {
  absl::flat_hash_set<std::string> excluded(target.except_socket_ids().begin(),
                                            target.except_socket_ids().end());
  Selector except;
  if (!target.except_rooms().empty()) {
    except.nsp = nsp;
    except.rooms.assign(target.except_rooms().begin(), target.except_rooms().end());
  }
  const Selector selector =
      IndexSelector(nsp, target.rooms(), target.socket_ids(), target.user_ids());
  std::lock_guard lock(mu_);
  if (!except.rooms.empty()) {
    for (const EdgeTargets& hit : index_.Resolve(except)) {
      excluded.insert(hit.socket_ids.begin(), hit.socket_ids.end());
    }
  }
  // Counted without listing the ids: this runs for every publish.
  return index_.Count(selector, excluded, edges);
}

uint64_t MembershipFeed::CountMatched(const v1::Selector& selector, const std::string& nsp) const {
  const Selector query =
      IndexSelector(nsp, selector.rooms(), selector.socket_ids(), selector.user_ids());
  uint64_t matched = 0;
  std::lock_guard lock(mu_);
  for (const EdgeTargets& hit : index_.Resolve(query)) matched += hit.socket_ids.size();
  return matched;
}

}  // namespace switchboard::broker
