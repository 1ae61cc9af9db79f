#include "cluster/jetstream_log.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bus/jetstream.h"
#include "bus/js_consumer.h"
#include "bus/js_range.h"
#include "bus/routing.h"
#include "bus/worker.h"
#include "cluster/delivery_codec.h"
#include "edge/recovery/offset.h"
#include "switchboard/v1/bus.pb.h"

namespace switchboard::cluster {

absl::StatusOr<std::unique_ptr<JetStreamLog>> JetStreamLog::Create(bus::JetStream& js,
                                                                   Options options) {
  bus::StreamConfig config;
  config.name = bus::LogStream(options.nsp);
  config.subject = bus::LogSubject(options.nsp);
  config.storage = options.storage;
  config.replicas = options.replicas;
  config.max_age = options.recovery.max_disconnection_duration;
  config.max_bytes = static_cast<int64_t>(options.recovery.max_log_bytes);
  if (absl::Status status = bus::EnsureStream(js, config); !status.ok()) {
    return absl::Status(status.code(),
                        absl::StrCat("the recovery log of namespace ", options.nsp, " (stream ",
                                     config.name, "): ", status.message()));
  }
  return std::unique_ptr<JetStreamLog>(new JetStreamLog(js, std::move(options)));
}

JetStreamLog::JetStreamLog(bus::JetStream& js, Options options)
    : js_(js),
      options_(std::move(options)),
      stream_(bus::LogStream(options_.nsp)),
      subject_(bus::LogSubject(options_.nsp)),
      tail_(options_.recovery.max_disconnection_duration, options_.recovery.max_log_bytes),
      reader_(std::make_shared<bus::internal::Worker>()) {}

JetStreamLog::~JetStreamLog() { Stop(); }

absl::Status JetStreamLog::Start(Deliver deliver) {
  absl::StatusOr<bus::StreamBounds> bounds = bus::GetStreamBounds(js_, stream_);
  if (!bounds.ok()) return bounds.status();
  // What was stored before this edge started is read from the stream when a
  // restore needs it (ReadOlder); from here on, it is delivered and held.
  tail_.StartAfter(bounds->last_seq);
  bus::OrderedConsumer::Options options;
  options.stream = stream_;
  options.subject = subject_;
  options.start_seq = bounds->last_seq + 1;
  auto consumer = bus::OrderedConsumer::Start(
      js_, options, [this, deliver = std::move(deliver)](bus::StoredMessage message) {
        std::shared_ptr<const sio::Delivery> delivery = Decode(message.payload);
        if (!delivery) {
          // A hole in the offsets: restores before it read the stream.
          undecodable_.fetch_add(1, std::memory_order_relaxed);
          return;
        }
        deliver(message.seq, std::move(delivery));
      });
  if (!consumer.ok()) return consumer.status();
  consumer_ = std::move(*consumer);
  return absl::OkStatus();
}

void JetStreamLog::Stop() {
  if (consumer_) consumer_->Stop();
  // Reads already asked for finish (their callbacks post to the shards);
  // none starts after.
  reader_->Shutdown();
}

std::shared_ptr<const sio::Delivery> JetStreamLog::Decode(const std::string& payload) const {
  v1::EdgeMessage message;
  if (!message.ParseFromString(payload) || !message.has_delivery()) return nullptr;
  const v1::Delivery& delivery = message.delivery();
  absl::StatusOr<std::vector<eio::Frame>> frames = DeliveryFrames(delivery, options_.nsp);
  if (!frames.ok() || !recovery::IsRecoverable(*frames)) return nullptr;
  auto out = std::make_shared<sio::Delivery>();
  out->target = ToBroadcastTarget(delivery.target());
  out->frames = std::move(*frames);
  return out;
}

absl::StatusOr<recovery::LogEntryPtr> JetStreamLog::Append(sio::BroadcastTarget target,
                                                           const Encode& encode, uint64_t given) {
  if (given == 0) {
    return absl::UnimplementedError("a cluster's recovery log takes publishes from its stream");
  }
  return tail_.Append(std::move(target), encode, given);
}

void JetStreamLog::ReadAfter(uint64_t after, const Match& match, ReadDone done) {
  tail_.ReadAfter(after, match, std::move(done));
}

void JetStreamLog::ReadOlder(uint64_t after, const Match& match, OlderDone done) {
  recovery::LogStats held = tail_.Stats();
  if (after > held.last_offset) {
    // Another edge may have delivered further than this one yet: an offset
    // the stream gave is good (this edge skips up to it), any other is not.
    reader_->Post([this, after, done = std::move(done)] {
      absl::StatusOr<bus::StreamBounds> bounds = bus::GetStreamBounds(js_, stream_);
      if (!bounds.ok()) return done(bounds.status());
      if (after > bounds->last_seq) {
        return done(absl::InvalidArgumentError("offset beyond the log's end"));
      }
      done(Older{{}, after});
    });
    return;
  }
  // Everything up to `through` is older than what this edge holds.
  uint64_t through = held.entries > 0 ? held.first_offset - 1 : held.last_offset;
  if (after >= through) return done(Older{{}, after});
  reader_->Post([this, after, through, match, done = std::move(done)] {
    Older older;
    older.through = through;
    uint64_t next = after;
    while (next < through) {
      absl::StatusOr<bus::Range> range = bus::ReadRange(js_, stream_, subject_, next, through);
      if (!range.ok()) return done(range.status());
      // Stream sequences are contiguous: a first one past next + 1 means the
      // stream's limits removed what the client missed.
      if (range->messages.empty() || range->messages.front().seq != next + 1) {
        return done(absl::OutOfRangeError("the recovery log no longer holds that offset"));
      }
      for (bus::StoredMessage& message : range->messages) {
        next = message.seq;
        std::shared_ptr<const sio::Delivery> delivery = Decode(message.payload);
        if (!delivery || !match(delivery->target)) continue;
        auto logged = std::make_shared<sio::Delivery>();
        logged->target = delivery->target;
        logged->frames = *recovery::WithOffset(delivery->frames, message.seq);
        logged->offset = message.seq;
        auto entry = std::make_shared<recovery::LogEntry>();
        entry->offset = message.seq;
        entry->delivery = std::move(logged);
        older.entries.push_back(std::move(entry));
      }
      if (range->complete) break;
    }
    done(std::move(older));
  });
}

}  // namespace switchboard::cluster
