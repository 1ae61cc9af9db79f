#pragma once

// How an edge goes away on SIGTERM / SIGINT (README, "Draining"): not ready,
// no new connections, brokers told (a draining heartbeat), then clients told
// to reconnect (an Engine.IO close: official clients reconnect, to another
// edge) spread over the drain window so they do not all come back at once;
// the runtime stops once the sessions are gone, or at the grace deadline.
//
// The signal handler and the checks run on the runtime's first shard.

#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>

#include "cluster/edge_link.h"
#include "edge/engineio/server.h"
#include "edge/http/server.h"
#include "edge/runtime.h"
#include "services/health.h"

namespace switchboard::services {

class EdgeDrain {
 public:
  struct Options {
    std::chrono::milliseconds window{5000};  // --drain-window-ms
    std::chrono::milliseconds grace{10000};  // --drain-grace-ms (at least the window)
  };

  // Registers for the signals: construct before the runtime's threads run, so
  // an early signal is not lost. Everything passed must outlive this.
  EdgeDrain(edge::Runtime& runtime, eio::Server& engine, edge::HttpServer& http, Health& health,
            cluster::EdgeLink& link, Options options);
  EdgeDrain(const EdgeDrain&) = delete;
  EdgeDrain& operator=(const EdgeDrain&) = delete;

 private:
  void Begin(int signo);
  // Every 50 ms: stop once the last session has gone (its close written, its
  // rooms left on the bus), or once every session has been told to go and
  // kFlushMargin has passed (a closing polling session may wait for a GET
  // that a client already gone never sends), or at the grace deadline.
  void WaitDrained();
  void CheckAfter(std::chrono::milliseconds delay);

  static constexpr std::chrono::milliseconds kFlushMargin{300};

  edge::Runtime& runtime_;
  eio::Server& engine_;
  edge::HttpServer& http_;
  Health& health_;
  cluster::EdgeLink& link_;
  const Options options_;
  boost::asio::signal_set signals_;
  boost::asio::steady_timer timer_;
  std::chrono::steady_clock::time_point drain_deadline_;
  std::chrono::steady_clock::time_point flush_deadline_;
};

}  // namespace switchboard::services
