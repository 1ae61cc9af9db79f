#include "bus/log_writer.h"

#include <utility>

#include "bus/routing.h"

namespace switchboard::bus {

absl::StatusOr<std::unique_ptr<LogWriter>> LogWriter::Create(const JetStream& js,
                                                             AsyncPublisher::Options options) {
  absl::StatusOr<std::unique_ptr<AsyncPublisher>> publisher =
      AsyncPublisher::Create(js, std::move(options));
  if (!publisher.ok()) return publisher.status();
  return std::unique_ptr<LogWriter>(new LogWriter(std::move(*publisher)));
}

absl::Status LogWriter::Append(std::string_view nsp, std::string_view payload,
                               AsyncPublisher::Done done) {
  return publisher_->Publish(LogSubject(nsp), payload, std::move(done));
}

}  // namespace switchboard::bus
