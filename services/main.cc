// switchboard — the server binary.
//
//   switchboard standalone [--config FILE] [--listen HOST:PORT] [--threads N]
//
// `standalone` serves Socket.IO with the configured namespaces and relay
// rules in one process. `edge` and `broker` are not implemented yet.

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "edge/http/server.h"
#include "edge/runtime.h"
#include "edge/socketio/server.h"
#include "services/config.h"
#include "services/relay_rules.h"

namespace {

using namespace switchboard;

std::string UrlHost(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

int RunStandalone(services::Config config) {
  edge::Runtime runtime(config.threads);

  sio::ServerOptions sio_options;
  sio_options.connect_timeout = config.connect_timeout;
  sio::Server server(runtime, config.engine, sio_options);

  std::vector<std::shared_ptr<services::RelayRules>> rules;
  for (auto& policy : config.namespaces) {
    spdlog::info("namespace {}: {} rule(s), rooms {} (max {} per socket)", policy.name,
                 policy.rules.size(), policy.room_pattern, policy.max_rooms_per_socket);
    sio::Namespace& nsp = server.Of(policy.name);  // before `policy` is moved from
    rules.push_back(services::RelayRules::Install(nsp, std::move(policy)));
  }

  edge::HttpOptions http_options;
  http_options.host = config.host;
  http_options.port = config.port;
  edge::HttpServer http(runtime, http_options);
  http.Mount(config.path, server.engine());

  // Registered before any thread runs, so an early signal is not lost.
  boost::asio::signal_set signals(runtime.context(0), SIGINT, SIGTERM);
  boost::asio::steady_timer stop_timer(runtime.context(0));
  signals.async_wait([&](const boost::system::error_code& ec, int signo) {
    if (ec) return;
    spdlog::info("signal {}: stopping", signo);
    http.Close();
    // Tell clients we are going (they reconnect elsewhere), give the close
    // packets a moment to leave, then stop.
    server.engine().CloseAll();
    stop_timer.expires_after(std::chrono::milliseconds(300));
    stop_timer.async_wait([&](const boost::system::error_code&) { runtime.Stop(); });
  });

  absl::Status listening = http.Listen();
  if (!listening.ok()) {
    spdlog::error("cannot listen on {}:{}: {}", config.host, config.port,
                  std::string(listening.message()));
    return 1;
  }
  runtime.Start();

  std::cout << "switchboard standalone listening on http://" << UrlHost(config.host) << ":"
            << http.port() << std::endl;  // endl flushes: scripts wait for this line
  spdlog::info("serving {} on {} thread(s)", config.path, runtime.size());

  runtime.Join();
  uint64_t ignored = 0;
  for (const auto& r : rules) ignored += r->ignored_events();
  spdlog::info("stopped ({} event(s) ignored: no rule)", ignored);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"switchboard: a Socket.IO v5 / Engine.IO v4 real-time broker", "switchboard"};
  std::string role;
  std::string config_file;
  std::string listen;
  std::optional<unsigned> threads;
  std::string log_level;
  app.add_option("role", role, "what to run: standalone (edge and broker: not yet)")
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
  CLI11_PARSE(app, argc, argv);

  auto logger = spdlog::stderr_color_mt("switchboard");
  spdlog::set_default_logger(logger);

  if (role != "standalone") {
    std::cerr << "switchboard " << role << ": not implemented yet\n";
    return 2;
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

  try {
    return RunStandalone(std::move(*config));
  } catch (const std::exception& e) {
    spdlog::critical("fatal: {}", e.what());
    return 1;
  }
}
