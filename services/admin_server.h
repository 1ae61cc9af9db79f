#pragma once

// The internal HTTP port of every switchboard process (`--admin-listen`,
// default 127.0.0.1:9464):
//
//   GET /metrics  Prometheus text format (version 0.0.4), from `metrics`
//   GET /healthz  200 "ok" while the process runs (liveness)
//   GET /readyz   200 "ready", or 503 with the reason (readiness: bus
//                 connected, not draining, under the memory threshold)
//
// Anything else is 404; methods other than GET and HEAD are 405. One thread,
// its own io_context: a slow scraper never touches the edge's shards.
//
//   auto admin = AdminServer::Start({.host = "127.0.0.1", .port = 0},
//                                   [&] { return metrics.Serialize(); },
//                                   [&] { return health.Check(); });
//   ... (*admin)->port() ...

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace switchboard::services {

struct AdminServerOptions {
  // An IPv4 or IPv6 literal, or "localhost".
  std::string host = "127.0.0.1";
  // 0: a free port, see AdminServer::port().
  uint16_t port = 9464;
};

class AdminServer {
 public:
  // The body of /metrics.
  using MetricsFn = std::function<std::string()>;
  // OK: ready; otherwise the message is the 503 body.
  using ReadyFn = std::function<absl::Status()>;

  // Binds and starts serving on a thread of its own. Unavailable "cannot
  // listen on HOST:PORT: ..." when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<AdminServer>> Start(AdminServerOptions options,
                                                            MetricsFn metrics, ReadyFn ready);
  // Stops: closes the listener and every connection, joins the thread.
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  uint16_t port() const;

  struct Impl;

 private:
  explicit AdminServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace switchboard::services
