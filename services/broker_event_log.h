#pragma once

// The broker's EventLog (broker/event_log.h) on JetStream: bus::LogWriter on
// the NATS bus's connection, appending to the namespace's stream on
// LogSubject(nsp). The edges create the streams; the broker only appends.

#include <memory>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "broker/event_log.h"
#include "bus/jetstream.h"
#include "bus/log_writer.h"
#include "bus/nats_bus.h"

namespace switchboard::services {

class BrokerEventLog final : public broker::EventLog {
 public:
  // Checks that the server has JetStream (FailedPrecondition when not;
  // Unavailable / DeadlineExceeded when it cannot be asked) and makes the
  // writer. `bus` must outlive the log.
  static absl::StatusOr<std::unique_ptr<BrokerEventLog>> Create(const bus::NatsBus& bus);
  // Waits for the appends in flight (bus::AsyncPublisher's destructor).
  ~BrokerEventLog() override = default;

  absl::Status Append(std::string_view nsp, std::string_view payload, Done done) override {
    return writer_->Append(nsp, payload, std::move(done));
  }

 private:
  BrokerEventLog(std::unique_ptr<bus::JetStream> js, std::unique_ptr<bus::LogWriter> writer)
      : js_(std::move(js)), writer_(std::move(writer)) {}
  std::unique_ptr<bus::JetStream> js_;
  std::unique_ptr<bus::LogWriter> writer_;  // on js_'s connection
};

}  // namespace switchboard::services
