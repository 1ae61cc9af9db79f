#include "services/broker_event_log.h"

#include <utility>

namespace switchboard::services {

absl::StatusOr<std::unique_ptr<BrokerEventLog>> BrokerEventLog::Create(const bus::NatsBus& bus) {
  absl::StatusOr<std::unique_ptr<bus::JetStream>> js =
      bus::JetStream::Create(bus.native_connection());
  if (!js.ok()) return js.status();
  if (absl::Status status = (*js)->Check(); !status.ok()) return status;
  absl::StatusOr<std::unique_ptr<bus::LogWriter>> writer = bus::LogWriter::Create(**js);
  if (!writer.ok()) return writer.status();
  return std::unique_ptr<BrokerEventLog>(new BrokerEventLog(std::move(*js), std::move(*writer)));
}

}  // namespace switchboard::services
