// How long the edge's heartbeat holds the membership journal's lock, and
// what that costs the I/O threads: the journal mirrors S sockets in R rooms
// each (no network: sockets made in process and reported to the journal as a
// shard would), then
//   * heartbeat: the wall time of PublishHeartbeat (on an in-process bus
//     nobody listens to), repeated;
//   * join/leave latency: another thread joins and leaves a room on one
//     socket in a loop (what every connect/join/leave on an I/O thread does)
//     while heartbeats run back to back; its worst and p99 call times show
//     how long it waited for the lock.
// Prints figures only; nothing is pass/fail.
//
//   sb-bench-journal --sockets 10000 --rooms 50 --heartbeats 20

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bus/inproc_bus.h"
#include "cluster/membership_journal.h"
#include "edge/engineio/session.h"
#include "edge/runtime.h"
#include "edge/socketio/client.h"
#include "edge/socketio/server.h"
#include "edge/socketio/socket.h"

namespace {

using namespace switchboard;
using Clock = std::chrono::steady_clock;

double Micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

size_t Over(const std::vector<double>& values, double limit) {
  return static_cast<size_t>(
      std::count_if(values.begin(), values.end(), [limit](double v) { return v > limit; }));
}

// Sorted in place; q in [0, 1].
double Quantile(std::vector<double>& values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, static_cast<size_t>(q * values.size()))];
}

// A socket of a connection that exists only in memory (never started).
struct FakeSocket {
  std::shared_ptr<eio::Session> session;
  std::shared_ptr<sio::Socket> socket;
};

FakeSocket MakeSocket(sio::Server& io, sio::Namespace& nsp, size_t n, size_t users) {
  char id[32];
  std::snprintf(id, sizeof(id), "s%019zu", n);  // edge::kIdLength characters
  FakeSocket fake;
  fake.session = std::make_shared<eio::Session>(
      io.engine(), id, 0,
      eio::Handshake("127.0.0.1", "/socket.io/?EIO=4&transport=websocket",
                     std::chrono::system_clock::now()));
  auto client = std::make_shared<sio::Client>(io, fake.session);
  fake.socket = std::make_shared<sio::Socket>(client, nsp, id, sio::Json());
  fake.socket->SetUserId("user-" + std::to_string(n % users));
  return fake;
}

}  // namespace

int main(int argc, char** argv) {
  size_t sockets = 10'000;
  size_t rooms_per_socket = 50;
  size_t distinct_rooms = 5'000;
  size_t users = 2'000;
  int heartbeats = 20;
  CLI::App app("Membership journal: heartbeat lock hold and join/leave latency under it");
  app.add_option("--sockets", sockets, "sockets mirrored (default 10000)");
  app.add_option("--rooms", rooms_per_socket, "rooms per socket (default 50)");
  app.add_option("--distinct-rooms", distinct_rooms, "distinct room names (default 5000)")
      ->check(CLI::Range(size_t{1}, size_t{100'000'000}));
  app.add_option("--users", users, "distinct user ids (default 2000)")
      ->check(CLI::Range(size_t{1}, size_t{100'000'000}));
  app.add_option("--heartbeats", heartbeats, "heartbeats timed (default 20)")
      ->check(CLI::Range(1, 100'000));
  CLI11_PARSE(app, argc, argv);

  edge::Runtime runtime(1);  // never started: nothing runs on it
  sio::Server io(runtime, {}, {});
  sio::Namespace& nsp = io.Of("/");
  bus::InProcessBus bus;
  cluster::MembershipJournal journal(bus, "bench-edge");

  std::vector<FakeSocket> all;
  all.reserve(sockets + 1);
  const auto fill_start = Clock::now();
  for (size_t i = 0; i < sockets; ++i) {
    all.push_back(MakeSocket(io, nsp, i, users));
    const sio::Socket& socket = *all.back().socket;
    journal.OnConnected(socket);
    for (size_t r = 0; r < rooms_per_socket; ++r) {
      journal.OnJoined(socket, "room-" + std::to_string((i * 7 + r * 131) % distinct_rooms));
    }
  }
  const double fill_ms = Micros(Clock::now() - fill_start) / 1000;

  // Heartbeats alone.
  std::vector<double> beat_us;
  for (int i = 0; i < heartbeats; ++i) {
    const auto start = Clock::now();
    (void)journal.PublishHeartbeat();
    beat_us.push_back(Micros(Clock::now() - start));
  }

  // Join/leave on another thread, first alone, then against heartbeats.
  FakeSocket probe = MakeSocket(io, nsp, sockets, users);
  journal.OnConnected(*probe.socket);
  const std::string probe_room = "probe-room";
  auto join_leave = [&](std::atomic<bool>& stop, std::vector<double>& out) {
    while (!stop.load(std::memory_order_relaxed)) {
      auto start = Clock::now();
      journal.OnJoined(*probe.socket, probe_room);
      out.push_back(Micros(Clock::now() - start));
      start = Clock::now();
      journal.OnLeft(*probe.socket, probe_room);
      out.push_back(Micros(Clock::now() - start));
    }
  };
  std::vector<double> idle_ops;
  {
    std::atomic<bool> stop{false};
    std::thread prober([&] { join_leave(stop, idle_ops); });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    stop = true;
    prober.join();
  }
  std::vector<double> busy_ops;
  std::vector<double> busy_beat_us;
  {
    std::atomic<bool> stop{false};
    std::thread prober([&] { join_leave(stop, busy_ops); });
    // Heartbeats back to back, at least `heartbeats` of them and for 1 s.
    const auto begin = Clock::now();
    for (int i = 0; i < heartbeats || Clock::now() - begin < std::chrono::seconds(1); ++i) {
      const auto start = Clock::now();
      (void)journal.PublishHeartbeat();
      busy_beat_us.push_back(Micros(Clock::now() - start));
    }
    stop = true;
    prober.join();
  }

  std::printf(
      "journal: %zu sockets x %zu rooms (%zu distinct rooms, %zu users), filled in %.0f ms\n",
      sockets, rooms_per_socket, distinct_rooms, users, fill_ms);
  std::printf("heartbeat alone (%d):          median %10.1f us  max %10.1f us\n", heartbeats,
              Quantile(beat_us, 0.5), Quantile(beat_us, 1.0));
  std::printf("heartbeat with join/leave (%zu): median %10.1f us  max %10.1f us\n",
              busy_beat_us.size(), Quantile(busy_beat_us, 0.5), Quantile(busy_beat_us, 1.0));
  std::printf("join/leave alone (%zu calls):     p50 %8.2f us  p99 %8.2f us  max %10.1f us\n",
              idle_ops.size(), Quantile(idle_ops, 0.5), Quantile(idle_ops, 0.99),
              Quantile(idle_ops, 1.0));
  std::printf(
      "join/leave during heartbeats (%zu calls): p50 %8.2f us  p99 %8.2f us  max %10.1f us\n",
      busy_ops.size(), Quantile(busy_ops, 0.5), Quantile(busy_ops, 0.99), Quantile(busy_ops, 1.0));
  std::printf("join/leave calls over 1 ms: alone %zu, during heartbeats %zu\n",
              Over(idle_ops, 1000), Over(busy_ops, 1000));
  return 0;
}
