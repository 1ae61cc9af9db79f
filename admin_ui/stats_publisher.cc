#include "admin_ui/stats_publisher.h"

#include <unistd.h>

#include <climits>

#include "bus/routing.h"
#include "spdlog/spdlog.h"

namespace switchboard::admin_ui {
namespace {

std::string HostName() {
  char name[HOST_NAME_MAX + 1] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "unknown";
  return name;
}

}  // namespace

StatsPublisher::StatsPublisher(bus::Bus& bus, sio::Server& server, std::string edge_id,
                               std::chrono::system_clock::time_point started_at, Local local,
                               std::chrono::milliseconds interval)
    : bus_(bus),
      server_(server),
      edge_id_(std::move(edge_id)),
      subject_(bus::AdminStatsSubject(edge_id_)),
      started_at_(started_at),
      local_(std::move(local)),
      interval_(interval),
      hostname_(HostName()),
      previous_(server_.engine().stats()),
      thread_([this] { Loop(); }) {}

StatsPublisher::~StatsPublisher() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

v1::AdminServerStats StatsPublisher::Collect(std::chrono::system_clock::time_point now) {
  using Counter = eio::Server::Counter;
  using CloseReason = eio::Server::CloseReason;
  const eio::Server::Stats stats = server_.engine().stats();
  v1::AdminServerStats out;
  out.set_server_id(edge_id_);
  out.set_hostname(hostname_);
  out.set_pid(static_cast<uint32_t>(getpid()));
  out.set_uptime_seconds(std::chrono::duration<double>(now - started_at_).count());
  out.set_clients_count(server_.engine().SessionCount());
  out.set_polling_clients_count(static_cast<uint64_t>(std::max<int64_t>(stats.open_polling, 0)));
  for (const auto& nsp : server_.namespaces()) {
    auto* count = out.add_namespaces();
    count->set_name(nsp->name());
    count->set_sockets_count(nsp->SocketCount());
  }
  // The counters since the previous stats, stamped with the current second: the UI sums them
  // in 10 s buckets.
  const int64_t second_ms =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count() * 1000;
  auto add = [&](std::string_view type, std::string_view sub_type, uint64_t now_count,
                 uint64_t before) {
    if (now_count <= before) return;
    auto* event = out.add_aggregated_events();
    event->set_timestamp_ms(second_ms);
    event->set_type(std::string(type));
    if (!sub_type.empty()) event->set_sub_type(std::string(sub_type));
    event->set_count(now_count - before);
  };
  add("rawConnection", "",
      stats[Counter::kHandshakesPolling] + stats[Counter::kHandshakesWebSocket],
      previous_[Counter::kHandshakesPolling] + previous_[Counter::kHandshakesWebSocket]);
  for (size_t r = 0; r < static_cast<size_t>(CloseReason::kCount); ++r) {
    add("rawDisconnection", eio::Server::CloseReasonName(static_cast<CloseReason>(r)),
        stats.closes[r], previous_.closes[r]);
  }
  add("packetsIn", "", stats[Counter::kPacketsIn], previous_[Counter::kPacketsIn]);
  add("packetsOut", "", stats[Counter::kPacketsOut], previous_[Counter::kPacketsOut]);
  add("bytesIn", "", stats[Counter::kBytesIn], previous_[Counter::kBytesIn]);
  add("bytesOut", "", stats[Counter::kBytesOut], previous_[Counter::kBytesOut]);
  previous_ = stats;
  return out;
}

void StatsPublisher::Loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    const v1::AdminServerStats stats = Collect(std::chrono::system_clock::now());
    if (absl::Status status = bus_.Publish(subject_, stats.SerializeAsString()); !status.ok()) {
      spdlog::debug("admin ui: stats not published: {}", std::string(status.message()));
    }
    if (local_) local_(stats);
    lock.lock();
    cv_.wait_for(lock, interval_, [this] { return stopping_; });
  }
}

}  // namespace switchboard::admin_ui
