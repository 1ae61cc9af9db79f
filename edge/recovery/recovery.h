#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

#include "edge/recovery/options.h"
#include "edge/recovery/recovery_log.h"
#include "edge/recovery/session_store.h"

namespace switchboard::recovery {

// How a client's attempt to recover ended (metrics: result label).
enum class Result { kRecovered, kExpired, kUnknown, kReused, kCount };
const char* ResultName(Result result);

// A namespace's connection state recovery: its settings, log, session
// records and counters. `order_mu` makes the log the order of delivery on
// this edge: an append and the hand-off of its delivery to the shards happen
// under it, and so do a restore's read of the log and the registration of
// its socket (so that every publish either is in what the restore read, or
// reaches the socket live after it).
class Recovery {
 public:
  Recovery(Options options, std::unique_ptr<RecoveryLog> log,
           std::unique_ptr<SessionStore> sessions)
      : options_(options), log_(std::move(log)), sessions_(std::move(sessions)) {}

  // The standalone set: a MemoryLog and a MemorySessionStore.
  static std::unique_ptr<Recovery> InMemory(Options options);

  const Options& options() const { return options_; }
  RecoveryLog& log() { return *log_; }
  LogStats log_stats() const { return log_->Stats(); }
  SessionStore& sessions() { return *sessions_; }
  std::mutex& order_mu() { return order_mu_; }

  void Count(Result result) {
    results_[static_cast<size_t>(result)].fetch_add(1, std::memory_order_relaxed);
  }
  uint64_t Counted(Result result) const {
    return results_[static_cast<size_t>(result)].load(std::memory_order_relaxed);
  }
  void CountReplayed(uint64_t n) { replayed_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Replayed() const { return replayed_.load(std::memory_order_relaxed); }

 private:
  Options options_;
  std::unique_ptr<RecoveryLog> log_;
  std::unique_ptr<SessionStore> sessions_;
  std::mutex order_mu_;
  std::atomic<uint64_t> results_[static_cast<size_t>(Result::kCount)] = {};
  std::atomic<uint64_t> replayed_{0};
};

}  // namespace switchboard::recovery
