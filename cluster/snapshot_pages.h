#pragma once

// A membership snapshot too large for one bus message (NATS max_payload) goes
// in pages (proto/SUBJECTS.md, "Membership ordering"): cut at one instant,
// split by socket, and kept a short while for the broker fetching them.

#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "switchboard/v1/bus.pb.h"

namespace switchboard::cluster {

// The serialized pages of `snapshot`, each at most `max_bytes` long: every
// page names the edge, incarnation, seq and `id`, and carries the next
// sockets in order; page 0 carries the heartbeat too. A socket alone larger
// than a page still gets one (the bus then refuses it, counted).
std::vector<std::string> SplitSnapshot(const v1::Snapshot& snapshot, const std::string& id,
                                       size_t max_bytes);

// A paged snapshot's answer for a page it no longer holds (page_count 0).
std::string GonePage(const std::string& edge_id, const std::string& incarnation,
                     std::string_view id);

// The paged snapshots being fetched: one per broker fetching (each fetches
// its pages one at a time), each for a short while, and a snapshot goes once
// its last page is served. Past kMaxKept the oldest goes, and the broker
// fetching it starts over: more brokers than that all asking at once would
// push each other out. Thread-safe.
class SnapshotPageCache {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr size_t kMaxKept = 16;
  static constexpr std::chrono::seconds kKeepFor{30};

  void Keep(std::string id, std::vector<std::string> pages, Clock::time_point now);
  // The page, or nullopt when the snapshot or page is unknown (never held,
  // expired or pushed out).
  std::optional<std::string> Page(std::string_view id, uint32_t page, Clock::time_point now);
  size_t size() const;

 private:
  struct Kept {
    std::string id;
    std::vector<std::string> pages;
    Clock::time_point at;
  };
  void ExpireLocked(Clock::time_point now);

  mutable std::mutex mu_;
  std::deque<Kept> kept_;  // oldest first
};

}  // namespace switchboard::cluster
