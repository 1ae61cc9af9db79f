#include "edge/recovery/memory_session_store.h"

#include <algorithm>

namespace switchboard::recovery {

bool MemorySessionStore::Expired(const SessionRecord& record,
                                 std::chrono::system_clock::time_point now) const {
  return record.disconnected_at && now - *record.disconnected_at > max_disconnection_;
}

void MemorySessionStore::Sweep(std::chrono::system_clock::time_point now) {
  // Kept a while past expiry (one more window, at least a minute), so that
  // a late client counts as "expired" rather than "unknown".
  const auto keep = max_disconnection_ + std::max<std::chrono::milliseconds>(
                                             max_disconnection_, std::chrono::minutes(1));
  while (!disconnections_.empty() && now - disconnections_.front().first > keep) {
    auto it = records_.find(disconnections_.front().second);
    if (it != records_.end() && it->second.disconnected_at &&
        now - *it->second.disconnected_at > keep) {
      records_.erase(it);
    }
    disconnections_.pop_front();
  }
}

void MemorySessionStore::Put(SessionRecord record, Done done) {
  {
    std::lock_guard lock(mu_);
    auto now = std::chrono::system_clock::now();
    Sweep(now);
    if (record.disconnected_at) disconnections_.emplace_back(*record.disconnected_at, record.pid);
    std::string pid = record.pid;
    records_.insert_or_assign(std::move(pid), std::move(record));
  }
  if (done) done(absl::OkStatus());
}

void MemorySessionStore::Erase(const std::string& pid, Done done) {
  {
    std::lock_guard lock(mu_);
    records_.erase(pid);
  }
  if (done) done(absl::OkStatus());
}

void MemorySessionStore::Take(const std::string& pid, std::chrono::system_clock::time_point now,
                              TakeDone done) {
  absl::StatusOr<SessionRecord> result;
  {
    std::lock_guard lock(mu_);
    Sweep(now);
    auto it = records_.find(pid);
    if (it == records_.end()) {
      result = absl::NotFoundError("unknown pid");
    } else if (!it->second.disconnected_at) {
      result = absl::FailedPreconditionError("session in use");
    } else if (Expired(it->second, now)) {
      records_.erase(it);
      result = absl::DeadlineExceededError("session expired");
    } else {
      result = std::move(it->second);
      records_.erase(it);
    }
  }
  done(std::move(result));
}

size_t MemorySessionStore::size() const {
  std::lock_guard lock(mu_);
  return records_.size();
}

}  // namespace switchboard::recovery
