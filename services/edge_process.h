#pragma once

// Role `edge` (and `standalone`) of the `switchboard` binary: the Socket.IO
// server of this process, its namespaces' policies, its link to the cluster
// over the bus (NATS; standalone: the in-process bus, with a BrokerService
// on it), the client listener, the admin port and the drain on SIGTERM.
//
// Members are declared in dependency order (each uses only those above it),
// so destruction, bottom-up, is the teardown: the drain and the admin port go
// first, then the broker, the link, the policies, the forwarder, the listener,
// the server, the runtime and last the bus. Run returns once the runtime has
// stopped, so no I/O thread runs while that happens.

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "admin_ui/admin_namespace.h"
#include "admin_ui/stats_publisher.h"
#include "bus/bus.h"
#include "cluster/broker_api_client.h"
#include "cluster/edge_link.h"
#include "cluster/forwarder.h"
#include "cluster/poll_relay.h"
#include "cluster/session_mover.h"
#include "edge/http/server.h"
#include "edge/memory_release.h"
#include "edge/runtime.h"
#include "edge/socketio/server.h"
#include "services/admin_server.h"
#include "services/broker_process.h"
#include "services/cluster_recovery.h"
#include "services/config.h"
#include "services/edge_drain.h"
#include "services/edge_policies.h"
#include "services/health.h"
#include "services/metrics.h"
#include "services/process.h"

namespace switchboard::services {

class EdgeProcess {
 public:
  // Connects the bus and builds everything but the client listener's socket:
  // errors are the first step that failed (the process exits 1).
  static absl::StatusOr<std::unique_ptr<EdgeProcess>> Create(Config config,
                                                             const ProcessFlags& flags);
  EdgeProcess(const EdgeProcess&) = delete;
  EdgeProcess& operator=(const EdgeProcess&) = delete;

  // Listens for clients ("... listening on URL"), serves until drained.
  absl::Status Run();

  // Client events no rule handled.
  uint64_t ignored_events() const { return policies_->ignored_events(); }

 private:
  EdgeProcess(Config config, const ProcessFlags& flags, std::string edge_id,
              std::unique_ptr<bus::Bus> bus);
  absl::Status StartHttp();
  absl::Status StartCluster();
  absl::Status StartBroker();  // standalone
  absl::Status StartAdminUi();
  void AddCollectors();
  std::string Label() const;

  const Config config_;
  const ProcessFlags flags_;
  const std::string edge_id_;
  const bool standalone_;
  const std::chrono::system_clock::time_point started_at_ = std::chrono::system_clock::now();
  const std::unique_ptr<bus::Bus> bus_;
  // Connection state recovery in a cluster: the session stores of the
  // namespaces (in server_) use it to the end.
  std::shared_ptr<bus::JetStream> jetstream_;
  Metrics metrics_;
  Health health_;                                        // reads bus_
  edge::Runtime runtime_;                                // the I/O threads
  sio::Server server_;                                   // on runtime_
  std::unique_ptr<edge::HttpServer> http_;               // serves server_
  std::unique_ptr<edge::MemoryRelease> memory_release_;  // reads server_
  std::unique_ptr<cluster::Forwarder> forwarder_;        // bus_, runtime_
  std::unique_ptr<EdgePolicies> policies_;               // on server_, through forwarder_
  // The Admin UI (config "adminUi"): its namespace on server_, asking the brokers through
  // broker_api_; every edge's stats on the bus.
  std::unique_ptr<cluster::BrokerApiClient> broker_api_;
  std::unique_ptr<admin_ui::AdminNamespace> admin_ui_;
  std::unique_ptr<admin_ui::StatsPublisher> admin_stats_;
  std::unique_ptr<cluster::EdgeLink> link_;  // bus_, server_, forwarder_
  // Created before the policies (which give it to the namespaces), stopped
  // before the link: reads the namespaces' logs into server_, its appends'
  // completions use link_.
  std::unique_ptr<ClusterRecovery> cluster_recovery_;
  std::unique_ptr<cluster::SessionMover> mover_;    // not standalone: bus_, server_, link_
  std::unique_ptr<cluster::PollRelay> poll_relay_;  // not standalone: bus_, server_
  std::unique_ptr<BrokerService> broker_;           // standalone: bus_, server_, health_
  std::unique_ptr<AdminServer> admin_;              // metrics_ (they read all the above)
  std::unique_ptr<EdgeDrain> drain_;                // runtime_, server_, http_, link_
};

}  // namespace switchboard::services
