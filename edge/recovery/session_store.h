#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <chrono>
#include <functional>
#include <string>

#include "edge/recovery/session_record.h"

namespace switchboard::recovery {

// Session records by pid. Implementations: in memory (standalone, here) and
// a durable one shared by every edge (a cluster's, on JetStream). Callbacks
// may run on any thread, before or after the call returns.
class SessionStore {
 public:
  using Done = std::function<void(absl::Status)>;
  using TakeDone = std::function<void(absl::StatusOr<SessionRecord>)>;
  virtual ~SessionStore() = default;

  // Writes (replaces) the record of `record.pid`. `done` may be empty.
  virtual void Put(SessionRecord record, Done done) = 0;
  // Forgets a pid (the session ended for good). `done` may be empty.
  virtual void Erase(const std::string& pid, Done done) = 0;
  // Takes the record of a disconnected session for a restore; it is gone
  // afterwards (the restored session writes its own). Errors, each a new
  // session for the client: NotFound (unknown pid), FailedPrecondition (the
  // session is connected: its pid was used already), DeadlineExceeded
  // (disconnected longer than maxDisconnectionDuration; dropped).
  virtual void Take(const std::string& pid, std::chrono::system_clock::time_point now,
                    TakeDone done) = 0;
};

}  // namespace switchboard::recovery
