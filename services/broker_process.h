#pragma once

// The broker side of the `switchboard` binary: BrokerService (the broker and
// its gRPC API on a bus; also part of a standalone EdgeProcess) and
// BrokerProcess (role `broker`: NATS, the service, the admin port).
//
// Members are declared in dependency order (each uses only those above it),
// so destruction, bottom-up, is the teardown.

#include <signal.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "broker/broker.h"
#include "broker/bus_api.h"
#include "broker/event_log.h"
#include "bus/bus.h"
#include "bus/nats_bus.h"
#include "services/admin_server.h"
#include "services/api_server.h"
#include "services/health.h"
#include "services/metrics.h"
#include "services/process.h"

namespace switchboard::services {

// Connection state recovery in a cluster: the namespaces' logs on JetStream.
struct RecoveryLog {
  // Null: recoverable publishes go on the core subjects.
  std::unique_ptr<broker::EventLog> log;
  // Without `log`: warn (once) when an edge announces a recovery namespace,
  // since this broker cannot write its log (NATS without JetStream).
  bool warn_without_log = false;
};

class BrokerService {
 public:
  // Starts the broker on `bus`, its bus API (broker/bus_api.h: how edges reach
  // the brokers) and its gRPC API on --grpc-listen, served while
  // `health` is ready; prints "<label> serving gRPC on HOST:PORT". With
  // `metrics`, the API's and the broker's metrics go there.
  // `deliveries_behind` (standalone): a PublishStream waits while it is true.
  // `recovery` (a cluster's broker): where recoverable publishes go.
  static absl::StatusOr<std::unique_ptr<BrokerService>> Start(
      bus::Bus& bus, const ProcessFlags& flags, const std::string& label, Metrics* metrics,
      Health& health, std::function<bool()> deliveries_behind = nullptr, RecoveryLog recovery = {});
  // Stops the readiness watch, then the API (in-flight calls get a second),
  // then the broker.
  ~BrokerService();
  BrokerService(const BrokerService&) = delete;
  BrokerService& operator=(const BrokerService&) = delete;

  // Not serving any more; in-flight calls finish within `grace`.
  void Drain(std::chrono::milliseconds grace);

 private:
  explicit BrokerService(Health& health) : health_(health) {}

  Health& health_;
  std::unique_ptr<broker::EventLog> event_log_;  // outlives broker_, which appends to it
  std::unique_ptr<broker::Broker> broker_;
  std::unique_ptr<broker::BusApi> bus_api_;  // over broker_: sb.v1.api.<Method>
  std::unique_ptr<ApiServer> api_;           // over broker_
};

class BrokerProcess {
 public:
  // The signals that drain a process (SIGINT, SIGTERM). Blocked in every
  // thread before any starts, so only Run's sigwait sees them.
  static sigset_t BlockStopSignals();

  // Connects to NATS, starts the broker, its API and the admin port.
  static absl::StatusOr<std::unique_ptr<BrokerProcess>> Start(ProcessFlags flags);

  // Serves until a stop signal, then drains: not ready (health NOT_SERVING),
  // in-flight gRPC calls finish within --drain-grace-ms.
  void Run(const sigset_t& stop_signals);

 private:
  explicit BrokerProcess(ProcessFlags flags);

  const ProcessFlags flags_;
  std::unique_ptr<bus::NatsBus> bus_;
  Metrics metrics_;
  std::unique_ptr<Health> health_;  // reads bus_
  std::unique_ptr<BrokerService> service_;
  std::unique_ptr<AdminServer> admin_;  // reads metrics_, health_ (and through them the rest)
};

}  // namespace switchboard::services
