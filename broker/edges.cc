#include "broker/edges.h"

#include <algorithm>
#include <utility>

#include "bus/routing.h"
#include "proto/convert.h"

namespace switchboard::broker {

void EdgeState::KeepCounts(const v1::Heartbeat& heartbeat) {
  counts = heartbeat.totals();
  nsp_counts.clear();
  for (const v1::NamespaceCounts& nsp : heartbeat.namespaces()) {
    nsp_counts[nsp.namespace_()] = nsp.counts();
  }
}

void EdgeState::KeepIdentity(const v1::Heartbeat& heartbeat) {
  version = heartbeat.version();
  if (heartbeat.has_started_at()) started_at = proto::FromTimestamp(heartbeat.started_at());
  // Sticky: a drain is never undone, and a reordered heartbeat must not make
  // the edge look ready again.
  draining = draining || heartbeat.draining();
}

EdgeState& EdgeTable::Get(const std::string& edge_id, const std::string& incarnation,
                          Index& index) {
  auto [it, created] = edges_.try_emplace(edge_id);
  EdgeState& edge = it->second;
  if (created) {
    lost_.erase(edge_id);  // back
    edge.incarnation = incarnation;
  } else if (edge.incarnation != incarnation) {
    index.ForgetEdge(edge_id);
    ReleaseRecoveryNamespaces(edge);
    edge = EdgeState{};
    edge.incarnation = incarnation;
  }
  return edge;
}

std::vector<std::string> EdgeTable::SetRecoveryNamespaces(EdgeState& edge,
                                                          const v1::Heartbeat& heartbeat) {
  std::vector<std::string> announced;
  announced.reserve(heartbeat.recovery_namespaces_size());
  for (const std::string& nsp : heartbeat.recovery_namespaces()) {
    announced.emplace_back(bus::NamespaceOrDefault(nsp));
  }
  std::sort(announced.begin(), announced.end());
  announced.erase(std::unique(announced.begin(), announced.end()), announced.end());
  std::vector<std::string> fresh;
  if (announced == edge.recovery_namespaces) return fresh;  // the usual heartbeat
  // Counted before released: a namespace the edge keeps never drops to 0.
  for (const std::string& nsp : announced) {
    if (++recovery_edges_[nsp] == 1) fresh.push_back(nsp);
  }
  ReleaseRecoveryNamespaces(edge);
  edge.recovery_namespaces = std::move(announced);
  return fresh;
}

void EdgeTable::ReleaseRecoveryNamespaces(EdgeState& edge) {
  for (const std::string& nsp : edge.recovery_namespaces) {
    auto it = recovery_edges_.find(nsp);
    if (it != recovery_edges_.end() && --it->second <= 0) recovery_edges_.erase(it);
  }
  edge.recovery_namespaces.clear();
}

EdgeState* EdgeTable::Find(std::string_view edge_id) {
  auto it = edges_.find(edge_id);
  return it == edges_.end() ? nullptr : &it->second;
}

const EdgeState* EdgeTable::Find(std::string_view edge_id) const {
  auto it = edges_.find(edge_id);
  return it == edges_.end() ? nullptr : &it->second;
}

std::vector<std::string> EdgeTable::LiveIds() const {
  std::vector<std::string> ids;
  ids.reserve(edges_.size());
  for (const auto& [id, edge] : edges_) ids.push_back(id);
  return ids;
}

void EdgeTable::Expire(const std::string& edge_id, WallTime now,
                       const std::vector<SocketInfo>& expired) {
  auto it = edges_.find(edge_id);
  if (it == edges_.end()) return;
  EdgeState& edge = it->second;
  ReleaseRecoveryNamespaces(edge);
  if (!edge.draining) {
    LostEdge& lost = lost_[edge_id];
    lost = LostEdge{edge.incarnation, edge.version, edge.started_at, edge.last_heartbeat, now, 0};
    for (const SocketInfo& socket : expired) {
      if (socket.edge_id == edge_id) ++lost.sockets;
    }
  }
  edges_.erase(it);
}

void EdgeTable::PruneLost(WallTime now) {
  std::erase_if(lost_,
                [&](const auto& entry) { return now - entry.second.lost_at > lost_retention_; });
  while (lost_.size() > max_lost_) {
    auto oldest = std::min_element(lost_.begin(), lost_.end(), [](const auto& a, const auto& b) {
      return a.second.lost_at < b.second.lost_at;
    });
    lost_.erase(oldest);
  }
}

void EdgeTable::ListEdges(const Stats& index_stats, v1::ListEdgesResponse& response) const {
  std::map<std::string, v1::EdgeInfo> out;  // live and lost merged, by id
  for (const EdgeStats& edge_stats : index_stats.per_edge) {
    v1::EdgeInfo& info = out[edge_stats.edge_id];
    info.set_edge_id(edge_stats.edge_id);
    info.set_sockets(edge_stats.sockets);
    info.set_state(v1::EDGE_STATE_READY);
    const EdgeState* edge = Find(edge_stats.edge_id);
    if (edge == nullptr) continue;
    if (edge->draining) info.set_state(v1::EDGE_STATE_DRAINING);
    info.set_version(edge->version);
    info.set_incarnation(edge->incarnation);
    if (edge->started_at) proto::ToTimestamp(*edge->started_at, info.mutable_started_at());
    if (edge->last_heartbeat) {
      proto::ToTimestamp(*edge->last_heartbeat, info.mutable_last_heartbeat());
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
}

}  // namespace switchboard::broker
