#pragma once

// JetStream streams: make sure one exists with the given limits, and read
// where it starts and ends.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bus/jetstream.h"

namespace switchboard::bus {

enum class JsStorage { kFile, kMemory };

struct StreamConfig {
  std::string name;
  // One subject; may end in wildcards ("sb.log.chat.>").
  std::string subject;
  JsStorage storage = JsStorage::kFile;
  int replicas = 1;
  // Messages older than this are removed (0: kept forever).
  std::chrono::milliseconds max_age{0};
  // Past this size the oldest messages are removed (-1: no limit).
  int64_t max_bytes = -1;
  // Discard is always "old": a full stream drops its oldest messages, never
  // refuses a publish.
};

// Creates the stream, or updates the limits (subject, replicas, max_age,
// max_bytes) of an existing one that has others. Idempotent, and safe when
// several processes call it at once with the same config (the server
// accepts a create that matches the existing stream; a lost create race
// re-reads and updates). Storage cannot change: FailedPrecondition when the
// stream exists with the other storage. The stream allows direct get
// (js_range.h uses it).
absl::Status EnsureStream(JetStream& js, const StreamConfig& config);

struct StreamBounds {
  // First sequence still in the stream and last one ever stored. Empty:
  // messages == 0 and first_seq == last_seq + 1 (or both 0 when nothing was
  // ever stored).
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  uint64_t messages = 0;
  uint64_t bytes = 0;
};

// One stream info request. NotFound when there is no such stream.
absl::StatusOr<StreamBounds> GetStreamBounds(JetStream& js, std::string_view stream);

// Removes the stream and its messages (tests, operators). NotFound when
// absent.
absl::Status DeleteStream(JetStream& js, std::string_view stream);

}  // namespace switchboard::bus
