#include "services/cluster_recovery.h"

#include <spdlog/spdlog.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "bus/jetstream.h"
#include "bus/log_writer.h"
#include "bus/nats_bus.h"
#include "cluster/jetstream_log.h"
#include "cluster/kv_session_store.h"
#include "edge/socketio/server.h"
#include "services/process.h"

namespace switchboard::services {

absl::StatusOr<std::shared_ptr<bus::JetStream>> ClusterRecovery::ConnectJetStream(bus::Bus& bus) {
  auto* nats = dynamic_cast<bus::NatsBus*>(&bus);
  if (nats == nullptr) {
    return absl::FailedPreconditionError("connection state recovery in a cluster needs NATS");
  }
  absl::StatusOr<std::unique_ptr<bus::JetStream>> js =
      bus::JetStream::Create(nats->native_connection());
  if (!js.ok()) return js.status();
  if (absl::Status status = (*js)->Check(); !status.ok()) {
    return absl::Status(status.code(), absl::StrCat("connection state recovery needs JetStream: ",
                                                    status.message()));
  }
  return std::shared_ptr<bus::JetStream>(std::move(*js));
}

absl::StatusOr<std::unique_ptr<ClusterRecovery>> ClusterRecovery::Create(
    bus::Bus& bus, std::shared_ptr<bus::JetStream> js, const ProcessFlags& flags,
    std::string edge_id) {
  bus::JsStorage storage =
      flags.jetstream_storage == "memory" ? bus::JsStorage::kMemory : bus::JsStorage::kFile;
  std::unique_ptr<ClusterRecovery> out(
      new ClusterRecovery(bus, js, flags.jetstream_replicas, storage, std::move(edge_id)));
  absl::StatusOr<std::unique_ptr<bus::LogWriter>> writer = bus::LogWriter::Create(*js);
  if (!writer.ok()) return writer.status();
  out->writer_ = std::move(*writer);
  return out;
}

ClusterRecovery::ClusterRecovery(bus::Bus& bus, std::shared_ptr<bus::JetStream> js, int replicas,
                                 bus::JsStorage storage, std::string edge_id)
    : bus_(bus),
      js_(std::move(js)),
      replicas_(replicas),
      storage_(storage),
      edge_id_(std::move(edge_id)) {}

ClusterRecovery::~ClusterRecovery() {
  for (cluster::JetStreamLog* log : logs_) log->Stop();
  if (writer_) (void)writer_->Flush(std::chrono::seconds(2));
  writer_.reset();
}

absl::StatusOr<std::unique_ptr<recovery::Recovery>> ClusterRecovery::Make(
    const std::string& nsp, const recovery::Options& options) {
  auto log = cluster::JetStreamLog::Create(
      *js_, {.nsp = nsp, .recovery = options, .replicas = replicas_, .storage = storage_});
  if (!log.ok()) return log.status();
  cluster::KvSessionStore::Options store_options;
  store_options.nsp = nsp;
  store_options.window = options.max_disconnection_duration;
  store_options.replicas = replicas_;
  store_options.storage = storage_;
  store_options.edge_id = edge_id_;
  auto sessions = cluster::KvSessionStore::Create(*js_, bus_, std::move(store_options));
  if (!sessions.ok()) {
    return absl::Status(
        sessions.status().code(),
        absl::StrCat("the session records of namespace ", nsp, ": ", sessions.status().message()));
  }
  logs_.push_back(log->get());
  namespaces_.push_back(nsp);
  return std::make_unique<recovery::Recovery>(options, std::move(*log), std::move(*sessions));
}

absl::Status ClusterRecovery::StartReading(sio::Server& server) {
  for (size_t i = 0; i < logs_.size(); ++i) {
    sio::Namespace* nsp = server.Find(namespaces_[i]);
    if (nsp == nullptr) return absl::InternalError(absl::StrCat("no namespace ", namespaces_[i]));
    absl::Status status =
        logs_[i]->Start([nsp](uint64_t offset, std::shared_ptr<const sio::Delivery> delivery) {
          nsp->DeliverFromLog(offset, std::move(delivery));
        });
    if (!status.ok()) {
      return absl::Status(status.code(), absl::StrCat("reading the recovery log of namespace ",
                                                      namespaces_[i], ": ", status.message()));
    }
  }
  return absl::OkStatus();
}

absl::Status ClusterRecovery::AppendToLog(std::string_view nsp, std::string_view payload,
                                          std::function<void(absl::StatusOr<uint64_t>)> done) {
  return writer_->Append(nsp, payload, std::move(done));
}

}  // namespace switchboard::services
