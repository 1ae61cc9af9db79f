#pragma once

// What every role of the `switchboard` binary shares (services/main.cc): its
// flags, connecting to NATS, the admin port, and how a listener that could not
// start is reported.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "bus/nats_bus.h"
#include "services/admin_server.h"
#include "services/api_auth.h"
#include "services/health.h"
#include "services/metrics.h"

namespace switchboard::services {

// The command line of `switchboard ROLE` (README, "Flags").
struct ProcessFlags {
  std::string role;  // standalone, edge, broker
  std::string nats_url;
  std::string edge_id;
  std::string broker_id;
  std::string grpc_listen = "127.0.0.1:50051";
  unsigned heartbeat_ms = 1000;
  unsigned edge_timeout_ms = 5000;
  size_t watch_queue_bytes = 16u << 20;
  std::string admin_listen = "127.0.0.1:9464";
  unsigned drain_window_ms = 5000;
  unsigned drain_grace_ms = 10000;
  uint64_t memory_limit_mb = 0;
  unsigned memory_trim_ms = 1000;
  unsigned memory_trim_min_drop = 1000;
  uint64_t bus_max_pending_mb = 64;
  // Edge, standalone: a delivery's writes leave through one io_uring per I/O
  // thread (edge/uring_sends.h), where the kernel allows it.
  bool io_uring = true;
  // Connection state recovery in a cluster: the JetStream streams and KV
  // buckets an edge creates (services/cluster_recovery.h).
  int jetstream_replicas = 1;
  std::string jetstream_storage = "file";  // or "memory"
  ApiSecurityFlags api_flags;
  std::string tls_cert;  // the client listener's; both or neither
  std::string tls_key;
  ApiSecurity api_security;  // loaded from api_flags before a process starts
};

// A host as it goes in a URL: an IPv6 address in brackets.
std::string UrlHost(const std::string& host);

// A listener that could not start, named by the flag that chose its address: a second process on
// one host (a README cluster) otherwise meets a bare "cannot listen on 127.0.0.1:9464".
absl::Status ListenError(absl::string_view flag, const absl::Status& status);

// Connects to NATS, retrying for a while: in a cluster the bus may come up
// after us. `send_asap`: NatsBus::Options::send_asap.
absl::StatusOr<std::unique_ptr<bus::NatsBus>> ConnectNats(const std::string& url,
                                                          const std::string& name, bool no_echo,
                                                          uint64_t max_pending_bytes,
                                                          bool send_asap = false);

// The admin port (--admin-listen): /metrics, /healthz, /readyz. Prints
// "admin on HOST:PORT". `metrics` and `health` must outlive it.
absl::StatusOr<std::unique_ptr<AdminServer>> StartAdmin(const ProcessFlags& flags, Metrics& metrics,
                                                        Health& health);

}  // namespace switchboard::services
