#include "services/health.h"

#include <unistd.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "bus/bus.h"

namespace switchboard::services {

Health::Health(const bus::Bus* bus, uint64_t memory_limit_bytes)
    : bus_(bus), memory_limit_bytes_(memory_limit_bytes) {}

Health::~Health() { StopWatch(); }

void Health::StopWatch() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(mu_);
  listeners_.clear();
}

uint64_t Health::ResidentBytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long long size = 0, resident = 0;
  int n = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  if (n != 2) return 0;
  return static_cast<uint64_t>(resident) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

absl::Status Health::Check() const {
  if (draining()) return absl::UnavailableError("draining");
  if (bus_ != nullptr && !bus_->connected()) return absl::UnavailableError("bus disconnected");
  if (memory_limit_bytes_ > 0) {
    uint64_t rss = ResidentBytes();
    if (rss > memory_limit_bytes_) {
      return absl::UnavailableError(
          absl::StrCat("memory ", rss, " bytes over the limit ", memory_limit_bytes_));
    }
  }
  return absl::OkStatus();
}

void Health::SetDraining() {
  draining_.store(true, std::memory_order_relaxed);
  Notify();
}

void Health::Notify() {
  bool now = ready();
  std::lock_guard lock(mu_);
  if (last_ == static_cast<int>(now)) return;
  last_ = now;
  for (const auto& listener : listeners_) listener(now);
}

void Health::Watch(std::function<void(bool)> listener, std::chrono::milliseconds period) {
  bool now = ready();
  {
    std::lock_guard lock(mu_);
    listener(now);
    listeners_.push_back(std::move(listener));
    last_ = now;
    if (thread_.joinable()) return;
  }
  thread_ = std::thread([this, period] { Loop(period); });
}

void Health::Loop(std::chrono::milliseconds period) {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, period, [this] { return stopping_; });
    if (stopping_) return;
    lock.unlock();
    Notify();
    lock.lock();
  }
}

}  // namespace switchboard::services
