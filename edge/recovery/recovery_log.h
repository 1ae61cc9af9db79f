#pragma once

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "edge/socketio/broadcast.h"

namespace switchboard::recovery {

// One recoverable publish of a namespace: its offset (sequence in the
// namespace's log, 1, 2, ...), who it was for, and its packet as sent (the
// offset already its last argument), shared with the live delivery.
struct LogEntry {
  uint64_t offset = 0;
  std::shared_ptr<const sio::Delivery> delivery;
  std::chrono::steady_clock::time_point appended;
  size_t bytes = 0;  // what the entry costs against maxLogBytes
};
using LogEntryPtr = std::shared_ptr<const LogEntry>;

struct LogStats {
  uint64_t entries = 0;
  uint64_t bytes = 0;
  uint64_t first_offset = 0;  // 0: empty
  uint64_t last_offset = 0;   // the last offset ever given (0: none yet)
};

// A namespace's publish log: the order of delivery. Implementations: in
// memory (standalone, here) and on JetStream (a cluster's).
class RecoveryLog {
 public:
  // Turns an offset into the packet that carries it (encoded once).
  using Encode = std::function<std::vector<eio::Frame>(uint64_t offset)>;
  using Match = std::function<bool(const sio::BroadcastTarget& target)>;
  using ReadDone = std::function<void(absl::StatusOr<std::vector<LogEntryPtr>>)>;
  virtual ~RecoveryLog() = default;

  // Appends a publish to `target`: gives it the next offset and the packet
  // `encode` makes with it. The caller hands the entry's delivery to the
  // recipients in offset order.
  virtual absl::StatusOr<LogEntryPtr> Append(sio::BroadcastTarget target, const Encode& encode) = 0;
  // The entries after `after` that `match` accepts, in offset order. Errors:
  // OutOfRange (entries after `after` were trimmed already: expired),
  // InvalidArgument (`after` was never given). May call back on any thread;
  // the in-memory log calls back before returning.
  virtual void ReadAfter(uint64_t after, const Match& match, ReadDone done) = 0;
  virtual LogStats Stats() const = 0;
};

}  // namespace switchboard::recovery
