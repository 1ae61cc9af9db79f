#pragma once

// Reads a range of a stream by sequence: what a session restore needs (the
// messages published after the last one a client saw).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "bus/jetstream.h"

namespace switchboard::bus {

struct StoredMessage {
  uint64_t seq = 0;
  std::string subject;
  std::string payload;
};

struct RangeOptions {
  // Bounds the memory one read takes: past it the read stops early
  // (Range::complete false; read again after the last sequence returned).
  size_t max_messages = 10000;
  // How long to wait for each message of the range once it is known to
  // exist.
  std::chrono::milliseconds timeout{5000};
};

struct Range {
  std::vector<StoredMessage> messages;  // in sequence order
  bool complete = true;
};

// Every message of `stream` with after < seq <= upto whose subject matches
// `subject` (one subject, or the stream's own pattern for all), in order.
// Messages already removed by the stream's limits are simply not there: a
// range whose start was trimmed returns what is left. Costs one request for
// an empty range, and one request plus a stream of the range's messages
// otherwise, whatever the stream's size. NotFound when there is no stream.
absl::StatusOr<Range> ReadRange(JetStream& js, std::string_view stream, std::string_view subject,
                                uint64_t after, uint64_t upto, const RangeOptions& options = {});

}  // namespace switchboard::bus
