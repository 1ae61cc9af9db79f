#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "edge/engineio/options.h"

namespace switchboard::eio {

using RateClock = std::chrono::steady_clock;

// A token bucket: holds up to `burst` tokens, refilled at `per_second`; each
// allowed action takes one. Its parameters are passed in, so that a bucket
// is 16 bytes. Not thread-safe.
class TokenBucket {
 public:
  TokenBucket() = default;
  // Full at `now`.
  TokenBucket(const RateOptions& rate, RateClock::time_point now)
      : tokens_(rate.burst), last_(now) {}

  // Takes a token if there is one (always true when per_second is 0).
  bool Take(const RateOptions& rate, RateClock::time_point now) {
    if (rate.per_second <= 0) return true;
    Refill(rate, now);
    if (tokens_ < 1) return false;
    tokens_ -= 1;
    return true;
  }
  // Time until the next token, in whole milliseconds (at least 1), as of the
  // last Take.
  int64_t RetryAfterMs(const RateOptions& rate) const {
    if (rate.per_second <= 0 || tokens_ >= 1) return 0;
    return std::max<int64_t>(1, static_cast<int64_t>(std::ceil((1 - tokens_) * 1000 /
                                                               rate.per_second)));
  }
  RateClock::time_point last() const { return last_; }

 private:
  void Refill(const RateOptions& rate, RateClock::time_point now) {
    if (now <= last_) return;
    double elapsed = std::chrono::duration<double>(now - last_).count();
    tokens_ = std::min(rate.burst, tokens_ + elapsed * rate.per_second);
    last_ = now;
  }

  double tokens_ = 0;
  RateClock::time_point last_{};
};

// Token buckets by key (client addresses), with bounded memory: a key idle
// long enough for its bucket to be full again is forgotten (nothing is lost:
// a new bucket starts full), and past `max_keys` the least recently used one
// is evicted. Thread-safe.
class KeyedRateLimiter {
 public:
  KeyedRateLimiter(RateOptions rate, size_t max_keys);

  // Takes a token from `key`'s bucket.
  bool Allow(std::string_view key, RateClock::time_point now = RateClock::now());

  // Keys tracked now.
  size_t size() const;
  // Keys evicted while their bucket was not yet full again (the map was full).
  uint64_t evictions() const;

 private:
  struct Entry {
    std::string key;
    TokenBucket bucket;
  };
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  // Drops idle entries from the back of lru_ (at most `budget`).
  void Expire(RateClock::time_point now, size_t budget);

  const RateOptions rate_;
  const size_t max_keys_;
  const RateClock::duration idle_;  // time for an empty bucket to fill up
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // most recently used first
  // Views into the entries' keys (list nodes do not move).
  std::unordered_map<std::string_view, std::list<Entry>::iterator, Hash, std::equal_to<>> index_;
  uint64_t evictions_ = 0;
};

// The key a client address is rate-limited by: the address itself for IPv4
// (IPv4-mapped IPv6 addresses as IPv4), its /64 prefix for IPv6 (one host
// owns a whole /64 and could rotate through it).
std::string ClientKey(std::string_view address);

}  // namespace switchboard::eio
