#include "services/metrics.h"

#include <prometheus/text_serializer.h>

#include <chrono>
#include <limits>
#include <sstream>

#include "bus/bus.h"
#include "cluster/latency_histogram.h"
#include "cluster/membership_journal.h"
#include "edge/engineio/server.h"
#include "edge/engineio/transports/websocket.h"
#include "edge/http/server.h"
#include "edge/runtime.h"
#include "edge/socketio/server.h"
#include "edge/uring_sends.h"
#include "services/health.h"
#include "services/version.h"

namespace switchboard::services {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily CounterFamily(std::string name, std::string help) {
  return MetricFamily{std::move(name), std::move(help), MetricType::Counter, {}};
}

void AppendCounter(std::vector<MetricFamily>& out, std::string name, std::string help,
                   double value) {
  MetricFamily family = CounterFamily(std::move(name), std::move(help));
  AddSample(family, value);
  out.push_back(std::move(family));
}

void AppendInOut(std::vector<MetricFamily>& out, std::string name, std::string help, double in,
                 double out_value) {
  MetricFamily family = CounterFamily(std::move(name), std::move(help));
  AddSample(family, in, {{"direction", "in"}});
  AddSample(family, out_value, {{"direction", "out"}});
  out.push_back(std::move(family));
}

MetricFamily GaugeFamily(std::string name, std::string help) {
  return MetricFamily{std::move(name), std::move(help), MetricType::Gauge, {}};
}

void AddSample(MetricFamily& family, double value, std::vector<ClientMetric::Label> labels) {
  ClientMetric metric;
  metric.label = std::move(labels);
  if (family.type == MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(std::move(metric));
}

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  const double start =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  AddCollector([start](std::vector<MetricFamily>& out) {
    auto info = GaugeFamily("switchboard_build_info", "Version of this switchboard binary.");
    AddSample(info, 1, {{"version", std::string(Version())}});
    out.push_back(std::move(info));
    auto started = GaugeFamily("switchboard_start_time_seconds",
                               "When the process started, in seconds since the Unix epoch.");
    AddSample(started, start);
    out.push_back(std::move(started));
    auto rss = GaugeFamily("switchboard_resident_memory_bytes", "Resident memory of the process.");
    AddSample(rss, static_cast<double>(Health::ResidentBytes()));
    out.push_back(std::move(rss));
  });
}

Metrics::~Metrics() = default;

void Metrics::AddCollector(CollectFn collect) { collectors_.push_back(std::move(collect)); }

std::string Metrics::Serialize() const {
  std::vector<MetricFamily> families = registry_->Collect();
  for (const auto& collect : collectors_) collect(families);
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

// Connection state recovery, of the namespaces that have it (edge/recovery).
static void AppendRecovery(std::vector<MetricFamily>& out, const sio::Server& server) {
  auto results = CounterFamily("switchboard_recoveries_total",
                               "Clients' attempts to recover a session, by result and namespace.");
  auto replayed = CounterFamily("switchboard_recovery_packets_replayed_total",
                                "Missed packets sent to restored sessions, by namespace.");
  auto bytes = GaugeFamily("switchboard_recovery_log_bytes",
                           "Bytes held by the recovery log, by namespace.");
  auto entries = GaugeFamily("switchboard_recovery_log_entries",
                             "Publishes held by the recovery log, by namespace.");
  auto late = CounterFamily(
      "switchboard_recovery_moved_in_late_total",
      "Sockets of a recovery namespace that moved in from further back in the log than this edge "
      "holds: the packets in between were not sent to them, by namespace.");
  bool any = false;
  for (const auto& nsp : server.namespaces()) {
    const recovery::Recovery* rec = nsp->recovery();
    if (rec == nullptr) continue;
    any = true;
    const std::string& name = nsp->name();
    for (auto result : {recovery::Result::kRecovered, recovery::Result::kExpired,
                        recovery::Result::kUnknown, recovery::Result::kReused}) {
      AddSample(results, static_cast<double>(rec->Counted(result)),
                {{"namespace", name}, {"result", recovery::ResultName(result)}});
    }
    AddSample(replayed, static_cast<double>(rec->Replayed()), {{"namespace", name}});
    recovery::LogStats stats = rec->log_stats();
    AddSample(bytes, static_cast<double>(stats.bytes), {{"namespace", name}});
    AddSample(entries, static_cast<double>(stats.entries), {{"namespace", name}});
    AddSample(late, static_cast<double>(nsp->MovedInLate()), {{"namespace", name}});
  }
  if (!any) return;
  out.push_back(std::move(results));
  out.push_back(std::move(replayed));
  out.push_back(std::move(bytes));
  out.push_back(std::move(entries));
  out.push_back(std::move(late));
}

Metrics::CollectFn EdgeCollector(sio::Server& server, const edge::HttpServer* http) {
  return [&server, http](std::vector<MetricFamily>& out) {
    using Counter = eio::Server::Counter;
    using CloseReason = eio::Server::CloseReason;
    const eio::Server::Stats stats = server.engine().stats();
    const eio::Server::LimitCounters eio_limits = server.engine().limit_counters();
    const sio::Server::LimitCounters sio_limits = server.limit_counters();

    auto connections =
        GaugeFamily("switchboard_connections", "Engine.IO sessions open now, by transport.");
    AddSample(connections, static_cast<double>(stats.open_polling), {{"transport", "polling"}});
    AddSample(connections, static_cast<double>(stats.open_websocket), {{"transport", "websocket"}});
    out.push_back(std::move(connections));

    auto handshakes =
        CounterFamily("switchboard_handshakes_total",
                      "Engine.IO handshakes: accepted by transport, rejected by reason.");
    AddSample(handshakes, static_cast<double>(stats[Counter::kHandshakesPolling]),
              {{"result", "accepted"}, {"reason", ""}, {"transport", "polling"}});
    AddSample(handshakes, static_cast<double>(stats[Counter::kHandshakesWebSocket]),
              {{"result", "accepted"}, {"reason", ""}, {"transport", "websocket"}});
    auto rejected = [&](const char* reason, uint64_t n) {
      AddSample(handshakes, static_cast<double>(n),
                {{"result", "rejected"}, {"reason", reason}, {"transport", ""}});
    };
    rejected("at_capacity", eio_limits.at_capacity);
    rejected("rate_limited", eio_limits.handshake_rate);
    rejected("forbidden_origin", eio_limits.forbidden_origin);
    rejected("draining", eio_limits.draining);
    out.push_back(std::move(handshakes));

    AppendCounter(out, "switchboard_upgrades_total",
                  "Engine.IO sessions upgraded from polling to WebSocket.",
                  static_cast<double>(stats[Counter::kUpgrades]));
    auto moves = CounterFamily("switchboard_session_moves_total",
                               "Engine.IO sessions moved between edges by an upgrade landing on "
                               "another edge: in (taken over here) and out (handed over).");
    AddSample(moves, static_cast<double>(stats[Counter::kMovesIn]), {{"direction", "in"}});
    AddSample(moves, static_cast<double>(stats[Counter::kMovesOut]), {{"direction", "out"}});
    out.push_back(std::move(moves));

    auto disconnects =
        CounterFamily("switchboard_disconnects_total", "Engine.IO sessions ended, by reason.");
    for (size_t r = 0; r < static_cast<size_t>(CloseReason::kCount); ++r) {
      AddSample(
          disconnects, static_cast<double>(stats.closes[r]),
          {{"reason", std::string(eio::Server::CloseReasonName(static_cast<CloseReason>(r)))}});
    }
    out.push_back(std::move(disconnects));

    AppendInOut(out, "switchboard_packets_total",
                "Engine.IO packets received from / queued to clients.",
                static_cast<double>(stats[Counter::kPacketsIn]),
                static_cast<double>(stats[Counter::kPacketsOut]));
    AppendInOut(out, "switchboard_bytes_total",
                "Engine.IO payload bytes received from / queued to clients.",
                static_cast<double>(stats[Counter::kBytesIn]),
                static_cast<double>(stats[Counter::kBytesOut]));

    AppendCounter(out, "switchboard_send_queue_drops_total",
                  "Volatile packets dropped because the client was behind.",
                  static_cast<double>(stats[Counter::kVolatileDrops]));
    AppendCounter(
        out, "switchboard_slow_consumer_disconnects_total",
        "Clients disconnected because their send queue overflowed.",
        static_cast<double>(stats.closes[static_cast<size_t>(CloseReason::kSendQueueOverflow)]));

    auto limits = CounterFamily("switchboard_limit_hits_total",
                                "Requests, packets or connections refused by a limit, by limit.");
    auto limit = [&](const char* name, uint64_t n) {
      AddSample(limits, static_cast<double>(n), {{"limit", name}});
    };
    limit("handshake_rate", eio_limits.handshake_rate);
    limit("max_connections", eio_limits.at_capacity);
    limit("forbidden_origin", eio_limits.forbidden_origin);
    limit("payload_too_large", eio_limits.payload_too_large);
    limit("max_sockets", sio_limits.server_at_capacity);
    limit("max_namespaces", sio_limits.too_many_namespaces);
    limit("max_sockets_per_user", sio_limits.too_many_user_sockets);
    limit("max_rooms_per_socket", sio_limits.room_limit);
    limit("event_rate", sio_limits.rate_limited);
    limit("connect_rate", sio_limits.connect_rate);
    limit("flood_disconnect", sio_limits.flood_disconnects);
    limit("json_depth", sio_limits.json_depth);
    limit("attachments", sio_limits.attachments);
    limit("attachment_bytes", sio_limits.attachment_bytes);
    if (http != nullptr) {
      const edge::HttpServer::LimitCounters h = http->limit_counters();
      limit("http_header_too_large", h.header_too_large);
      limit("http_headers_timeout", h.headers_timeout);
      limit("http_body_timeout", h.body_timeout);
      limit("http_idle_timeout", h.idle_timeout);
      // A stalled WebSocket is counted by its transport; a response or, with
      // TLS, a record by the HTTP server.
      limit("http_write_timeout", h.write_timeout + eio::WebSocketTransport::write_timeouts());
      limit("http_max_pending_connections", h.pending_connections);
      limit("descriptors", h.descriptors + eio::WebSocketTransport::descriptor_failures());
    }
    out.push_back(std::move(limits));
    AppendCounter(out, "switchboard_io_uring_sends_total",
                  "WebSocket writes handed to the kernel through io_uring (a delivery walk's, "
                  "a loop turn's flush; batched); 0 with --no-io-uring or where io_uring is not "
                  "available.",
                  static_cast<double>(edge::UringSends::sends()));
    AppendCounter(out, "switchboard_io_uring_reads_total",
                  "WebSocket reads done through io_uring (a batch of readiness events' reads in "
                  "one submit); 0 with --no-io-uring or where io_uring is not available.",
                  static_cast<double>(edge::UringSends::recvs()));
    AppendCounter(out, "switchboard_handler_exceptions_total",
                  "Exceptions that escaped an I/O thread's handler (logged; the thread went on). "
                  "Nothing is meant to throw: a bug.",
                  static_cast<double>(edge::Runtime::EscapedExceptions()));
    auto rate = CounterFamily("switchboard_rate_limit_hits_total",
                              "Handshakes, client events and CONNECTs refused by a rate limit.");
    AddSample(rate, static_cast<double>(eio_limits.handshake_rate), {{"limit", "handshake"}});
    AddSample(rate, static_cast<double>(sio_limits.rate_limited), {{"limit", "event"}});
    AddSample(rate, static_cast<double>(sio_limits.connect_rate), {{"limit", "connect"}});
    out.push_back(std::move(rate));

    auto sockets =
        GaugeFamily("switchboard_sockets", "Socket.IO sockets connected now, by namespace.");
    auto messages = CounterFamily("switchboard_messages_total",
                                  "Socket.IO packets from / to clients, by namespace.");
    auto broadcasts = CounterFamily("switchboard_broadcasts_total",
                                    "Broadcasts delivered on this edge, by namespace.");
    auto deliveries = CounterFamily("switchboard_deliveries_total",
                                    "Packets sent to recipients by broadcasts, by namespace.");
    for (const auto& nsp : server.namespaces()) {
      const std::string& name = nsp->name();
      AddSample(sockets, static_cast<double>(nsp->SocketCount()), {{"namespace", name}});
      AddSample(messages, static_cast<double>(nsp->MessagesIn()),
                {{"direction", "in"}, {"namespace", name}});
      AddSample(messages, static_cast<double>(nsp->MessagesOut()),
                {{"direction", "out"}, {"namespace", name}});
      AddSample(broadcasts, static_cast<double>(nsp->Broadcasts()), {{"namespace", name}});
      AddSample(deliveries, static_cast<double>(nsp->BroadcastDeliveries()), {{"namespace", name}});
    }
    out.push_back(std::move(sockets));
    out.push_back(std::move(messages));
    out.push_back(std::move(broadcasts));
    out.push_back(std::move(deliveries));
    AppendRecovery(out, server);
  };
}

Metrics::CollectFn BusCollector(const bus::Bus& bus) {
  return [&bus](std::vector<MetricFamily>& out) {
    const bus::Bus::Stats stats = bus.stats();
    auto connected = GaugeFamily("switchboard_bus_connected", "1 while the bus is connected.");
    AddSample(connected, bus.connected() ? 1 : 0);
    out.push_back(std::move(connected));
    AppendInOut(out, "switchboard_bus_messages_total",
                "Bus messages published (out) and received (in).",
                static_cast<double>(stats.messages_in), static_cast<double>(stats.messages_out));
    AppendInOut(out, "switchboard_bus_bytes_total", "Bus payload bytes in and out.",
                static_cast<double>(stats.bytes_in), static_cast<double>(stats.bytes_out));
    AppendCounter(out, "switchboard_bus_reconnects_total", "Reconnections to the bus.",
                  static_cast<double>(stats.reconnects));
    auto errors = CounterFamily(
        "switchboard_bus_errors_total",
        "Bus errors: publishes that failed (not connected, I/O error), publishes refused over "
        "the bus's max_payload, received messages dropped over the queued-bytes bound "
        "(queue_full) or by the NATS client (slow_consumer).");
    AddSample(errors, static_cast<double>(stats.publish_errors), {{"op", "publish"}});
    AddSample(errors, static_cast<double>(stats.too_large), {{"op", "max_payload"}});
    AddSample(errors, static_cast<double>(stats.dropped), {{"op", "queue_full"}});
    AddSample(errors, static_cast<double>(stats.slow_consumer), {{"op", "slow_consumer"}});
    out.push_back(std::move(errors));
    auto pending = GaugeFamily("switchboard_bus_pending_bytes",
                               "Bytes of received bus messages not yet handed to every thread "
                               "(bounded by --bus-max-pending-mb).");
    AddSample(pending, static_cast<double>(stats.pending_bytes));
    out.push_back(std::move(pending));
    auto max_payload = GaugeFamily("switchboard_bus_max_payload_bytes",
                                   "The largest message the bus takes (NATS: the server's "
                                   "max_payload); 0: no limit.");
    AddSample(max_payload, static_cast<double>(bus.max_payload()));
    out.push_back(std::move(max_payload));
  };
}

Metrics::CollectFn HealthCollector(const Health& health) {
  return [&health](std::vector<MetricFamily>& out) {
    auto ready = GaugeFamily("switchboard_ready", "1 while /readyz answers 200.");
    AddSample(ready, health.ready() ? 1 : 0);
    out.push_back(std::move(ready));
    auto draining = GaugeFamily("switchboard_draining", "1 once a drain (SIGTERM) has begun.");
    AddSample(draining, health.draining() ? 1 : 0);
    out.push_back(std::move(draining));
  };
}

Metrics::CollectFn LatencyCollector(std::string name, std::string help,
                                    const cluster::LatencyHistogram& histogram) {
  return [name = std::move(name), help = std::move(help),
          &histogram](std::vector<MetricFamily>& out) {
    const cluster::LatencyHistogram::Snapshot read = histogram.Read();
    ClientMetric metric;
    uint64_t cumulative = 0;
    const auto& bounds = cluster::LatencyHistogram::kBoundsSeconds;
    for (size_t i = 0; i < read.buckets.size(); ++i) {
      cumulative += read.buckets[i];
      metric.histogram.bucket.push_back(
          {cumulative, i < bounds.size() ? bounds[i] : std::numeric_limits<double>::infinity()});
    }
    // The count is the +Inf bucket, so that the two always agree.
    metric.histogram.sample_count = cumulative;
    metric.histogram.sample_sum = read.sum_seconds;
    out.push_back(MetricFamily{name, help, MetricType::Histogram, {std::move(metric)}});
  };
}

Metrics::CollectFn SocketsByTransportCollector(const cluster::MembershipJournal& journal) {
  return [&journal](std::vector<MetricFamily>& out) {
    auto family = GaugeFamily("switchboard_sockets_by_transport",
                              "Socket.IO sockets connected now, by namespace and transport.");
    for (const auto& [key, count] : journal.SocketsByTransport()) {
      AddSample(family, static_cast<double>(count),
                {{"namespace", key.first}, {"transport", key.second}});
    }
    out.push_back(std::move(family));
  };
}

}  // namespace switchboard::services
