#pragma once

#include <absl/base/thread_annotations.h>

#include <deque>
#include <mutex>
#include <unordered_map>

#include "edge/recovery/session_store.h"

namespace switchboard::recovery {

// The standalone session store: records in a map. Records of disconnected
// sessions are dropped once older than `max_disconnection` (swept as records
// are written), so it holds at most the connected sessions plus those
// disconnected within the window.
class MemorySessionStore final : public SessionStore {
 public:
  explicit MemorySessionStore(std::chrono::milliseconds max_disconnection)
      : max_disconnection_(max_disconnection) {}

  void Put(SessionRecord record, Done done) override;
  void Erase(const std::string& pid, Done done) override;
  void Take(const std::string& pid, std::chrono::system_clock::time_point now,
            TakeDone done) override;

  size_t size() const;

 private:
  void Sweep(std::chrono::system_clock::time_point now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Expired(const SessionRecord& record, std::chrono::system_clock::time_point now) const;

  const std::chrono::milliseconds max_disconnection_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, SessionRecord> records_ ABSL_GUARDED_BY(mu_);
  // Disconnections in time order, for the sweep (a pid may be listed after
  // it reconnected or disconnected again: checked against its record).
  std::deque<std::pair<std::chrono::system_clock::time_point, std::string>> disconnections_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace switchboard::recovery
