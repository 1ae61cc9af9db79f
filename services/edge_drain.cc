#include "services/edge_drain.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <csignal>

namespace switchboard::services {

EdgeDrain::EdgeDrain(edge::Runtime& runtime, eio::Server& engine, edge::HttpServer& http,
                     Health& health, cluster::EdgeLink& link, Options options)
    : runtime_(runtime),
      engine_(engine),
      http_(http),
      health_(health),
      link_(link),
      options_(options),
      signals_(runtime.context(0), SIGINT, SIGTERM),
      timer_(runtime.context(0)) {
  signals_.async_wait([this](const boost::system::error_code& ec, int signo) {
    if (!ec) Begin(signo);
  });
}

void EdgeDrain::Begin(int signo) {
  spdlog::info("signal {}: draining {} session(s) over {} ms", signo, engine_.SessionCount(),
               options_.window.count());
  health_.SetDraining();
  http_.Close();
  link_.Heartbeat(/*draining=*/true);
  engine_.CloseSpread(options_.window);
  const auto now = std::chrono::steady_clock::now();
  drain_deadline_ = now + std::max(options_.grace, options_.window);
  flush_deadline_ = now + options_.window + kFlushMargin;
  CheckAfter(options_.window);
}

void EdgeDrain::CheckAfter(std::chrono::milliseconds delay) {
  timer_.expires_after(delay);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) WaitDrained();
  });
}

void EdgeDrain::WaitDrained() {
  const size_t left = engine_.SessionCount();
  const eio::Server::Stats stats = engine_.stats();
  uint64_t closed = 0;
  for (uint64_t n : stats.closes) closed += n;
  const bool all_told = closed >= stats[eio::Server::Counter::kHandshakesPolling] +
                                      stats[eio::Server::Counter::kHandshakesWebSocket];
  const auto now = std::chrono::steady_clock::now();
  if (!all_told) flush_deadline_ = now + kFlushMargin;
  if (left == 0 || now >= drain_deadline_ || now >= flush_deadline_) {
    if (left > 0 && !all_told) {
      spdlog::warn("drain: grace period over with {} session(s) left", left);
    }
    spdlog::info("drained: stopping");
    link_.Heartbeat(/*draining=*/true);
    return runtime_.Stop();
  }
  CheckAfter(std::chrono::milliseconds(50));
}

}  // namespace switchboard::services
