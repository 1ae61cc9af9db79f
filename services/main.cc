// switchboard — the server binary.
//
//   switchboard standalone [--config FILE] [--listen HOST:PORT] [--grpc-listen HOST:PORT]
//   switchboard edge --nats URL [--edge-id ID] [--config FILE] [--listen HOST:PORT]
//   (edge, standalone: --tls-cert FILE --tls-key FILE serve HTTPS / WSS)
//   switchboard broker --nats URL [--grpc-listen HOST:PORT] [--broker-id ID]
//   switchboard hash-password < password   (prints the bcrypt hash for adminUi.auth.passwordHash)
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
//
// This file reads the command line; the roles are services/edge_process.h
// (edge, standalone) and services/broker_process.h (broker).

#include <spdlog/spdlog.h>
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdint>
#include <exception>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "admin_ui/password_hash.h"
#include "edge/uring_sends.h"
#include "services/api_auth.h"
#include "services/broker_process.h"
#include "services/config.h"
#include "services/descriptor_limit.h"
#include "services/edge_process.h"
#include "services/logging.h"
#include "services/process.h"
#include "services/version.h"

namespace {

using namespace switchboard;
using services::ProcessFlags;
using services::UrlHost;

// The command line: the process's flags and what main alone reads.
struct CommandLine {
  ProcessFlags flags;
  std::string config_file;
  std::string listen;
  std::optional<unsigned> threads;
  std::string log_level;
  std::string log_format = "text";
};

// The role, the config file and what overrides it, the cluster's ids and addresses.
void AddRoleFlags(CLI::App& app, CommandLine& cli) {
  app.add_option("role", cli.flags.role,
                 "what to run: standalone (edge + broker in one process), edge, or broker; or "
                 "hash-password: read a password from stdin, print its bcrypt hash (for "
                 "adminUi.auth.passwordHash)")
      ->required()
      ->check(CLI::IsMember({"standalone", "edge", "broker", "hash-password"}));
  app.add_option("--config", cli.config_file, "JSON configuration file (see services/CONFIG.md)")
      ->check(CLI::ExistingFile);
  app.add_option("--listen", cli.listen,
                 "HOST:PORT to listen on (overrides the config; default 127.0.0.1:3000; "
                 "port 0 picks a free one)");
  app.add_option("--threads", cli.threads, "I/O threads (0: one per core; overrides the config)")
      ->check(CLI::Range(0u, 1024u));
  app.add_option("--log-level", cli.log_level,
                 "trace, debug, info, warn, error, critical, off (overrides the config)")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.add_option("--nats", cli.flags.nats_url,
                 "NATS server URL, e.g. nats://127.0.0.1:4222 (edge, broker)");
  app.add_option("--edge-id", cli.flags.edge_id,
                 "this edge's id, [A-Za-z0-9_-]{1,64} (default: random; standalone: local)");
  app.add_option("--broker-id", cli.flags.broker_id, "this broker's id (default: random)");
  app.add_option("--grpc-listen", cli.flags.grpc_listen,
                 "HOST:PORT of the gRPC API (broker, standalone; default 127.0.0.1:50051)");
}

// The gRPC API's security and the client listener's TLS.
void AddSecurityFlags(CLI::App& app, CommandLine& cli) {
  app.add_option("--api-token-file", cli.flags.api_flags.token_file,
                 "gRPC API bearer tokens, one per line (# comments; at least 16 characters each)");
  app.add_option("--api-token-env", cli.flags.api_flags.token_env,
                 "name of an environment variable holding gRPC API bearer tokens, comma-separated");
  app.add_option("--api-tls-cert", cli.flags.api_flags.tls_cert,
                 "PEM certificate chain: serve the gRPC API over TLS (with --api-tls-key)");
  app.add_option("--api-tls-key", cli.flags.api_flags.tls_key, "PEM private key of --api-tls-cert");
  app.add_option("--api-tls-client-ca", cli.flags.api_flags.tls_client_ca,
                 "PEM CA certificates: mutual TLS, clients present a certificate signed by them");
  app.add_option("--tls-cert", cli.flags.tls_cert,
                 "PEM certificate chain: serve clients over HTTPS / WSS (with --tls-key; edge, "
                 "standalone)")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", cli.flags.tls_key, "PEM private key of --tls-cert")
      ->check(CLI::ExistingFile);
}

// Timings, drain, memory, bus bounds, logs.
void AddOperationFlags(CLI::App& app, CommandLine& cli) {
  app.add_option("--heartbeat-ms", cli.flags.heartbeat_ms, "edge heartbeat period (default 1000)")
      ->check(CLI::Range(50u, 60000u));
  app.add_option("--edge-timeout-ms", cli.flags.edge_timeout_ms,
                 "broker: drop an edge not heard from for this long (default 5000; "
                 "sooner when its heartbeats are late and NATS says its connection is closed)")
      ->check(CLI::Range(100u, 600000u));
  app.add_option("--jetstream-replicas", cli.flags.jetstream_replicas,
                 "edge: replicas of the JetStream streams and buckets it creates for "
                 "connection state recovery (default 1; 3 on a 3-node NATS cluster)")
      ->check(CLI::Range(1, 5));
  app.add_option("--jetstream-storage", cli.flags.jetstream_storage,
                 "edge: storage of those streams and buckets, file or memory (default file: "
                 "they survive a NATS restart)")
      ->check(CLI::IsMember({"file", "memory"}));
  app.add_option("--watch-queue-bytes", cli.flags.watch_queue_bytes,
                 "broker: bytes a WatchEvents caller may fall behind before its stream is ended "
                 "(default 16777216)")
      ->check(CLI::Range(size_t{1} << 16, size_t{1} << 40));
  app.add_option("--admin-listen", cli.flags.admin_listen,
                 "HOST:PORT of the admin HTTP port: /metrics, /healthz, /readyz "
                 "(default 127.0.0.1:9464; port 0 picks a free one)");
  app.add_option("--drain-window-ms", cli.flags.drain_window_ms,
                 "edge, on SIGTERM: spread the clients' disconnects over this long (default 5000)")
      ->check(CLI::Range(0u, 3600000u));
  app.add_option("--drain-grace-ms", cli.flags.drain_grace_ms,
                 "on SIGTERM: exit at the latest this long after the signal (edge: at least the "
                 "window; broker: in-flight gRPC calls' time; default 10000)")
      ->check(CLI::Range(0u, 3600000u));
  app.add_option("--memory-limit-mb", cli.flags.memory_limit_mb,
                 "not ready (/readyz 503, gRPC health NOT_SERVING) while the resident memory is "
                 "over this many MiB (default 0: no limit)");
  app.add_option("--memory-trim-ms", cli.flags.memory_trim_ms,
                 "edge, standalone: look this often whether the sessions dropped enough to hand "
                 "freed memory back to the system (malloc_trim; default 1000, 0: never)")
      ->check(CLI::Range(0u, 3600000u));
  app.add_option("--memory-trim-min-drop", cli.flags.memory_trim_min_drop,
                 "edge, standalone: trim when the sessions fell to half and by at least this many "
                 "since the last trim (default 1000)")
      ->check(CLI::Range(1u, 100000000u));
  app.add_option("--bus-max-pending-mb", cli.flags.bus_max_pending_mb,
                 "MiB of bus messages this process may have queued between the bus and its "
                 "threads (edge: until every I/O thread took the delivery); past it messages are "
                 "dropped and counted, switchboard_bus_errors_total{op=\"queue_full\"} "
                 "(default 64, 0: no bound)")
      ->check(CLI::Range(uint64_t{0}, uint64_t{1} << 20));
  app.add_option("--log-format", cli.log_format, "text (default) or json: one JSON object per line")
      ->check(CLI::IsMember({"text", "json"}));
  app.add_flag("--io-uring,!--no-io-uring", cli.flags.io_uring,
               "edge, standalone: hand a delivery's writes to the kernel through one io_uring per "
               "I/O thread, a few system calls for thousands of clients (default on; off, or "
               "where the kernel or a seccomp profile refuses io_uring: one send() each)");
}

// The API's security, checked before anything connects or listens: the exit
// status when it refuses, nullopt to go on (flags.api_security loaded).
std::optional<int> CheckApiSecurity(ProcessFlags& flags) {
  const bool api_flags_given =
      !flags.api_flags.token_file.empty() || !flags.api_flags.token_env.empty() ||
      !flags.api_flags.tls_cert.empty() || !flags.api_flags.tls_key.empty() ||
      !flags.api_flags.tls_client_ca.empty();
  if (flags.role == "edge" && api_flags_given) {
    std::cerr << "switchboard edge: the --api-* options apply to broker and standalone\n";
    return 2;
  }
  if (flags.role == "edge") return std::nullopt;
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
    spdlog::warn(
        "the gRPC API on {} is unauthenticated (allowed on loopback only); "
        "--api-token-file, --api-token-env or --api-tls-client-ca require clients "
        "to authenticate",
        flags.grpc_listen);
  }
  spdlog::info("gRPC API {}", flags.api_security.Describe());
  return std::nullopt;
}

// Flags that cannot work together: the exit status, or nullopt to go on.
std::optional<int> CheckFlags(ProcessFlags& flags) {
  if (flags.role != "standalone" && flags.nats_url.empty()) {
    std::cerr << "switchboard " << flags.role << ": --nats URL is required\n";
    return 2;
  }
  if (std::optional<int> refused = CheckApiSecurity(flags)) return refused;
  if (flags.tls_cert.empty() != flags.tls_key.empty()) {
    std::cerr << "switchboard: --tls-cert and --tls-key go together\n";
    return 2;
  }
  if (flags.role == "broker" && !flags.tls_cert.empty()) {
    std::cerr << "switchboard broker: --tls-cert/--tls-key are for the client listener "
                 "(edge, standalone); the API's are --api-tls-*\n";
    return 2;
  }
  return std::nullopt;
}

// The config file (or the defaults) with the command line's overrides.
absl::StatusOr<services::Config> LoadEdgeConfig(const CommandLine& cli) {
  absl::StatusOr<services::Config> config =
      cli.config_file.empty() ? services::ParseConfig("{}") : services::LoadConfig(cli.config_file);
  if (!config.ok()) return config.status();
  if (!cli.listen.empty()) {
    auto hp = services::ParseListen(cli.listen);
    if (!hp.ok()) {
      return absl::Status(hp.status().code(), absl::StrCat("--listen: ", hp.status().message()));
    }
    config->host = hp->first;
    config->port = hp->second;
  }
  if (cli.threads) config->threads = *cli.threads;
  if (!cli.log_level.empty()) config->log_level = cli.log_level;
  return config;
}

// What the configuration allows that the host or the network may not.
void WarnAboutConfig(const services::Config& config, const ProcessFlags& flags,
                     const services::DescriptorLimit& nofile) {
  if (const uint64_t needed =
          services::DescriptorsNeeded(config.engine.max_connections, !flags.tls_cert.empty());
      needed > nofile.soft) {
    // Past the limit a connection is refused (and counted), never a crash;
    // still, limits.maxConnections is then not what the edge can hold.
    spdlog::warn(
        "open-file limit (RLIMIT_NOFILE) is {} (hard {}), but limits.maxConnections {} "
        "needs about {} descriptors ({} per connection{} plus {}): raise it (ulimit -n, "
        "systemd LimitNOFILE=, docker --ulimit nofile=N:N) or lower maxConnections",
        nofile.soft, nofile.hard, config.engine.max_connections, needed,
        flags.tls_cert.empty() ? services::kDescriptorsPerConnection
                               : services::kDescriptorsPerTlsConnection,
        flags.tls_cert.empty() ? "" : " with --tls-cert", services::kDescriptorReserve);
  }
  // As the reference server, no origin list accepts every Origin. Off loopback that lets any web
  // page a user visits open a WebSocket here with the user's cookies.
  if (config.engine.cors.origins.empty() && !services::IsLoopbackHost(config.host)) {
    spdlog::warn(
        "listening on {} with no engine.cors.origins: a WebSocket upgrade from any Origin "
        "is accepted, so any web page can connect its visitors (with their cookies); "
        "list your pages' origins (services/CONFIG.md)",
        UrlHost(config.host));
  }
}

// `switchboard hash-password`: one line from stdin (not echoed on a terminal), its bcrypt hash on
// stdout, nothing else there, so that `switchboard hash-password < file` can feed a config.
int RunHashPassword() {
  const bool terminal = ::isatty(STDIN_FILENO) == 1;
  termios saved{};
  if (terminal && ::tcgetattr(STDIN_FILENO, &saved) == 0) {
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    std::cerr << "password: " << std::flush;
  }
  std::string password;
  const bool read = static_cast<bool>(std::getline(std::cin, password));
  if (terminal) {
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
    std::cerr << "\n";
  }
  if (!password.empty() && password.back() == '\r') password.pop_back();
  if (!read || password.empty()) {
    std::cerr << "switchboard hash-password: no password on stdin (one line, not empty)\n";
    return 1;
  }
  absl::StatusOr<std::string> hash = admin_ui::HashPassword(password);
  if (!hash.ok()) {
    std::cerr << "switchboard hash-password: " << hash.status().message() << "\n";
    return 1;
  }
  std::cout << *hash << "\n";
  return 0;
}

int RunBroker(const ProcessFlags& flags) {
  // Blocked before any thread starts, so every thread inherits the mask and
  // only the process's sigwait sees the signals.
  const sigset_t stop_signals = services::BrokerProcess::BlockStopSignals();
  auto process = services::BrokerProcess::Start(flags);
  if (!process.ok()) {
    spdlog::error("{}", std::string(process.status().message()));
    return 1;
  }
  (*process)->Run(stop_signals);
  return 0;
}

// An edge (role edge) or edge + broker (standalone) in this process.
int RunEdge(services::Config config, const ProcessFlags& flags) {
  auto process = services::EdgeProcess::Create(std::move(config), flags);
  if (!process.ok()) {
    spdlog::error("{}", std::string(process.status().message()));
    return 1;
  }
  if (absl::Status ran = (*process)->Run(); !ran.ok()) {
    spdlog::error("{}", std::string(ran.message()));
    return 1;
  }
  const uint64_t ignored = (*process)->ignored_events();
  process->reset();  // the teardown: the process's members, bottom-up
  spdlog::info("stopped ({} event(s) ignored: no rule)", ignored);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"switchboard: a Socket.IO v5 / Engine.IO v4 real-time broker", "switchboard"};
  CommandLine cli;
  AddRoleFlags(app, cli);
  AddSecurityFlags(app, cli);
  AddOperationFlags(app, cli);
  app.set_version_flag("--version", std::string(services::Version()));
  CLI11_PARSE(app, argc, argv);
  if (cli.flags.role == "hash-password") return RunHashPassword();  // before logging: stdout clean

  services::SetUpLogging(cli.log_format == "json" ? services::LogFormat::kJson
                                                  : services::LogFormat::kText);
  spdlog::info("switchboard {} ({})", std::string(services::Version()), cli.flags.role);
  if (std::optional<int> exit_status = CheckFlags(cli.flags)) return *exit_status;
  // Every role: as many descriptors as the hard limit allows.
  const services::DescriptorLimit nofile = services::RaiseDescriptorLimit();
  if (cli.flags.role == "broker") {
    if (!cli.log_level.empty()) spdlog::set_level(spdlog::level::from_str(cli.log_level));
    return RunBroker(cli.flags);
  }

  absl::StatusOr<services::Config> config = LoadEdgeConfig(cli);
  if (!config.ok()) {
    std::cerr << "switchboard: " << config.status().message() << "\n";
    return 1;
  }
  spdlog::set_level(spdlog::level::from_str(config->log_level));
  WarnAboutConfig(*config, cli.flags, nofile);
  if (cli.flags.io_uring) {
    if (absl::Status uring = edge::UringSends::Probe(); !uring.ok()) {
      spdlog::warn("io_uring is not available ({}): one send() per write",
                   std::string(uring.message()));
    } else {
      edge::UringSends::Enable(true);
    }
  }
  try {
    return RunEdge(std::move(*config), cli.flags);
  } catch (const std::exception& e) {
    spdlog::critical("fatal: {}", e.what());
    return 1;
  }
}
