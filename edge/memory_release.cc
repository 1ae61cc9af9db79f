#include "edge/memory_release.h"

#include <malloc.h>

#include <algorithm>

namespace switchboard::edge {

MemoryRelease::MemoryRelease(Options options, CountFn count)
    : options_(options), count_(std::move(count)) {
  if (options_.period.count() > 0) thread_ = std::thread([this] { Run(); });
}

MemoryRelease::~MemoryRelease() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool MemoryRelease::Check() {
  std::lock_guard lock(mu_);
  const size_t now = count_();
  peak_ = std::max(peak_, now);
  const size_t drop = peak_ - now;
  if (drop < std::max<size_t>(options_.min_drop, 1) || now > peak_ / 2) return false;
  const auto start = std::chrono::steady_clock::now();
  // Every arena, not only this thread's: the freed chunks are the I/O threads'.
  malloc_trim(0);
  const auto spent = std::chrono::steady_clock::now() - start;
  trim_ns_.fetch_add(
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(spent).count()),
      std::memory_order_relaxed);
  trims_.fetch_add(1, std::memory_order_relaxed);
  peak_ = now;
  return true;
}

void MemoryRelease::Run() {
  std::unique_lock lock(mu_);
  while (!wake_.wait_for(lock, options_.period, [this] { return stop_; })) {
    lock.unlock();
    Check();
    lock.lock();
  }
}

}  // namespace switchboard::edge
