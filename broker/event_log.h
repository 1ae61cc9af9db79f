#pragma once

// Where a broker writes the publishes of a namespace with connection state
// recovery in a cluster: the namespace's log (a JetStream stream read in
// order by every edge, its sequence the offset clients see; proto/SUBJECTS.md
// "sb.v1.log.<ns>"). An interface so that broker/ does not depend on NATS.c:
// services/ adapts bus::LogWriter to it.

#include <cstdint>
#include <functional>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace switchboard::broker {

class EventLog {
 public:
  // The log's sequence of the stored message, or why it was not stored.
  using Done = std::function<void(absl::StatusOr<uint64_t>)>;

  virtual ~EventLog() = default;

  // Sends an EdgeMessage's bytes to nsp's log without waiting. OK: `done`
  // runs exactly once (on the log's thread, in append order) after the store
  // acknowledged it, or with why not (NotFound: nsp has no log yet, or any
  // more). Otherwise `done` never runs (ResourceExhausted: too many in
  // flight; Unavailable; InvalidArgument: too large). bus::LogWriter::Append's
  // contract.
  virtual absl::Status Append(std::string_view nsp, std::string_view payload, Done done) = 0;
};

}  // namespace switchboard::broker
