#pragma once

// Prometheus metrics of a switchboard process (names: services/METRICS.md).
//
// Most values already exist as counters in the edge, bus and broker (kept per
// shard with relaxed atomics, or by NATS.c); they are read at scrape time by
// collectors, so the hot path gains no work for metrics. Metrics that exist
// nowhere else (gRPC calls, latencies) are prometheus-cpp families in
// registry().
//
//   Metrics metrics;
//   metrics.AddCollector(EdgeCollector(server, &http));
//   metrics.AddCollector(BusCollector(bus));
//   ... metrics.Serialize() ...  // the /metrics body
//
// Thread-safety: Serialize() may run on any thread, concurrently with the
// objects the collectors read; add collectors before serving.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

namespace switchboard::bus {
class Bus;
}
namespace switchboard::cluster {
class LatencyHistogram;
class MembershipJournal;
}
namespace switchboard::edge {
class HttpServer;
}
namespace switchboard::sio {
class Server;
}

namespace switchboard::services {

class Health;

class Metrics {
 public:
  // Appends families to the scrape.
  using CollectFn = std::function<void(std::vector<prometheus::MetricFamily>&)>;

  // With the process families: switchboard_build_info, _start_time_seconds,
  // _resident_memory_bytes.
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  prometheus::Registry& registry() { return *registry_; }
  void AddCollector(CollectFn collect);
  // Prometheus text format of the registry and every collector.
  std::string Serialize() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::vector<CollectFn> collectors_;
};

// Builders for collectors.
prometheus::MetricFamily CounterFamily(std::string name, std::string help);
prometheus::MetricFamily GaugeFamily(std::string name, std::string help);
// A counter family with one unlabelled sample, appended to `out`.
void AppendCounter(std::vector<prometheus::MetricFamily>& out, std::string name, std::string help,
                   double value);
// A counter family with a `direction` "in" and an "out" sample, appended to `out`.
void AppendInOut(std::vector<prometheus::MetricFamily>& out, std::string name, std::string help,
                 double in, double out_value);
void AddSample(prometheus::MetricFamily& family, double value,
               std::vector<prometheus::ClientMetric::Label> labels = {});

// The edge: Engine.IO sessions by transport, handshakes, upgrades,
// disconnects by reason, packets and bytes, Socket.IO sockets, messages,
// broadcasts and deliveries by namespace, every limit's refusals. `http` may
// be null. Both must outlive the Metrics.
Metrics::CollectFn EdgeCollector(sio::Server& server, const edge::HttpServer* http);
// The bus: connected, messages and bytes in/out, reconnects, publish errors.
Metrics::CollectFn BusCollector(const bus::Bus& bus);
// switchboard_ready and switchboard_draining.
Metrics::CollectFn HealthCollector(const Health& health);
// One histogram family `name` from a lock-free LatencyHistogram (e.g.
// switchboard_publish_deliver_latency_seconds from EdgeLink). `histogram`
// must outlive the Metrics.
Metrics::CollectFn LatencyCollector(std::string name, std::string help,
                                    const cluster::LatencyHistogram& histogram);
// switchboard_sockets_by_transport{namespace,transport} from the edge's
// membership journal (kept up to date on connect, disconnect, upgrade).
Metrics::CollectFn SocketsByTransportCollector(const cluster::MembershipJournal& journal);

}  // namespace switchboard::services
