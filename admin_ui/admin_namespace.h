#pragma once
// The server side of the official Socket.IO Admin UI (@socket.io/admin-ui 0.5) on one edge, for
// the whole cluster:
//  * login on the admin namespace (bcrypt password, then a session id any edge accepts);
//  * `config` (the features), then every edge's `server_stats` as they arrive on the bus;
//  * development mode: `all_sockets` from the brokers' index (at most maxListedSockets), then
//    the live changes of every edge (their membership streams) and the events clients send;
//  * the UI's actions (emit, join, leave, _disconnect) through the brokers' bus API: the same
//    code as the gRPC API's Publish, JoinRooms, LeaveRooms, DisconnectSockets.
// What reaches the admin sockets is delivered on this edge only: every edge with admin sockets
// hears the bus itself.

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "admin_ui/options.h"
#include "admin_ui/password.h"
#include "admin_ui/session_token.h"
#include "bus/bus.h"
#include "cluster/broker_api_client.h"
#include "edge/socketio/server.h"
#include "switchboard/v1/admin.pb.h"
#include "switchboard/v1/bus.pb.h"

namespace switchboard::admin_ui {

class AdminNamespace : public sio::EventTap {
 public:
  // Installs the protocol on the namespace options.nsp of `server` (call before it serves).
  // `server`, `bus` and `api` must outlive it; the server's runtime stops first.
  static absl::StatusOr<std::unique_ptr<AdminNamespace>> Install(sio::Server& server, bus::Bus& bus,
                                                                 cluster::BrokerApiClient& api,
                                                                 std::string edge_id,
                                                                 Options options);
  ~AdminNamespace() override;
  AdminNamespace(const AdminNamespace&) = delete;
  AdminNamespace& operator=(const AdminNamespace&) = delete;

  // sio::EventTap (development mode): a client event of another namespace, told to the
  // cluster's admin UIs.
  void OnClientEvent(const sio::Namespace& nsp, const sio::Socket& socket, std::string_view event,
                     sio::EventArgs& args) override;
  // An event this edge sent to its sockets (the UI's event_sent), told the same way.
  void OnDelivered(const sio::Namespace& nsp, const sio::Delivery& delivery,
                   const std::vector<sio::Socket*>& recipients) override;

  // What this edge itself makes, which the bus does not bring back to it (no-echo): its own
  // stats (StatsPublisher's `local`), its own membership events
  // (MembershipJournal::Options::on_event, under the journal's lock: handled later).
  void OnLocalStats(const v1::AdminServerStats& stats);
  void OnLocalMembership(const v1::MembershipEvent& event);

  // The supportedFeatures of `config`.
  static std::vector<std::string> Features(const Options& options);

 private:
  struct Core;
  explicit AdminNamespace(std::shared_ptr<Core> core);
  std::shared_ptr<Core> core_;
};

}  // namespace switchboard::admin_ui
