#include "admin_ui/serialize.h"

#include "absl/time/time.h"
#include "proto/convert.h"

namespace switchboard::admin_ui {

std::string IsoTime(std::chrono::system_clock::time_point time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromChrono(time), absl::UTCTimeZone());
}

std::string TransportName(v1::Transport transport) {
  return transport == v1::TRANSPORT_WEBSOCKET ? "websocket" : "polling";
}

Json SerializeSocket(const v1::SocketInfo& socket) {
  Json data = Json::object();
  if (!socket.user_id().empty()) data["userId"] = socket.user_id();
  if (!socket.claims().empty()) {
    Json claims = Json::parse(socket.claims(), nullptr, /*allow_exceptions=*/false);
    if (!claims.is_discarded()) data["claims"] = std::move(claims);
  }
  Json rooms = Json::array({socket.id()});
  for (const std::string& room : socket.rooms()) rooms.push_back(room);
  const auto connected = proto::FromTimestamp(socket.connected_at());
  return Json{
      {"id", socket.id()},
      // The index keeps no Engine.IO id (the reference shows 12 characters of it): each socket
      // is its own client.
      {"clientId", socket.id()},
      {"transport", TransportName(socket.transport())},
      {"nsp", socket.namespace_()},
      {"data", std::move(data)},
      {"handshake",
       {{"address", socket.remote_address()},
        {"headers", Json::object()},
        {"query", Json::object()},
        {"issued",
         std::chrono::duration_cast<std::chrono::milliseconds>(connected.time_since_epoch())
             .count()},
        {"secure", false},
        {"time", IsoTime(connected)},
        {"url", ""},
        {"xdomain", false}}},
      {"rooms", std::move(rooms)},
  };
}

Json ServerStatsJson(const v1::AdminServerStats& stats) {
  Json namespaces = Json::array();
  for (const auto& nsp : stats.namespaces()) {
    namespaces.push_back({{"name", nsp.name()}, {"socketsCount", nsp.sockets_count()}});
  }
  Json events = Json::array();
  for (const auto& event : stats.aggregated_events()) {
    Json e = {{"timestamp", event.timestamp_ms()}, {"type", event.type()}};
    if (!event.sub_type().empty()) e["subType"] = event.sub_type();
    e["count"] = event.count();
    events.push_back(std::move(e));
  }
  return Json{{"serverId", stats.server_id()},
              {"hostname", stats.hostname()},
              {"pid", stats.pid()},
              {"uptime", stats.uptime_seconds()},
              {"clientsCount", stats.clients_count()},
              {"pollingClientsCount", stats.polling_clients_count()},
              {"namespaces", std::move(namespaces)},
              {"aggregatedEvents", std::move(events)}};
}

}  // namespace switchboard::admin_ui
