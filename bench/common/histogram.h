// Fixed latency histogram in microseconds with three significant digits: exact
// below 1 ms, then 900 buckets per decade up to 10^10 us. Fixed size, so worker
// processes can send it to the parent as raw bytes over a pipe and the parent
// adds them up.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>

namespace bench {

class Histogram {
 public:
  static constexpr int kExact = 1000;
  static constexpr int kDecades = 7;  // 10^3 .. 10^10 us
  static constexpr int kBuckets = kExact + kDecades * 900;

  void Add(int64_t us) {
    if (us < 0) us = 0;
    counts_[Index(us)]++;
    count_++;
    max_ = std::max(max_, us);
  }
  void Merge(const Histogram& o) {
    for (int i = 0; i < kBuckets; ++i) counts_[i] += o.counts_[i];
    count_ += o.count_;
    max_ = std::max(max_, o.max_);
  }
  uint64_t count() const { return count_; }
  int64_t max() const { return max_; }
  // The value below which a fraction q of the samples lie (bucket's lower
  // bound).
  int64_t Quantile(double q) const {
    if (count_ == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(count_));
    if (rank >= count_) rank = count_ - 1;
    uint64_t seen = 0;
    for (int i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen > rank) return std::min(Value(i), max_);
    }
    return max_;
  }

 private:
  static int Index(int64_t us) {
    if (us < kExact) return static_cast<int>(us);
    int64_t scale = 1;
    int decade = 0;
    while (us / scale >= 1000) {
      scale *= 10;
      ++decade;
    }
    if (decade > kDecades) return kBuckets - 1;
    int idx = kExact + (decade - 1) * 900 + static_cast<int>(us / scale - 100);
    return std::min(idx, kBuckets - 1);
  }
  static int64_t Value(int i) {
    if (i < kExact) return i;
    int decade = (i - kExact) / 900 + 1;
    int64_t scale = 1;
    for (int d = 0; d < decade; ++d) scale *= 10;
    return (100 + (i - kExact) % 900) * scale;
  }

  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  int64_t max_ = 0;
};

}  // namespace bench
