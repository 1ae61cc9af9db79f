#pragma once

#include <atomic>
#include <cstdint>

namespace switchboard::broker {

// Broker::counters() (metrics), bumped by the broker's pieces.
struct BrokerCounters {
  std::atomic<uint64_t> gaps{0};
  std::atomic<uint64_t> snapshot_requests{0};
  std::atomic<uint64_t> edges_expired{0};
  std::atomic<uint64_t> edge_probes{0};        // sent to edges whose heartbeats were late
  std::atomic<uint64_t> watch_dropped{0};      // events of any kind
  std::atomic<uint64_t> watch_acks_failed{0};  // client acks answered with an error for them
  // Recoverable publishes (Broker::Counters).
  std::atomic<uint64_t> log_stored{0};
  std::atomic<uint64_t> log_fallback{0};
  std::atomic<uint64_t> log_failed{0};
};

}  // namespace switchboard::broker
