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

  // Appends a publish to `target`: gives it the next offset (or `given`, an
  // offset a cluster's stream gave it: larger than any before, and a gap
  // forgets what came before it here) and the packet `encode` makes with it.
  // The caller hands the entry's delivery to the recipients in offset order.
  // Unimplemented: the log gives no offsets here (a cluster's: publishes go
  // through its stream).
  virtual absl::StatusOr<LogEntryPtr> Append(sio::BroadcastTarget target, const Encode& encode,
                                             uint64_t given = 0) = 0;
  // The entries after `after` that `match` accepts, in offset order, from
  // what this log holds in memory. Errors: OutOfRange (entries after `after`
  // are not held: trimmed, or, for a cluster's log, older than this edge's
  // memory: ReadOlder first), InvalidArgument (`after` was never given).
  // Calls back before returning.
  virtual void ReadAfter(uint64_t after, const Match& match, ReadDone done) = 0;
  // What ReadAfter cannot give because it is older than this edge's memory:
  // a cluster's log reads it from its stream, without blocking the caller;
  // `through` is the last offset the entries cover (read the rest with
  // ReadAfter(through)). OutOfRange: gone from the stream too (expired).
  // The in-memory log holds all there is: nothing, through = after.
  struct Older {
    std::vector<LogEntryPtr> entries;
    uint64_t through = 0;
  };
  using OlderDone = std::function<void(absl::StatusOr<Older>)>;
  virtual void ReadOlder(uint64_t after, const Match& match, OlderDone done) {
    (void)match;
    done(Older{{}, after});
  }
  // True for a cluster's log: publishes reach this edge from its stream, in
  // its order (not from the bus), and Append takes only given offsets.
  virtual bool shared() const { return false; }
  virtual LogStats Stats() const = 0;
};

}  // namespace switchboard::recovery
