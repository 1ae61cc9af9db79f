#pragma once

// A JetStream context on a NATS.c connection (NatsBus::native_connection()),
// and the check an edge makes before it relies on JetStream. The other
// JetStream building blocks (js_stream.h, js_range.h, js_publisher.h,
// js_consumer.h, kv_bucket.h) take a JetStream&. bus.h's Bus knows nothing
// of JetStream: only the NATS bus has it.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

typedef struct __natsConnection natsConnection;
typedef struct __jsCtx jsCtx;
typedef struct __natsSubscription natsSubscription;

namespace switchboard::bus {

class JetStream {
 public:
  struct Options {
    // Each JetStream API request (stream info, create, publish ack, get)
    // waits at most this long.
    std::chrono::milliseconds api_timeout{5000};
  };

  // A context on `conn` (kept alive by it). Does not talk to the server:
  // see Check().
  static absl::StatusOr<std::unique_ptr<JetStream>> Create(std::shared_ptr<natsConnection> conn,
                                                           Options options);
  static absl::StatusOr<std::unique_ptr<JetStream>> Create(std::shared_ptr<natsConnection> conn) {
    return Create(std::move(conn), Options());
  }
  ~JetStream();
  JetStream(const JetStream&) = delete;
  JetStream& operator=(const JetStream&) = delete;

  // OK when the server answers JetStream's account info request;
  // FailedPrecondition naming the server when it has no JetStream (started
  // without -js, or JetStream off for this account); Unavailable /
  // DeadlineExceeded when it cannot be asked.
  absl::Status Check();

  // Publishes to a stream's subject and waits for the stream's ack: the
  // message's sequence in the stream. NotFound when no stream takes the
  // subject.
  absl::StatusOr<uint64_t> Publish(std::string_view subject, std::string_view payload);

  // The URL of the server this connection is on (for messages).
  std::string server_url() const;

  jsCtx* native() const { return js_.get(); }
  natsConnection* connection() const { return conn_.get(); }
  const std::shared_ptr<natsConnection>& shared_connection() const { return conn_; }
  const Options& options() const { return options_; }

 private:
  JetStream(std::shared_ptr<natsConnection> conn, Options options);
  std::shared_ptr<natsConnection> conn_;
  Options options_;
  std::unique_ptr<jsCtx, void (*)(jsCtx*)> js_;
};

// JetStream::Create + Check in one call, for start-up checks.
absl::Status CheckJetStream(std::shared_ptr<natsConnection> conn);

}  // namespace switchboard::bus
