#pragma once

// Hands memory freed by departed connections back to the operating system.
//
// glibc keeps freed chunks in its arenas (one per I/O thread) for reuse: after
// 10,000 connections close, the process keeps their memory resident (2-3x the
// RSS it had before they came). A thread of its own looks at the number of
// open sessions every `period` and calls malloc_trim(0) when it has dropped
// by half and by at least `min_drop` since the highest count seen since the
// last trim. While the count is steady (or grows) it never trims, so the hot
// path is untouched; a trim costs milliseconds, once per large drop.
//
//   MemoryRelease release({.period = 1s, .min_drop = 1000},
//                         [&] { return engine.SessionCount(); });
//   ... release.trims() ...  // a metric
//
// Check() runs the same rule once on the calling thread (tests; a caller with
// its own timer). Thread-safety: every method may be called from any thread.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

namespace switchboard::edge {

class MemoryRelease {
 public:
  struct Options {
    // How often the thread looks; zero: no thread (Check() only).
    std::chrono::milliseconds period{1000};
    // A trim needs the count to have fallen by this many sessions and to half
    // (or less) of the highest count since the last trim.
    size_t min_drop = 1000;
  };
  using CountFn = std::function<size_t()>;

  MemoryRelease(Options options, CountFn count);
  ~MemoryRelease();  // stops the thread
  MemoryRelease(const MemoryRelease&) = delete;
  MemoryRelease& operator=(const MemoryRelease&) = delete;

  // Reads the count and trims when the rule says so; true when it trimmed.
  bool Check();

  uint64_t trims() const { return trims_.load(std::memory_order_relaxed); }
  // Time spent in malloc_trim, summed.
  std::chrono::nanoseconds trim_time() const {
    return std::chrono::nanoseconds(trim_ns_.load(std::memory_order_relaxed));
  }

 private:
  void Run();

  const Options options_;
  const CountFn count_;
  std::mutex mu_;    // Check()'s state and the thread's stop
  size_t peak_ = 0;  // highest count since the last trim
  bool stop_ = false;
  std::condition_variable wake_;
  std::atomic<uint64_t> trims_{0};
  std::atomic<uint64_t> trim_ns_{0};
  std::thread thread_;
};

}  // namespace switchboard::edge
