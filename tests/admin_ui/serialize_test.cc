// The Admin UI's JSON shapes, as @socket.io/admin-ui 0.5's UI reads them.
#include "admin_ui/serialize.h"

#include <gtest/gtest.h>

#include "admin_ui/admin_namespace.h"

namespace switchboard::admin_ui {
namespace {

TEST(SerializeTest, SocketAsTheUiListsIt) {
  v1::SocketInfo info;
  info.set_id("e1.abc");
  info.set_edge_id("e1");
  info.set_user_id("alice");
  info.set_namespace_("/chat");
  info.add_rooms("lobby");
  info.add_rooms("room 2");
  info.set_transport(v1::TRANSPORT_WEBSOCKET);
  info.set_remote_address("10.0.0.7");
  info.set_claims(R"({"role":"mod"})");
  info.mutable_connected_at()->set_seconds(1796000000);
  info.mutable_connected_at()->set_nanos(123'000'000);
  Json socket = SerializeSocket(info);
  EXPECT_EQ(socket["id"], "e1.abc");
  EXPECT_EQ(socket["clientId"], "e1.abc");
  EXPECT_EQ(socket["nsp"], "/chat");
  EXPECT_EQ(socket["transport"], "websocket");
  EXPECT_EQ(socket["rooms"], Json::array({"e1.abc", "lobby", "room 2"}));  // own room first
  EXPECT_EQ(socket["data"], (Json{{"userId", "alice"}, {"claims", {{"role", "mod"}}}}));
  EXPECT_EQ(socket["handshake"]["address"], "10.0.0.7");
  EXPECT_EQ(socket["handshake"]["issued"], 1796000000123);
  EXPECT_EQ(socket["handshake"]["time"], "2026-11-30T00:53:20.123Z");
  EXPECT_TRUE(socket["handshake"]["headers"].is_object());
  EXPECT_TRUE(socket["handshake"]["query"].is_object());

  v1::SocketInfo anonymous;
  anonymous.set_id("e2.x");
  anonymous.set_transport(v1::TRANSPORT_POLLING);
  EXPECT_EQ(SerializeSocket(anonymous)["transport"], "polling");
  EXPECT_EQ(SerializeSocket(anonymous)["data"], Json::object());
}

TEST(SerializeTest, ServerStats) {
  v1::AdminServerStats stats;
  stats.set_server_id("edge-1");
  stats.set_hostname("host");
  stats.set_pid(42);
  stats.set_uptime_seconds(12.5);
  stats.set_clients_count(3);
  stats.set_polling_clients_count(1);
  auto* nsp = stats.add_namespaces();
  nsp->set_name("/");
  nsp->set_sockets_count(3);
  auto* event = stats.add_aggregated_events();
  event->set_timestamp_ms(1796000000000);
  event->set_type("rawDisconnection");
  event->set_sub_type("transport close");
  event->set_count(2);
  auto* bytes = stats.add_aggregated_events();
  bytes->set_timestamp_ms(1796000000000);
  bytes->set_type("bytesOut");
  bytes->set_count(100);
  Json json = ServerStatsJson(stats);
  EXPECT_EQ(json["serverId"], "edge-1");
  EXPECT_EQ(json["pid"], 42);
  EXPECT_EQ(json["uptime"], 12.5);
  EXPECT_EQ(json["clientsCount"], 3);
  EXPECT_EQ(json["pollingClientsCount"], 1);
  EXPECT_EQ(json["namespaces"], Json::parse(R"([{"name": "/", "socketsCount": 3}])"));
  EXPECT_EQ(json["aggregatedEvents"][0],
            Json::parse(R"({"timestamp": 1796000000000, "type": "rawDisconnection",
                            "subType": "transport close", "count": 2})"));
  EXPECT_FALSE(json["aggregatedEvents"][1].contains("subType"));
}

TEST(SerializeTest, FeaturesByMode) {
  Options options;
  EXPECT_EQ(AdminNamespace::Features(options),
            (std::vector<std::string>{"EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE",
                                      "MDISCONNECT", "AGGREGATED_EVENTS", "ALL_EVENTS"}));
  options.readonly = true;
  options.development = false;
  EXPECT_EQ(AdminNamespace::Features(options), (std::vector<std::string>{"AGGREGATED_EVENTS"}));
}

}  // namespace
}  // namespace switchboard::admin_ui
