#pragma once

// Appends the recoverable events of a namespace to its JetStream log (the
// stream on LogSubject(nsp), proto/SUBJECTS.md): what brokers and relaying
// edges do instead of publishing on the target subjects when the namespace
// has connection state recovery.

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <memory>
#include <string_view>

#include "bus/js_publisher.h"

namespace switchboard::bus {

class JetStream;

class LogWriter {
 public:
  static absl::StatusOr<std::unique_ptr<LogWriter>> Create(const JetStream& js,
                                                           AsyncPublisher::Options options = {});
  // Sends an EdgeMessage's bytes to nsp's log without waiting. OK: `done`
  // runs once, in append order, with the stream sequence (the offset clients
  // see) or why it was not stored (NotFound: no stream takes the subject).
  // Otherwise `done` never runs (ResourceExhausted: too many in flight;
  // Unavailable; InvalidArgument: over max_payload).
  absl::Status Append(std::string_view nsp, std::string_view payload, AsyncPublisher::Done done);
  // Appends whose completion has not returned yet.
  size_t pending() const { return publisher_->pending(); }
  absl::Status Flush(std::chrono::milliseconds timeout) { return publisher_->Flush(timeout); }

 private:
  explicit LogWriter(std::unique_ptr<AsyncPublisher> publisher)
      : publisher_(std::move(publisher)) {}
  std::unique_ptr<AsyncPublisher> publisher_;
};

}  // namespace switchboard::bus
