// switchboard — the server binary.
//
//   switchboard standalone [--config FILE] [--listen HOST:PORT] [--grpc-listen HOST:PORT]
//   switchboard edge --nats URL [--edge-id ID] [--config FILE] [--listen HOST:PORT]
//   (edge, standalone: --tls-cert FILE --tls-key FILE serve HTTPS / WSS)
//   switchboard broker --nats URL [--grpc-listen HOST:PORT] [--broker-id ID]
//
// Every role serves Prometheus /metrics, /healthz and /readyz on
// --admin-listen (default 127.0.0.1:9464; services/admin_server.h). SIGTERM
// drains: not ready, no new connections, clients told to reconnect over
// --drain-window-ms, exit by --drain-grace-ms.
//
// `edge` serves Socket.IO clients and links them to the cluster over NATS;
// `broker` keeps the cluster's index and serves the gRPC API; `standalone`
// runs both in one process over the in-process bus (no NATS).
//
// The gRPC API (broker, standalone) is never open to the network: with
// --grpc-listen on a non-loopback address it needs bearer tokens
// (--api-token-file FILE, --api-token-env NAME) or mutual TLS (--api-tls-cert,
// --api-tls-key, --api-tls-client-ca), else switchboard exits 1 before
// connecting to anything. See services/api_auth.h.

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "broker/broker.h"
#include "bus/inproc_bus.h"
#include "bus/nats_bus.h"
#include "bus/routing.h"
#include "cluster/edge_link.h"
#include "cluster/forwarder.h"
#include "edge/http/server.h"
#include "edge/http/tls_context.h"
#include "edge/memory_release.h"
#include "edge/runtime.h"
#include "edge/socketio/server.h"
#include "policy/client_auth.h"
#include "policy/connect_hook.h"
#include "policy/relay_rules.h"
#include "services/admin_server.h"
#include "services/api_auth.h"
#include "services/api_metrics.h"
#include "services/api_server.h"
#include "services/config.h"
#include "services/descriptor_limit.h"
#include "services/health.h"
#include "services/logging.h"
#include "services/metrics.h"
#include "services/version.h"
#include "switchboard/v1/bus.pb.h"

namespace {

using namespace switchboard;

struct Flags {
  std::string role;
  std::string nats_url;
  std::string edge_id;
  std::string broker_id;
  std::string grpc_listen = "127.0.0.1:50051";
  unsigned heartbeat_ms = 2000;
  unsigned edge_timeout_ms = 10000;
  size_t watch_queue_bytes = 16u << 20;
  std::string admin_listen = "127.0.0.1:9464";
  unsigned drain_window_ms = 5000;
  unsigned drain_grace_ms = 10000;
  uint64_t memory_limit_mb = 0;
  unsigned memory_trim_ms = 1000;
  unsigned memory_trim_min_drop = 1000;
  uint64_t bus_max_pending_mb = 64;
  services::ApiSecurityFlags api_flags;
  std::string tls_cert;  // the client listener's; both or neither
  std::string tls_key;
  services::ApiSecurity api_security;  // loaded from api_flags by main()
};

std::string UrlHost(const std::string& host) {
  return host.find(':') != std::string::npos ? absl::StrCat("[", host, "]") : host;
}

// A listener that could not start, named by the flag that chose its address: a second process on
// one host (a README cluster) otherwise meets a bare "cannot listen on 127.0.0.1:9464".
absl::Status ListenError(absl::string_view flag, const absl::Status& status) {
  std::string message = absl::StrCat(flag, ": ", status.message());
  if (absl::IsUnavailable(status)) {  // not a malformed address: most often, the port is taken
    absl::StrAppend(&message, " (every process on a host needs its own port: pass ", flag,
                    " HOST:PORT; port 0 picks a free one)");
  }
  return absl::Status(status.code(), message);
}

// Connects to NATS, retrying for a while: in a cluster the bus may come up
// after us.
absl::StatusOr<std::unique_ptr<bus::NatsBus>> ConnectNats(const std::string& url,
                                                          const std::string& name, bool no_echo,
                                                          uint64_t max_pending_bytes) {
  bus::NatsBus::Options options;
  options.urls = {url};
  options.name = name;
  options.no_echo = no_echo;
  options.max_pending_bytes = max_pending_bytes;
  absl::Status last;
  for (int attempt = 0; attempt < 30; ++attempt) {
    auto bus = bus::NatsBus::Connect(options);
    if (bus.ok()) return bus;
    last = bus.status();
    if (attempt == 0) spdlog::warn("NATS at {}: {} (retrying)", url, std::string(last.message()));
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  return last;
}

// The broker and its API on `bus`; prints "serving gRPC on HOST:PORT".
struct BrokerPart {
  std::unique_ptr<broker::Broker> broker;
  std::unique_ptr<services::ApiServer> api;
};

absl::StatusOr<BrokerPart> StartBrokerPart(bus::Bus& bus, const Flags& flags,
                                           const std::string& label, services::Metrics* metrics,
                                           std::function<bool()> deliveries_behind = nullptr) {
  auto listen = services::ParseListen(flags.grpc_listen);
  if (!listen.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--grpc-listen: ", listen.status().message()));
  }
  broker::BrokerOptions options;
  options.broker_id = flags.broker_id;
  options.edge_timeout = std::chrono::milliseconds(flags.edge_timeout_ms);
  BrokerPart part;
  auto started = broker::Broker::Start(bus, options);
  if (!started.ok()) return started.status();
  part.broker = std::move(*started);
  services::ApiServerOptions api_options;
  api_options.host = listen->first;
  api_options.port = listen->second;
  api_options.security = flags.api_security;
  api_options.max_watch_queue_bytes = flags.watch_queue_bytes;
  api_options.deliveries_behind = std::move(deliveries_behind);
  if (metrics != nullptr) api_options.make_interceptors = services::GrpcMetricsInterceptors(*metrics);
  auto api = services::ApiServer::Start(*part.broker, api_options);
  if (!api.ok()) return ListenError("--grpc-listen", api.status());
  part.api = std::move(*api);
  if (metrics != nullptr) metrics->AddCollector(services::BrokerCollector(*part.broker));
  std::cout << label << " serving gRPC on " << UrlHost(listen->first) << ":" << part.api->port()
            << std::endl;
  return part;
}

// The admin port: /metrics, /healthz, /readyz. Prints "admin on HOST:PORT".
absl::StatusOr<std::unique_ptr<services::AdminServer>> StartAdmin(const Flags& flags,
                                                                  services::Metrics& metrics,
                                                                  services::Health& health) {
  auto listen = services::ParseListen(flags.admin_listen);
  if (!listen.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--admin-listen: ", listen.status().message()));
  }
  metrics.AddCollector(services::HealthCollector(health));
  auto admin = services::AdminServer::Start(
      {.host = listen->first, .port = listen->second}, [&metrics] { return metrics.Serialize(); },
      [&health] { return health.Check(); });
  if (!admin.ok()) return ListenError("--admin-listen", admin.status());
  std::cout << "admin on " << UrlHost(listen->first) << ":" << (*admin)->port() << std::endl;
  return admin;
}

sigset_t StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

int RunBroker(const Flags& flags) {
  // Blocked before any thread starts, so every thread inherits the mask and
  // only sigwait below sees the signals.
  sigset_t stop_signals = StopSignals();
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  Flags resolved = flags;
  if (resolved.broker_id.empty()) resolved.broker_id = absl::StrCat("b", bus::RandomNodeId(10));
  auto nats = ConnectNats(flags.nats_url, absl::StrCat("switchboard-broker-", resolved.broker_id),
                          false, flags.bus_max_pending_mb << 20);
  if (!nats.ok()) {
    spdlog::error("cannot connect to NATS at {}: {}", flags.nats_url,
                  std::string(nats.status().message()));
    return 1;
  }
  services::Metrics metrics;
  metrics.AddCollector(services::BusCollector(**nats));
  services::Health health(nats->get(), flags.memory_limit_mb << 20);
  auto part = StartBrokerPart(**nats, resolved, absl::StrCat("switchboard broker ", resolved.broker_id),
                              &metrics);
  if (!part.ok()) {
    spdlog::error("broker: {}", std::string(part.status().message()));
    return 1;
  }
  services::ApiServer* api = part->api.get();
  health.Watch([api](bool ready) { api->SetServing(ready); });
  auto admin = StartAdmin(flags, metrics, health);
  if (!admin.ok()) {
    spdlog::error("{}", std::string(admin.status().message()));
    return 1;
  }
  int signo = 0;
  sigwait(&stop_signals, &signo);
  // Not ready (health NOT_SERVING), then in-flight calls finish within the grace period.
  spdlog::info("signal {}: draining (in-flight gRPC calls have {} ms)", signo, flags.drain_grace_ms);
  health.SetDraining();
  health.StopWatch();
  part->api->Shutdown(std::chrono::milliseconds(flags.drain_grace_ms));
  part->api.reset();
  part->broker.reset();
  return 0;
}

// An edge (role edge) or edge + broker (standalone) in this process.
int RunEdge(services::Config config, const Flags& flags) {
  bool standalone = flags.role == "standalone";
  std::string edge_id = flags.edge_id;
  if (edge_id.empty()) edge_id = standalone ? "local" : absl::StrCat("e", bus::RandomNodeId(10));
  if (!bus::ValidNodeId(edge_id)) {
    spdlog::error("--edge-id \"{}\": use 1-64 characters of [A-Za-z0-9_-]", edge_id);
    return 1;
  }

  std::unique_ptr<bus::Bus> bus;
  if (standalone) {
    bus::InProcessBus::Options options;
    options.max_pending_bytes = flags.bus_max_pending_mb << 20;
    bus = std::make_unique<bus::InProcessBus>(std::move(options));
  } else {
    auto nats = ConnectNats(flags.nats_url, absl::StrCat("switchboard-edge-", edge_id),
                            /*no_echo=*/true, flags.bus_max_pending_mb << 20);
    if (!nats.ok()) {
      spdlog::error("cannot connect to NATS at {}: {}", flags.nats_url,
                    std::string(nats.status().message()));
      return 1;
    }
    bus = std::move(*nats);
  }
  services::Metrics metrics;
  metrics.AddCollector(services::BusCollector(*bus));
  services::Health health(bus.get(), flags.memory_limit_mb << 20);

  edge::Runtime runtime(config.threads);
  sio::ServerOptions sio_options;
  sio_options.connect_timeout = config.connect_timeout;
  sio_options.limits = config.socket_limits;
  sio_options.decoder = config.decoder;
  sio_options.edge_id = edge_id;
  sio::Server server(runtime, config.engine, sio_options);

  cluster::Forwarder::Options forwarder_options;
  forwarder_options.edge_id = edge_id;
  forwarder_options.max_pending_acks = config.max_pending_acks;
  auto forwarder = cluster::Forwarder::Start(*bus, runtime, forwarder_options);
  if (!forwarder.ok()) {
    spdlog::error("forwarder: {}", std::string(forwarder.status().message()));
    return 1;
  }
  cluster::Forwarder* forward_to = forwarder->get();

  std::vector<std::shared_ptr<policy::RelayRules>> rules;
  std::vector<std::shared_ptr<policy::ConnectHook>> hooks;
  std::vector<std::shared_ptr<policy::ClientAuth>> authenticators;
  // Token query parameters: backends never see them.
  const std::vector<std::string> token_query = policy::TokenQueryParameters(config.namespaces);
  for (auto& ns_policy : config.namespaces) {
    spdlog::info("namespace {}: {} rule(s), rooms {} (max {} per socket), {}", ns_policy.name,
                 ns_policy.rules.size(), ns_policy.room_pattern, ns_policy.max_rooms_per_socket,
                 ns_policy.auth ? "JWT authentication" : "public");
    sio::Namespace& nsp = server.Of(ns_policy.name);  // before `ns_policy` is moved from
    nsp.SetLimits(ns_policy.limits);
    if (ns_policy.auth) {
      auto authenticator = policy::ClientAuth::Create(
          *ns_policy.auth, absl::StrCat("namespaces[\"", ns_policy.name, "\"].auth"));
      if (!authenticator.ok()) {
        spdlog::error("{}", std::string(authenticator.status().message()));
        return 1;
      }
      (*authenticator)->Install(nsp);  // first: the other middlewares see the user
      authenticators.push_back(std::move(*authenticator));
    }
    policy::RelayRules::ForwardFn forward;
    if (ns_policy.forward) {
      spdlog::info("namespace {}: forwards {} to backends", ns_policy.name,
                   ns_policy.forward->events
                       ? absl::StrCat(ns_policy.forward->events->size(), " event(s)")
                       : std::string("every event"));
      forward = [forward_to, forward_policy = *ns_policy.forward](
                    sio::Socket& socket, std::string_view event, const policy::Json& args,
                    sio::Ack ack) {
        forward_to->Forward(socket, event, args, forward_policy, std::move(ack));
      };
    }
    std::optional<policy::ConnectHookSpec> hook_spec = ns_policy.connect_hook;
    rules.push_back(policy::RelayRules::Install(nsp, std::move(ns_policy), std::move(forward)));
    if (hook_spec) {
      // After authentication and userIdFromAuth: the hook sees (and may
      // replace) the user id.
      spdlog::info("namespace {}: connect hook {} (timeout {} ms, on failure {})", nsp.name(),
                   hook_spec->address, hook_spec->timeout.count(),
                   hook_spec->allow_on_failure ? "allow" : "reject");
      auto hook = policy::ConnectHook::Create(*hook_spec, edge_id, token_query);
      if (!hook.ok()) {
        spdlog::error("namespaces[\"{}\"].connectHook: {}", nsp.name(),
                      std::string(hook.status().message()));
        return 1;
      }
      (*hook)->Install(nsp);
      hooks.push_back(std::move(*hook));
    }
  }

  cluster::EdgeLink::Options link_options;
  link_options.edge_id = edge_id;
  link_options.heartbeat_interval = std::chrono::milliseconds(flags.heartbeat_ms);
  link_options.relay_broadcasts = !standalone;  // one edge: nobody to relay to
  link_options.decorate_heartbeat = [forward_to](v1::Heartbeat& heartbeat) {
    forward_to->FillStats(heartbeat.mutable_forward());
  };
  link_options.version = std::string(services::Version());
  link_options.started_at = std::chrono::system_clock::now();
  auto link = cluster::EdgeLink::Start(*bus, server, link_options);
  if (!link.ok()) {
    spdlog::error("edge link: {}", std::string(link.status().message()));
    return 1;
  }

  std::optional<BrokerPart> broker_part;
  if (standalone) {
    // A PublishStream waits while this many deliveries are queued on the
    // shards (each holds its encoded frame until written): the edge in this
    // process bounds what a fast publisher can pile up.
    // Or while half the bus's byte bound is taken (large publishes), before
    // the bus has to drop.
    constexpr size_t kMaxQueuedDeliveries = 256;
    const uint64_t max_pending_bytes = (flags.bus_max_pending_mb << 20) / 2;
    auto behind = [&server, &bus, max_pending_bytes] {
      size_t queued = 0;
      for (const auto& nsp : server.namespaces()) queued += nsp->QueuedDeliveries();
      return queued >= kMaxQueuedDeliveries ||
             (max_pending_bytes != 0 && bus->stats().pending_bytes >= max_pending_bytes);
    };
    auto part = StartBrokerPart(*bus, flags, "switchboard standalone", &metrics, behind);
    if (!part.ok()) {
      spdlog::error("{}", std::string(part.status().message()));
      return 1;
    }
    broker_part = std::move(*part);
    services::ApiServer* api = broker_part->api.get();
    health.Watch([api](bool ready) { api->SetServing(ready); });
    // The link's first heartbeat went out before the broker listened: the
    // edge is in ListEdges / GetStats now rather than one period later.
    (*link)->Heartbeat();
  }

  edge::HttpOptions http_options = config.http;
  http_options.host = config.host;
  http_options.port = config.port;
  if (!flags.tls_cert.empty()) {
    auto tls = edge::LoadServerTls(flags.tls_cert, flags.tls_key);
    if (!tls.ok()) {
      spdlog::error("{}", std::string(tls.status().message()));
      return 1;
    }
    http_options.tls = *std::move(tls);
  }
  edge::HttpServer http(runtime, http_options);
  http.Mount(config.path, server.engine());
  if (config.page) {
    // Read once here: requests never touch the file system.
    for (auto [url, file, type] :
         {std::tuple{&config.page->path, &config.page->file, "text/html; charset=UTF-8"},
          std::tuple{&config.page->client_path, &config.page->client_file,
                     "text/javascript; charset=UTF-8"}}) {
      std::ifstream in(*file, std::ios::binary);
      std::ostringstream body;
      body << in.rdbuf();
      if (!in || in.bad()) {
        spdlog::error("page: cannot read {} (for {})", *file, *url);
        return 1;
      }
      http.ServeFile(*url, edge::StaticFile{type, body.str()});
    }
    spdlog::info("serving the page at {} (and {})", config.page->path, config.page->client_path);
  }
  metrics.AddCollector(services::EdgeCollector(server, &http));
  metrics.AddCollector(services::LatencyCollector(
      "switchboard_publish_deliver_latency_seconds",
      "From a publish leaving the broker (or a relaying edge) to this edge handing it to its "
      "local recipients, once per delivery.",
      (*link)->delivery_latency()));
  metrics.AddCollector(services::SocketsByTransportCollector((*link)->journal()));
  metrics.AddCollector([&authenticators](std::vector<prometheus::MetricFamily>& out) {
    auto family = services::CounterFamily("switchboard_auth_total",
                                          "Client authentications (JWT), by result.");
    uint64_t accepted = 0, rejected = 0;
    for (const auto& a : authenticators) {
      accepted += a->accepted();
      rejected += a->rejected();
    }
    services::AddSample(family, static_cast<double>(accepted), {{"result", "accepted"}});
    services::AddSample(family, static_cast<double>(rejected), {{"result", "rejected"}});
    out.push_back(std::move(family));
  });
  // Memory that departed connections freed goes back to the system after a
  // large drop in sessions (edge/memory_release.h).
  edge::MemoryRelease memory_release({.period = std::chrono::milliseconds(flags.memory_trim_ms),
                                      .min_drop = flags.memory_trim_min_drop},
                                     [&server] { return server.engine().SessionCount(); });
  metrics.AddCollector([&memory_release](std::vector<prometheus::MetricFamily>& out) {
    services::AppendCounter(out, "switchboard_memory_trims_total",
                            "malloc_trim calls after a large drop in sessions.",
                            static_cast<double>(memory_release.trims()));
    services::AppendCounter(out, "switchboard_memory_trim_seconds_total",
                            "Time spent in those malloc_trim calls.",
                            std::chrono::duration<double>(memory_release.trim_time()).count());
  });
  auto admin = StartAdmin(flags, metrics, health);
  if (!admin.ok()) {
    spdlog::error("{}", std::string(admin.status().message()));
    return 1;
  }

  // Registered before any thread runs, so an early signal is not lost.
  boost::asio::signal_set signals(runtime.context(0), SIGINT, SIGTERM);
  boost::asio::steady_timer stop_timer(runtime.context(0));
  std::chrono::steady_clock::time_point drain_deadline;
  std::chrono::steady_clock::time_point flush_deadline;
  std::function<void()> wait_drained;
  // Every 50 ms: stop once the last session has gone (its close written, its
  // rooms left on the bus), or once every session has been told to go and
  // kFlushMargin has passed (a closing polling session may wait for a GET that
  // a client already gone never sends), or at the grace deadline.
  constexpr auto kFlushMargin = std::chrono::milliseconds(300);
  wait_drained = [&] {
    const size_t left = server.engine().SessionCount();
    const eio::Server::Stats stats = server.engine().stats();
    uint64_t closed = 0;
    for (uint64_t n : stats.closes) closed += n;
    const bool all_told = closed >= stats[eio::Server::Counter::kHandshakesPolling] +
                                        stats[eio::Server::Counter::kHandshakesWebSocket];
    const auto now = std::chrono::steady_clock::now();
    if (!all_told) flush_deadline = now + kFlushMargin;
    if (left == 0 || now >= drain_deadline || now >= flush_deadline) {
      if (left > 0 && !all_told) {
        spdlog::warn("drain: grace period over with {} session(s) left", left);
      }
      spdlog::info("drained: stopping");
      (*link)->Heartbeat(/*draining=*/true);
      return runtime.Stop();
    }
    stop_timer.expires_after(std::chrono::milliseconds(50));
    stop_timer.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) wait_drained();
    });
  };
  signals.async_wait([&](const boost::system::error_code& ec, int signo) {
    if (ec) return;
    // Drain: not ready, no new connections, brokers told, then clients told
    // to reconnect (an Engine.IO close: official clients reconnect, to
    // another edge) spread over the window so they do not all come back at
    // once; then wait for the sessions to finish, within the grace period.
    spdlog::info("signal {}: draining {} session(s) over {} ms", signo,
                 server.engine().SessionCount(), flags.drain_window_ms);
    health.SetDraining();
    http.Close();
    (*link)->Heartbeat(/*draining=*/true);
    server.engine().CloseSpread(std::chrono::milliseconds(flags.drain_window_ms));
    drain_deadline = std::chrono::steady_clock::now() +
                     std::chrono::milliseconds(std::max(flags.drain_grace_ms, flags.drain_window_ms));
    flush_deadline = std::chrono::steady_clock::now() +
                     std::chrono::milliseconds(flags.drain_window_ms) + kFlushMargin;
    stop_timer.expires_after(std::chrono::milliseconds(flags.drain_window_ms));
    stop_timer.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) wait_drained();
    });
  });

  absl::Status listening = http.Listen();
  if (!listening.ok()) {
    spdlog::error("{}", std::string(ListenError("--listen", listening).message()));
    return 1;
  }
  runtime.Start();

  std::string label = standalone ? "switchboard standalone" : absl::StrCat("switchboard edge ", edge_id);
  std::cout << label << " listening on " << (http_options.tls ? "https://" : "http://")
            << UrlHost(config.host) << ":" << http.port()
            << std::endl;  // endl flushes: scripts wait for this line
  spdlog::info("serving {} on {} thread(s)", config.path, runtime.size());

  runtime.Join();
  admin->reset();  // its collectors read the server
  health.StopWatch();
  if (broker_part) {
    broker_part->api->Shutdown(std::chrono::milliseconds(1000));
    broker_part->api.reset();
    broker_part->broker.reset();
  }
  for (const auto& hook : hooks) hook->Stop();
  link->reset();  // the runtime has stopped: no more observer calls
  forwarder->reset();
  uint64_t ignored = 0;
  for (const auto& r : rules) ignored += r->ignored_events();
  spdlog::info("stopped ({} event(s) ignored: no rule)", ignored);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"switchboard: a Socket.IO v5 / Engine.IO v4 real-time broker", "switchboard"};
  Flags flags;
  std::string config_file;
  std::string listen;
  std::optional<unsigned> threads;
  std::string log_level;
  app.add_option("role", flags.role,
                 "what to run: standalone (edge + broker in one process), edge, or broker")
      ->required()
      ->check(CLI::IsMember({"standalone", "edge", "broker"}));
  app.add_option("--config", config_file, "JSON configuration file (see services/CONFIG.md)")
      ->check(CLI::ExistingFile);
  app.add_option("--listen", listen,
                 "HOST:PORT to listen on (overrides the config; default 127.0.0.1:3000; "
                 "port 0 picks a free one)");
  app.add_option("--threads", threads, "I/O threads (0: one per core; overrides the config)")
      ->check(CLI::Range(0u, 1024u));
  app.add_option("--log-level", log_level,
                 "trace, debug, info, warn, error, critical, off (overrides the config)")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.add_option("--nats", flags.nats_url, "NATS server URL, e.g. nats://127.0.0.1:4222 (edge, broker)");
  app.add_option("--edge-id", flags.edge_id,
                 "this edge's id, [A-Za-z0-9_-]{1,64} (default: random; standalone: local)");
  app.add_option("--broker-id", flags.broker_id, "this broker's id (default: random)");
  app.add_option("--grpc-listen", flags.grpc_listen,
                 "HOST:PORT of the gRPC API (broker, standalone; default 127.0.0.1:50051)");
  app.add_option("--api-token-file", flags.api_flags.token_file,
                 "gRPC API bearer tokens, one per line (# comments; at least 16 characters each)");
  app.add_option("--api-token-env", flags.api_flags.token_env,
                 "name of an environment variable holding gRPC API bearer tokens, comma-separated");
  app.add_option("--api-tls-cert", flags.api_flags.tls_cert,
                 "PEM certificate chain: serve the gRPC API over TLS (with --api-tls-key)");
  app.add_option("--api-tls-key", flags.api_flags.tls_key, "PEM private key of --api-tls-cert");
  app.add_option("--api-tls-client-ca", flags.api_flags.tls_client_ca,
                 "PEM CA certificates: mutual TLS, clients present a certificate signed by them");
  app.add_option("--tls-cert", flags.tls_cert,
                 "PEM certificate chain: serve clients over HTTPS / WSS (with --tls-key; edge, "
                 "standalone)")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", flags.tls_key, "PEM private key of --tls-cert")
      ->check(CLI::ExistingFile);
  app.add_option("--heartbeat-ms", flags.heartbeat_ms, "edge heartbeat period (default 2000)")
      ->check(CLI::Range(50u, 60000u));
  app.add_option("--edge-timeout-ms", flags.edge_timeout_ms,
                 "broker: drop an edge not heard from for this long (default 10000)")
      ->check(CLI::Range(100u, 600000u));
  app.add_option("--watch-queue-bytes", flags.watch_queue_bytes,
                 "broker: bytes a WatchEvents caller may fall behind before its stream is ended "
                 "(default 16777216)")
      ->check(CLI::Range(size_t{1} << 16, size_t{1} << 40));
  app.add_option("--admin-listen", flags.admin_listen,
                 "HOST:PORT of the admin HTTP port: /metrics, /healthz, /readyz "
                 "(default 127.0.0.1:9464; port 0 picks a free one)");
  app.add_option("--drain-window-ms", flags.drain_window_ms,
                 "edge, on SIGTERM: spread the clients' disconnects over this long (default 5000)")
      ->check(CLI::Range(0u, 3600000u));
  app.add_option("--drain-grace-ms", flags.drain_grace_ms,
                 "on SIGTERM: exit at the latest this long after the signal (edge: at least the "
                 "window; broker: in-flight gRPC calls' time; default 10000)")
      ->check(CLI::Range(0u, 3600000u));
  app.add_option("--memory-limit-mb", flags.memory_limit_mb,
                 "not ready (/readyz 503, gRPC health NOT_SERVING) while the resident memory is "
                 "over this many MiB (default 0: no limit)");
  app.add_option("--memory-trim-ms", flags.memory_trim_ms,
                 "edge, standalone: look this often whether the sessions dropped enough to hand "
                 "freed memory back to the system (malloc_trim; default 1000, 0: never)")
      ->check(CLI::Range(0u, 3600000u));
  app.add_option("--memory-trim-min-drop", flags.memory_trim_min_drop,
                 "edge, standalone: trim when the sessions fell to half and by at least this many "
                 "since the last trim (default 1000)")
      ->check(CLI::Range(1u, 100000000u));
  app.add_option("--bus-max-pending-mb", flags.bus_max_pending_mb,
                 "MiB of bus messages this process may have queued between the bus and its "
                 "threads (edge: until every I/O thread took the delivery); past it messages are "
                 "dropped and counted, switchboard_bus_errors_total{op=\"queue_full\"} "
                 "(default 64, 0: no bound)")
      ->check(CLI::Range(uint64_t{0}, uint64_t{1} << 20));
  std::string log_format = "text";
  app.add_option("--log-format", log_format, "text (default) or json: one JSON object per line")
      ->check(CLI::IsMember({"text", "json"}));
  app.set_version_flag("--version", std::string(services::Version()));
  CLI11_PARSE(app, argc, argv);

  services::SetUpLogging(log_format == "json" ? services::LogFormat::kJson
                                              : services::LogFormat::kText);
  spdlog::info("switchboard {} ({})", std::string(services::Version()), flags.role);

  if (flags.role != "standalone" && flags.nats_url.empty()) {
    std::cerr << "switchboard " << flags.role << ": --nats URL is required\n";
    return 2;
  }
  // The API's security, checked before anything connects or listens.
  const bool api_flags_given = !flags.api_flags.token_file.empty() ||
                               !flags.api_flags.token_env.empty() ||
                               !flags.api_flags.tls_cert.empty() ||
                               !flags.api_flags.tls_key.empty() ||
                               !flags.api_flags.tls_client_ca.empty();
  if (flags.role == "edge" && api_flags_given) {
    std::cerr << "switchboard edge: the --api-* options apply to broker and standalone\n";
    return 2;
  }
  if (flags.role != "edge") {
    auto api_listen = services::ParseListen(flags.grpc_listen);
    if (!api_listen.ok()) {
      std::cerr << "switchboard: --grpc-listen: " << api_listen.status().message() << "\n";
      return 1;
    }
    auto security = services::LoadApiSecurity(flags.api_flags);
    if (!security.ok()) {
      std::cerr << "switchboard: " << security.status().message() << "\n";
      return 1;
    }
    flags.api_security = *std::move(security);
    if (auto exposure = services::CheckApiExposure(api_listen->first, flags.api_security);
        !exposure.ok()) {
      std::cerr << "switchboard: refusing to start: " << exposure.message() << "\n";
      return 1;
    }
    if (!flags.api_security.authenticated()) {
      spdlog::warn("the gRPC API on {} is unauthenticated (allowed on loopback only); "
                   "--api-token-file, --api-token-env or --api-tls-client-ca require clients "
                   "to authenticate",
                   flags.grpc_listen);
    }
    spdlog::info("gRPC API {}", flags.api_security.Describe());
  }
  if (flags.tls_cert.empty() != flags.tls_key.empty()) {
    std::cerr << "switchboard: --tls-cert and --tls-key go together\n";
    return 2;
  }
  if (flags.role == "broker" && !flags.tls_cert.empty()) {
    std::cerr << "switchboard broker: --tls-cert/--tls-key are for the client listener "
                 "(edge, standalone); the API's are --api-tls-*\n";
    return 2;
  }
  // Every role: as many descriptors as the hard limit allows.
  const services::DescriptorLimit nofile = services::RaiseDescriptorLimit();
  if (flags.role == "broker") {
    if (!log_level.empty()) spdlog::set_level(spdlog::level::from_str(log_level));
    return RunBroker(flags);
  }

  absl::StatusOr<services::Config> config =
      config_file.empty() ? services::ParseConfig("{}") : services::LoadConfig(config_file);
  if (!config.ok()) {
    std::cerr << "switchboard: " << config.status().message() << "\n";
    return 1;
  }
  if (!listen.empty()) {
    auto hp = services::ParseListen(listen);
    if (!hp.ok()) {
      std::cerr << "switchboard: --listen: " << hp.status().message() << "\n";
      return 1;
    }
    config->host = hp->first;
    config->port = hp->second;
  }
  if (threads) config->threads = *threads;
  if (!log_level.empty()) config->log_level = log_level;
  spdlog::set_level(spdlog::level::from_str(config->log_level));
  if (const uint64_t needed =
          services::DescriptorsNeeded(config->engine.max_connections, !flags.tls_cert.empty());
      needed > nofile.soft) {
    // Past the limit a connection is refused (and counted), never a crash;
    // still, limits.maxConnections is then not what the edge can hold.
    spdlog::warn(
        "open-file limit (RLIMIT_NOFILE) is {} (hard {}), but limits.maxConnections {} "
        "needs about {} descriptors ({} per connection{} plus {}): raise it (ulimit -n, "
        "systemd LimitNOFILE=, docker --ulimit nofile=N:N) or lower maxConnections",
        nofile.soft, nofile.hard, config->engine.max_connections, needed,
        flags.tls_cert.empty() ? services::kDescriptorsPerConnection
                               : services::kDescriptorsPerTlsConnection,
        flags.tls_cert.empty() ? "" : " with --tls-cert", services::kDescriptorReserve);
  }
  // As the reference server, no origin list accepts every Origin. Off loopback that lets any web
  // page a user visits open a WebSocket here with the user's cookies.
  if (config->engine.cors.origins.empty() && !services::IsLoopbackHost(config->host)) {
    spdlog::warn(
        "listening on {} with no engine.cors.origins: a WebSocket upgrade from any Origin "
        "is accepted, so any web page can connect its visitors (with their cookies); "
        "list your pages' origins (services/CONFIG.md)",
        UrlHost(config->host));
  }

  try {
    return RunEdge(std::move(*config), flags);
  } catch (const std::exception& e) {
    spdlog::critical("fatal: {}", e.what());
    return 1;
  }
}
