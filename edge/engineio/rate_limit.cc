#include "edge/engineio/rate_limit.h"

#include <boost/asio/ip/address.hpp>

namespace switchboard::eio {

namespace {
RateClock::duration FillTime(const RateOptions& rate) {
  if (rate.per_second <= 0) return RateClock::duration::zero();
  return std::chrono::duration_cast<RateClock::duration>(
      std::chrono::duration<double>(rate.burst / rate.per_second));
}
}  // namespace

KeyedRateLimiter::KeyedRateLimiter(RateOptions rate, size_t max_keys)
    : rate_(rate), max_keys_(std::max<size_t>(1, max_keys)), idle_(FillTime(rate)) {}

void KeyedRateLimiter::Expire(RateClock::time_point now, size_t budget) {
  while (budget-- > 0 && !lru_.empty() && now - lru_.back().bucket.last() >= idle_) {
    index_.erase(lru_.back().key);
    lru_.pop_back();
  }
}

bool KeyedRateLimiter::Allow(std::string_view key, RateClock::time_point now) {
  if (rate_.per_second <= 0) return true;
  std::lock_guard lock(mu_);
  // Amortised: each call may drop a few idle entries (perhaps this key's:
  // equivalent to a full bucket), each insert evicts at most one.
  Expire(now, 8);
  auto it = index_.find(key);
  if (it != index_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
    return lru_.front().bucket.Take(rate_, now);
  }
  if (lru_.size() >= max_keys_) {
    ++evictions_;
    index_.erase(lru_.back().key);
    lru_.pop_back();
  }
  lru_.push_front(Entry{std::string(key), TokenBucket(rate_, now)});
  index_.emplace(lru_.front().key, lru_.begin());
  return lru_.front().bucket.Take(rate_, now);
}

size_t KeyedRateLimiter::size() const {
  std::lock_guard lock(mu_);
  return lru_.size();
}

uint64_t KeyedRateLimiter::evictions() const {
  std::lock_guard lock(mu_);
  return evictions_;
}

std::string ClientKey(std::string_view address) {
  boost::system::error_code ec;
  auto parsed = boost::asio::ip::make_address(std::string(address), ec);
  if (ec) return std::string(address);
  if (parsed.is_v4()) return parsed.to_string();
  auto v6 = parsed.to_v6();
  if (v6.is_v4_mapped()) {
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, v6).to_string();
  }
  auto bytes = v6.to_bytes();
  for (size_t i = 8; i < bytes.size(); ++i) bytes[i] = 0;
  return boost::asio::ip::address_v6(bytes).to_string() + "/64";
}

}  // namespace switchboard::eio
