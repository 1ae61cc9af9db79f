#include "services/edge_process.h"

#include <spdlog/spdlog.h>

#include <fstream>
#include <iostream>
#include <sstream>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "admin_ui/ui_files.h"
#include "bus/inproc_bus.h"
#include "bus/nats_bus.h"
#include "bus/routing.h"
#include "edge/http/tls_context.h"
#include "services/cluster_recovery.h"
#include "services/version.h"
#include "switchboard/v1/bus.pb.h"

namespace switchboard::services {
namespace {

sio::ServerOptions SocketIoOptions(const Config& config, const std::string& edge_id) {
  sio::ServerOptions options;
  options.connect_timeout = config.connect_timeout;
  options.limits = config.socket_limits;
  options.decoder = config.decoder;
  options.edge_id = edge_id;
  return options;
}

// Cluster edges name themselves in their session ids, so that any edge can
// pass a request on to the session's owner (cluster/poll_relay.h).
eio::Options EngineOptions(const Config& config, const std::string& edge_id, bool standalone) {
  eio::Options options = config.engine;
  if (!standalone) options.node_id = edge_id;
  return options;
}

absl::StatusOr<std::unique_ptr<bus::Bus>> ConnectBus(const ProcessFlags& flags,
                                                     const std::string& edge_id) {
  if (flags.role == "standalone") {
    bus::InProcessBus::Options options;
    options.max_pending_bytes = flags.bus_max_pending_mb << 20;
    return std::make_unique<bus::InProcessBus>(std::move(options));
  }
  // Each publish written at once: NATS.c's batching (a flusher waiting up
  // to 1 ms) would add 2 ms to every polling request passed on to another
  // edge and 4 ms to every session move (two requests and their replies);
  // an edge publishes little else (relays, membership, heartbeats).
  auto nats = ConnectNats(flags.nats_url, absl::StrCat("switchboard-edge-", edge_id),
                          /*no_echo=*/true, flags.bus_max_pending_mb << 20, /*send_asap=*/true);
  if (!nats.ok()) {
    return absl::Status(
        nats.status().code(),
        absl::StrCat("cannot connect to NATS at ", flags.nats_url, ": ", nats.status().message()));
  }
  return std::unique_ptr<bus::Bus>(std::move(*nats));
}

// The configured page and client bundle, read once: requests never touch the file system.
absl::Status ServePage(const PageConfig& page, edge::HttpServer& http) {
  for (auto [url, file, type] :
       {std::tuple{&page.path, &page.file, "text/html; charset=UTF-8"},
        std::tuple{&page.client_path, &page.client_file, "text/javascript; charset=UTF-8"}}) {
    std::ifstream in(*file, std::ios::binary);
    std::ostringstream body;
    body << in.rdbuf();
    if (!in || in.bad()) {
      return absl::NotFoundError(absl::StrCat("page: cannot read ", *file, " (for ", *url, ")"));
    }
    http.ServeFile(*url, edge::StaticFile{type, body.str()});
  }
  spdlog::info("serving the page at {} (and {})", page.path, page.client_path);
  return absl::OkStatus();
}

}  // namespace

EdgeProcess::EdgeProcess(Config config, const ProcessFlags& flags, std::string edge_id,
                         std::unique_ptr<bus::Bus> bus)
    : config_(std::move(config)),
      flags_(flags),
      edge_id_(std::move(edge_id)),
      standalone_(flags.role == "standalone"),
      bus_(std::move(bus)),
      health_(bus_.get(), flags.memory_limit_mb << 20),
      runtime_(config_.threads),
      server_(runtime_, EngineOptions(config_, edge_id_, standalone_),
              SocketIoOptions(config_, edge_id_)) {
  metrics_.AddCollector(BusCollector(*bus_));
}

// GetStats' recovery counters: the edge's recovery namespaces, summed.
static void FillRecoveryStats(const sio::Server& server, v1::RecoveryStats* out) {
  for (const auto& nsp : server.namespaces()) {
    const recovery::Recovery* rec = nsp->recovery();
    if (rec == nullptr) continue;
    out->set_recovered(out->recovered() + rec->Counted(recovery::Result::kRecovered));
    out->set_expired(out->expired() + rec->Counted(recovery::Result::kExpired));
    out->set_unknown(out->unknown() + rec->Counted(recovery::Result::kUnknown));
    out->set_reused(out->reused() + rec->Counted(recovery::Result::kReused));
    out->set_packets_replayed(out->packets_replayed() + rec->Replayed());
    recovery::LogStats log = rec->log_stats();
    out->set_log_bytes(out->log_bytes() + log.bytes);
    out->set_log_entries(out->log_entries() + log.entries);
  }
}

absl::StatusOr<std::unique_ptr<EdgeProcess>> EdgeProcess::Create(Config config,
                                                                 const ProcessFlags& flags) {
  std::string edge_id = flags.edge_id;
  if (edge_id.empty()) {
    edge_id = flags.role == "standalone" ? "local" : absl::StrCat("e", bus::RandomNodeId(10));
  }
  if (!bus::ValidNodeId(edge_id)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--edge-id \"", edge_id, "\": use 1-64 characters of [A-Za-z0-9_-]"));
  }
  auto bus = ConnectBus(flags, edge_id);
  if (!bus.ok()) return bus.status();
  std::unique_ptr<EdgeProcess> process(
      new EdgeProcess(std::move(config), flags, std::move(edge_id), std::move(*bus)));
  EdgeProcess& p = *process;
  if (absl::Status s = p.StartHttp(); !s.ok()) return s;
  // Memory that departed connections freed goes back to the system after a
  // large drop in sessions (edge/memory_release.h).
  p.memory_release_ = std::make_unique<edge::MemoryRelease>(
      edge::MemoryRelease::Options{.period = std::chrono::milliseconds(flags.memory_trim_ms),
                                   .min_drop = flags.memory_trim_min_drop},
      [&p] { return p.server_.engine().SessionCount(); });
  if (absl::Status s = p.StartCluster(); !s.ok()) return s;
  if (p.standalone_) {
    if (absl::Status s = p.StartBroker(); !s.ok()) return s;
  }
  p.AddCollectors();
  auto admin = StartAdmin(flags, p.metrics_, p.health_);
  if (!admin.ok()) return admin.status();
  p.admin_ = std::move(*admin);
  p.drain_ = std::make_unique<EdgeDrain>(
      p.runtime_, p.server_.engine(), *p.http_, p.health_, *p.link_,
      EdgeDrain::Options{.window = std::chrono::milliseconds(flags.drain_window_ms),
                         .grace = std::chrono::milliseconds(flags.drain_grace_ms)});
  return process;
}

absl::Status EdgeProcess::StartHttp() {
  edge::HttpOptions options = config_.http;
  options.host = config_.host;
  options.port = config_.port;
  if (!flags_.tls_cert.empty()) {
    auto tls = edge::LoadServerTls(flags_.tls_cert, flags_.tls_key);
    if (!tls.ok()) return tls.status();
    options.tls = *std::move(tls);
  }
  http_ = std::make_unique<edge::HttpServer>(runtime_, std::move(options));
  http_->Mount(config_.path, server_.engine());
  if (config_.page) {
    if (absl::Status s = ServePage(*config_.page, *http_); !s.ok()) return s;
  }
  // After the page: a path both would serve is an error naming both.
  if (config_.admin_ui) {
    return admin_ui::ServeUi(*config_.admin_ui, *http_, admin_ui::DefaultUiDir());
  }
  return absl::OkStatus();
}

absl::Status EdgeProcess::StartCluster() {
  cluster::Forwarder::Options forwarder_options;
  forwarder_options.edge_id = edge_id_;
  forwarder_options.max_pending_acks = config_.max_pending_acks;
  auto forwarder = cluster::Forwarder::Start(*bus_, runtime_, forwarder_options);
  if (!forwarder.ok()) {
    return absl::Status(forwarder.status().code(),
                        absl::StrCat("forwarder: ", forwarder.status().message()));
  }
  forwarder_ = std::move(*forwarder);

  // Connection state recovery in a cluster: on JetStream, or not at all.
  EdgePolicies::RecoveryFactory make_recovery;
  bool any_recovery = false;
  for (const auto& ns : config_.namespaces) any_recovery |= ns.recovery.has_value();
  if (!standalone_ && any_recovery) {
    auto js = ClusterRecovery::ConnectJetStream(*bus_);
    if (!js.ok()) return js.status();
    jetstream_ = std::move(*js);
    auto recovery = ClusterRecovery::Create(*bus_, jetstream_, flags_, edge_id_);
    if (!recovery.ok()) return recovery.status();
    cluster_recovery_ = std::move(*recovery);
    make_recovery = [r = cluster_recovery_.get()](const std::string& nsp,
                                                  const recovery::Options& options) {
      return r->Make(nsp, options);
    };
  }
  auto policies =
      EdgePolicies::Install(server_, config_.namespaces, *forwarder_, edge_id_, make_recovery);
  if (!policies.ok()) return policies.status();
  policies_ = std::move(*policies);
  // Before the link starts: its heartbeats read the server's namespaces.
  if (absl::Status s = StartAdminUi(); !s.ok()) return s;

  cluster::EdgeLink::Options link_options;
  link_options.edge_id = edge_id_;
  link_options.heartbeat_interval = std::chrono::milliseconds(flags_.heartbeat_ms);
  link_options.relay_broadcasts = !standalone_;  // one edge: nobody to relay to
  link_options.decorate_heartbeat = [forwarder = forwarder_.get(), server = &server_,
                                     recovery = cluster_recovery_.get()](v1::Heartbeat& heartbeat) {
    forwarder->FillStats(heartbeat.mutable_forward());
    FillRecoveryStats(*server, heartbeat.mutable_recovery());
    // Brokers publish these namespaces' recoverable events to their logs.
    if (recovery != nullptr) {
      for (const std::string& nsp : recovery->namespaces()) heartbeat.add_recovery_namespaces(nsp);
    }
  };
  if (cluster_recovery_) {
    link_options.append_to_log = [recovery = cluster_recovery_.get()](
                                     std::string_view nsp, std::string_view payload,
                                     std::function<void(absl::StatusOr<uint64_t>)> done) {
      return recovery->AppendToLog(nsp, payload, std::move(done));
    };
  }
  link_options.version = std::string(Version());
  link_options.started_at = started_at_;
  if (admin_ui_) {
    link_options.on_membership_event = [admin = admin_ui_.get()](const v1::MembershipEvent& e) {
      admin->OnLocalMembership(e);
    };
  }
  auto link = cluster::EdgeLink::Start(*bus_, server_, link_options);
  if (!link.ok()) {
    return absl::Status(link.status().code(), absl::StrCat("edge link: ", link.status().message()));
  }
  link_ = std::move(*link);
  if (cluster_recovery_) {
    if (absl::Status s = cluster_recovery_->StartReading(server_); !s.ok()) return s;
  }

  // One edge alone has nobody to pass polling requests on to, and its
  // sessions never move.
  if (standalone_) return absl::OkStatus();

  // Polling requests for sessions of other edges are passed on to them, and
  // theirs for ours served (docs/DESIGN-NOTES.md).
  auto relay = cluster::PollRelay::Start(*bus_, runtime_, server_.engine(),
                                         cluster::PollRelay::Options{.edge_id = edge_id_});
  if (!relay.ok()) {
    return absl::Status(relay.status().code(),
                        absl::StrCat("poll relay: ", relay.status().message()));
  }
  poll_relay_ = std::move(*relay);
  // A WebSocket upgrade for a session of another edge moves it here.
  auto mover = cluster::SessionMover::Start(*bus_, server_, *link_, {.edge_id = edge_id_});
  if (!mover.ok()) {
    return absl::Status(mover.status().code(),
                        absl::StrCat("session mover: ", mover.status().message()));
  }
  mover_ = std::move(*mover);
  server_.engine().OnForeignUpgrade(
      [mover = mover_.get()](const std::shared_ptr<edge::HttpSession>& http, std::string_view owner,
                             std::string_view sid) { mover->ArriveFrom(http, owner, sid); });
  return absl::OkStatus();
}

absl::Status EdgeProcess::StartAdminUi() {
  if (!config_.admin_ui) return absl::OkStatus();
  broker_api_ = std::make_unique<cluster::BrokerApiClient>(*bus_);
  auto admin =
      admin_ui::AdminNamespace::Install(server_, *bus_, *broker_api_, edge_id_, *config_.admin_ui);
  if (!admin.ok()) return admin.status();
  admin_ui_ = std::move(*admin);
  admin_stats_ = std::make_unique<admin_ui::StatsPublisher>(
      *bus_, server_, edge_id_, started_at_,
      [admin = admin_ui_.get()](const v1::AdminServerStats& stats) { admin->OnLocalStats(stats); });
  spdlog::info("admin ui: namespace {} ({} mode{})", config_.admin_ui->nsp,
               config_.admin_ui->development ? "development" : "production",
               config_.admin_ui->readonly ? ", read-only" : "");
  return absl::OkStatus();
}

absl::Status EdgeProcess::StartBroker() {
  // A PublishStream waits while this many deliveries are queued on the
  // shards (each holds its encoded frame until written): the edge in this
  // process bounds what a fast publisher can pile up.
  // Or while half the bus's byte bound is taken (large publishes), before
  // the bus has to drop.
  constexpr size_t kMaxQueuedDeliveries = 256;
  const uint64_t max_pending_bytes = (flags_.bus_max_pending_mb << 20) / 2;
  auto behind = [this, max_pending_bytes] {
    size_t queued = 0;
    for (const auto& nsp : server_.namespaces()) queued += nsp->QueuedDeliveries();
    return queued >= kMaxQueuedDeliveries ||
           (max_pending_bytes != 0 && bus_->stats().pending_bytes >= max_pending_bytes);
  };
  auto broker =
      BrokerService::Start(*bus_, flags_, "switchboard standalone", &metrics_, health_, behind);
  if (!broker.ok()) return broker.status();
  broker_ = std::move(*broker);
  // The link's first heartbeat went out before the broker listened: the
  // edge is in ListEdges / GetStats now rather than one period later.
  link_->Heartbeat();
  return absl::OkStatus();
}

void EdgeProcess::AddCollectors() {
  metrics_.AddCollector(EdgeCollector(server_, http_.get()));
  metrics_.AddCollector(LatencyCollector(
      "switchboard_publish_deliver_latency_seconds",
      "From a publish leaving the broker (or a relaying edge) to this edge handing it to its "
      "local recipients, once per delivery.",
      link_->delivery_latency()));
  metrics_.AddCollector(SocketsByTransportCollector(link_->journal()));
  if (mover_) {
    metrics_.AddCollector(LatencyCollector(
        "switchboard_session_move_latency_seconds",
        "Sessions moved here by an upgrade landing on this edge: from the client's upgrade "
        "packet to the session running here (its queued packets written).",
        mover_->move_latency()));
  }
  if (poll_relay_) {
    metrics_.AddCollector([relay = poll_relay_.get()](std::vector<prometheus::MetricFamily>& out) {
      auto family = CounterFamily(
          "switchboard_polling_forwarded_total",
          "Long-polling requests for sessions of another edge: passed on to their owner (sent), "
          "served for another edge (served).");
      AddSample(family, static_cast<double>(relay->sent()), {{"role", "sent"}});
      AddSample(family, static_cast<double>(relay->served()), {{"role", "served"}});
      out.push_back(std::move(family));
    });
    metrics_.AddCollector(LatencyCollector(
        "switchboard_polling_forward_latency_seconds",
        "Polling POSTs passed on to the session's owner: from the request leaving this edge to "
        "the owner's answer.",
        poll_relay_->latency()));
  }
  metrics_.AddCollector([policies = policies_.get()](std::vector<prometheus::MetricFamily>& out) {
    auto family =
        CounterFamily("switchboard_auth_total", "Client authentications (JWT), by result.");
    AddSample(family, static_cast<double>(policies->auth_accepted()), {{"result", "accepted"}});
    AddSample(family, static_cast<double>(policies->auth_rejected()), {{"result", "rejected"}});
    out.push_back(std::move(family));
  });
  metrics_.AddCollector(
      [release = memory_release_.get()](std::vector<prometheus::MetricFamily>& out) {
        AppendCounter(out, "switchboard_memory_trims_total",
                      "malloc_trim calls after a large drop in sessions.",
                      static_cast<double>(release->trims()));
        AppendCounter(out, "switchboard_memory_trim_seconds_total",
                      "Time spent in those malloc_trim calls.",
                      std::chrono::duration<double>(release->trim_time()).count());
      });
}

std::string EdgeProcess::Label() const {
  return standalone_ ? "switchboard standalone" : absl::StrCat("switchboard edge ", edge_id_);
}

absl::Status EdgeProcess::Run() {
  absl::Status listening = http_->Listen();
  if (!listening.ok()) return ListenError("--listen", listening);
  runtime_.Start();
  std::cout << Label() << " listening on " << (flags_.tls_cert.empty() ? "http://" : "https://")
            << UrlHost(config_.host) << ":" << http_->port()
            << std::endl;  // endl flushes: scripts wait for this line
  spdlog::info("serving {} on {} thread(s)", config_.path, runtime_.size());
  runtime_.Join();
  return absl::OkStatus();
}

}  // namespace switchboard::services
