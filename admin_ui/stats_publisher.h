#pragma once
// Every edge with the Admin UI on tells the cluster how it is, every 2 s: one AdminServerStats
// on sb.v1.admin.stats.<edge-id> (the UI's `server_stats` for that edge), whichever edge the UI
// is connected to. An edge that stops publishing turns unhealthy in the UI after 10 s.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "bus/bus.h"
#include "edge/engineio/server.h"
#include "edge/socketio/server.h"
#include "switchboard/v1/admin.pb.h"

namespace switchboard::admin_ui {

class StatsPublisher {
 public:
  // Publishes at once and then every `interval` until destroyed, and hands the same stats to
  // `local` (the bus does not bring an edge its own messages). `bus` and `server` must
  // outlive it.
  using Local = std::function<void(const v1::AdminServerStats&)>;
  StatsPublisher(bus::Bus& bus, sio::Server& server, std::string edge_id,
                 std::chrono::system_clock::time_point started_at, Local local = nullptr,
                 std::chrono::milliseconds interval = std::chrono::seconds(2));
  ~StatsPublisher();
  StatsPublisher(const StatsPublisher&) = delete;
  StatsPublisher& operator=(const StatsPublisher&) = delete;

  // The stats now, with what happened since the previous call (one thread at a time).
  v1::AdminServerStats Collect(std::chrono::system_clock::time_point now);

 private:
  void Loop();

  bus::Bus& bus_;
  sio::Server& server_;
  const std::string edge_id_;
  const std::string subject_;
  const std::chrono::system_clock::time_point started_at_;
  const Local local_;
  const std::chrono::milliseconds interval_;
  const std::string hostname_;
  eio::Server::Stats previous_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace switchboard::admin_ui
