#pragma once

// A fixed-bucket latency histogram for hot paths: Observe() is a short scan
// of 14 bounds and three relaxed atomic adds, no lock, no allocation. Read at
// scrape time (services/metrics.h, HistogramFamily); a reader may see a count
// and a sum from slightly different instants, which Prometheus tolerates.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>

namespace switchboard::cluster {

class LatencyHistogram {
 public:
  // Upper bounds in seconds (the same as the gRPC call histogram's), then +Inf.
  static constexpr std::array<double, 14> kBoundsSeconds = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

  // Negative durations (clocks of two machines disagreeing) count as 0.
  void Observe(std::chrono::nanoseconds elapsed) {
    const int64_t ns = elapsed.count() < 0 ? 0 : elapsed.count();
    size_t i = 0;
    while (i < kBoundsNanos.size() && ns > kBoundsNanos[i]) ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    sum_nanos_.fetch_add(static_cast<uint64_t>(ns), std::memory_order_relaxed);
  }

  struct Snapshot {
    std::array<uint64_t, kBoundsSeconds.size() + 1> buckets{};  // not cumulative; last: +Inf
    uint64_t count = 0;
    double sum_seconds = 0;
  };
  Snapshot Read() const {
    Snapshot out;
    for (size_t i = 0; i < buckets_.size(); ++i) {
      out.buckets[i] = buckets_[i].load(std::memory_order_relaxed);
    }
    out.count = count_.load(std::memory_order_relaxed);
    out.sum_seconds = static_cast<double>(sum_nanos_.load(std::memory_order_relaxed)) / 1e9;
    return out;
  }

 private:
  static constexpr std::array<int64_t, 14> kBoundsNanos = {
      500'000,       1'000'000,     2'500'000,     5'000'000,     10'000'000,
      25'000'000,    50'000'000,    100'000'000,   250'000'000,   500'000'000,
      1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000};

  std::array<std::atomic<uint64_t>, kBoundsSeconds.size() + 1> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_nanos_{0};
};

}  // namespace switchboard::cluster
