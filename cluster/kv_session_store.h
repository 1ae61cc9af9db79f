#pragma once

// A recovery namespace's session records in a cluster (issue 17): one value
// per pid in the JetStream KV bucket bus::SessionBucket(nsp), shared by every
// edge, so that any edge restores any session, also one whose edge crashed.
//
// * Put and Erase never block the caller (an I/O shard, on every connect,
//   join, leave and disconnect): they are JetStream publishes to the key's
//   subject whose acks nobody waits for; one connection's publishes keep
//   their order, so a key's last write wins.
// * The bucket's TTL bounds what sessions that never come back leave behind;
//   a connected session's record is written again every TTL/3, so it stays
//   however long the session lasts (a SIGKILLed edge writes nothing more).
// * Take reads the record and claims it by compare-and-set (the record
//   becomes "connected on this edge"): of racing restores on any edges,
//   exactly one wins, and a pid is single-use per disconnection. A record
//   that says "connected" on another edge is either a crash (that edge's
//   NATS connection is gone: a probe on sb.v1.probe.<edge> gets "no
//   responders") or a client back before its old edge saw the close (the
//   record is read again until it says "disconnected", for `settle`).

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "bus/js_stream.h"
#include "edge/recovery/session_store.h"

namespace switchboard::bus {
class AsyncPublisher;
class Bus;
class JetStream;
class KvBucket;
namespace internal {
class Worker;
}
}  // namespace switchboard::bus

namespace switchboard::cluster {

class KvSessionStore final : public recovery::SessionStore {
 public:
  struct Options {
    std::string nsp;
    // maxDisconnectionDuration.
    std::chrono::milliseconds window{120'000};
    int replicas = 1;
    bus::JsStorage storage = bus::JsStorage::kFile;
    // This edge (a record's owner while connected here).
    std::string edge_id;
    // How long a record connected on a live edge may take to say
    // "disconnected" before a Take gives up (FailedPrecondition).
    std::chrono::milliseconds settle{1000};
    // The bucket's TTL; 0: max(2 × window, 1 h). Connected records are
    // written again every ttl/3.
    std::chrono::milliseconds ttl{0};
  };
  // Creates the bucket, or updates its limits. `js` and `bus` (the same NATS
  // connection's: probes go over it) outlive the store.
  static absl::StatusOr<std::unique_ptr<KvSessionStore>> Create(bus::JetStream& js, bus::Bus& bus,
                                                                Options options);
  ~KvSessionStore() override;
  KvSessionStore(const KvSessionStore&) = delete;
  KvSessionStore& operator=(const KvSessionStore&) = delete;

  void Put(recovery::SessionRecord record, Done done) override;
  void Erase(const std::string& pid, Done done) override;
  void Take(const std::string& pid, std::chrono::system_clock::time_point now,
            TakeDone done) override;

  // Records written as connected and not since disconnected or erased:
  // those rewritten every ttl/3.
  size_t connected_records() const;
  std::chrono::milliseconds ttl() const { return ttl_; }

 private:
  KvSessionStore(bus::JetStream& js, bus::Bus& bus, Options options,
                 std::unique_ptr<bus::KvBucket> bucket,
                 std::unique_ptr<bus::AsyncPublisher> writer);
  // Sends `value` for `key` without waiting.
  void Write(const std::string& key, std::string value, Done done);
  // Take, on the worker: `deadline` bounds waiting for a live edge's record.
  void TakeNow(const std::string& pid, std::chrono::system_clock::time_point now,
               std::chrono::steady_clock::time_point deadline, bool owner_alive, TakeDone done);
  void Claim(const std::string& pid, uint64_t revision, recovery::SessionRecord record,
             TakeDone done);
  void Refresh();

  bus::Bus& bus_;
  const Options options_;
  const std::chrono::milliseconds ttl_;
  std::unique_ptr<bus::KvBucket> bucket_;
  std::unique_ptr<bus::AsyncPublisher> writer_;
  const std::string subject_prefix_;  // "$KV.<bucket>."
  mutable std::mutex mu_;
  // pid -> the last value written for a connected session (rewritten).
  std::map<std::string, std::string> connected_;
  std::shared_ptr<bus::internal::Worker> worker_;
};

}  // namespace switchboard::cluster
