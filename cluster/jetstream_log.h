#pragma once

// A recovery namespace's publish log in a cluster (issue 17): the JetStream
// stream bus::LogStream(nsp) on bus::LogSubject(nsp). Brokers and relaying
// edges append each recoverable publish to it once; every edge reads it in
// order with an ordered consumer and delivers each message with its stream
// sequence as the offset, so an offset means the same on every edge. This
// edge keeps what it read in memory (a MemoryLog tail: the window, up to the
// byte cap) for restores, and reads anything older from the stream.
// docs/DESIGN-NOTES.md, "Connection state recovery".

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "bus/js_stream.h"
#include "edge/recovery/memory_log.h"
#include "edge/recovery/options.h"
#include "edge/recovery/recovery_log.h"

namespace switchboard::bus {
class JetStream;
class OrderedConsumer;
namespace internal {
class Worker;
}
}  // namespace switchboard::bus

namespace switchboard::cluster {

class JetStreamLog final : public recovery::RecoveryLog {
 public:
  struct Options {
    std::string nsp;
    recovery::Options recovery;
    int replicas = 1;
    bus::JsStorage storage = bus::JsStorage::kFile;
  };
  // Creates the namespace's stream, or updates its limits (max age: the
  // recovery window; max bytes: the log cap; oldest dropped first).
  static absl::StatusOr<std::unique_ptr<JetStreamLog>> Create(bus::JetStream& js, Options options);
  ~JetStreamLog() override;  // Stop()
  JetStreamLog(const JetStreamLog&) = delete;
  JetStreamLog& operator=(const JetStreamLog&) = delete;

  // Reads the stream from its end on, handing each publish to `deliver`
  // with its offset, one at a time and in order, on a NATS thread
  // (Namespace::DeliverFromLog, which appends it here under the namespace's
  // order lock).
  using Deliver = std::function<void(uint64_t offset, std::shared_ptr<const sio::Delivery>)>;
  absl::Status Start(Deliver deliver);
  // No delivery or read of the older part starts once it returns.
  // Idempotent.
  void Stop();

  // recovery::RecoveryLog. Append takes only offsets the stream gave.
  absl::StatusOr<recovery::LogEntryPtr> Append(sio::BroadcastTarget target, const Encode& encode,
                                               uint64_t given) override;
  void ReadAfter(uint64_t after, const Match& match, ReadDone done) override;
  void ReadOlder(uint64_t after, const Match& match, OlderDone done) override;
  recovery::LogStats Stats() const override { return tail_.Stats(); }
  bool shared() const override { return true; }

  // Stream messages that were not a delivery this edge could decode.
  uint64_t undecodable() const { return undecodable_.load(std::memory_order_relaxed); }

 private:
  JetStreamLog(bus::JetStream& js, Options options);
  // The stream message as a log entry's delivery (target, packet without
  // its offset); nullptr when it is not one.
  std::shared_ptr<const sio::Delivery> Decode(const std::string& payload) const;

  bus::JetStream& js_;
  const Options options_;
  const std::string stream_;
  const std::string subject_;
  recovery::MemoryLog tail_;
  std::unique_ptr<bus::OrderedConsumer> consumer_;
  // Reads of the older part (ReadOlder), off the callers' threads.
  std::shared_ptr<bus::internal::Worker> reader_;
  std::atomic<uint64_t> undecodable_{0};
};

}  // namespace switchboard::cluster
