#pragma once

// Connection state recovery in a cluster (issue 17): for each namespace
// with it on, the publish log on JetStream (cluster/jetstream_log.h), the
// session records in a JetStream KV bucket (cluster/kv_session_store.h), and
// the writer through which this edge's own broadcasts reach the log. An edge
// refuses to start when its NATS server has no JetStream.

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bus/js_stream.h"
#include "edge/recovery/recovery.h"

namespace switchboard::bus {
class Bus;
class JetStream;
class LogWriter;
}  // namespace switchboard::bus
namespace switchboard::sio {
class Server;
}
namespace switchboard::cluster {
class JetStreamLog;
}

namespace switchboard::services {

struct ProcessFlags;

class ClusterRecovery {
 public:
  // A JetStream context on `bus`, which must be a NATS bus;
  // FailedPrecondition, saying how to fix it, when its server has no
  // JetStream. It must outlive the namespaces' Recovery objects (their
  // session stores use it).
  static absl::StatusOr<std::shared_ptr<bus::JetStream>> ConnectJetStream(bus::Bus& bus);
  // `bus` outlives this.
  static absl::StatusOr<std::unique_ptr<ClusterRecovery>> Create(bus::Bus& bus,
                                                                 std::shared_ptr<bus::JetStream> js,
                                                                 const ProcessFlags& flags,
                                                                 std::string edge_id);
  // Stops reading the logs and waits for this edge's appends in flight.
  ~ClusterRecovery();
  ClusterRecovery(const ClusterRecovery&) = delete;
  ClusterRecovery& operator=(const ClusterRecovery&) = delete;

  // A namespace's recovery on JetStream (its stream and bucket created or
  // updated with `options`); the log is read once StartReading runs.
  absl::StatusOr<std::unique_ptr<recovery::Recovery>> Make(const std::string& nsp,
                                                           const recovery::Options& options);
  // Every namespace made here reads its log from the stream's end on,
  // delivering to the namespace of `server` with its name.
  absl::Status StartReading(sio::Server& server);

  // EdgeLink::Options::append_to_log.
  absl::Status AppendToLog(std::string_view nsp, std::string_view payload,
                           std::function<void(absl::StatusOr<uint64_t>)> done);
  // The namespaces made here (heartbeats announce them to the brokers).
  const std::vector<std::string>& namespaces() const { return namespaces_; }

 private:
  ClusterRecovery(bus::Bus& bus, std::shared_ptr<bus::JetStream> js, int replicas,
                  bus::JsStorage storage, std::string edge_id);

  bus::Bus& bus_;
  const std::shared_ptr<bus::JetStream> js_;
  const int replicas_;
  const bus::JsStorage storage_;
  const std::string edge_id_;
  std::unique_ptr<bus::LogWriter> writer_;
  std::vector<std::string> namespaces_;
  // Owned by their namespaces' Recovery, which outlive this (the server is
  // destroyed after it).
  std::vector<cluster::JetStreamLog*> logs_;
};

}  // namespace switchboard::services
