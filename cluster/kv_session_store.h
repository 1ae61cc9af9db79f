#pragma once

// Connection state recovery in a cluster: the session records of one
// namespace in a JetStream KV bucket (bus::SessionBucket), shared by every
// edge and outliving any of them (a record written before a crash is there
// for the edge the client reconnects to).

#include <absl/base/thread_annotations.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "bus/bus.h"
#include "bus/jetstream.h"
#include "bus/js_publisher.h"
#include "bus/js_stream.h"
#include "bus/kv_bucket.h"
#include "edge/recovery/session_store.h"

namespace switchboard::cluster {

// Values: a v1::SessionRecord (proto/switchboard/v1/recovery.proto, without
// the auth payload) under the pid as key; an empty value is an erased pid.
//
// Put and Erase never block the caller (an I/O shard, on every connect, join,
// leave, disconnect): they publish to the bucket's subject without waiting,
// on one connection, so the writes of one pid land in call order. Without a
// `done` they ask for no ack either: the edge saves every session change,
// and handling an ack per change cost it more than the write.
// KV's own limits (max bytes) refuse such a write unheard, as they would
// refuse one whose ack nobody waits for.
//
// A connected session writes nothing until it changes, and a SIGKILLed edge
// writes nothing at all, yet the bucket drops keys not written for a TTL
// (so that records of sessions that never come back do not pile up): the
// store re-puts every record it last wrote as connected each TTL/3.
//
// Take runs on the store's own threads. A record says "connected" both when
// its session is (the pid is reused) and when its edge died before writing
// "disconnected"; the owner is asked (a Probe on ProbeSubject(edge_id)):
// "no responders" means its NATS connection is gone, so the session was cut
// by the crash and is taken. An owner that answers (or is too slow to) may
// still be about to write "disconnected" (a client whose transport closed
// reconnects at once, to any edge): the record is re-read for `settle`
// before the pid counts as reused. Taking is a compare-and-set from the
// revision read to "connected here", so of racing takes (two edges, one
// client) exactly one gets the record; the others see it connected. So
// every edge using the store must answer probes under its `edge_id`
// (MembershipJournal does): one that does not looks dead, and its sessions'
// pids are taken while they are in use. "No responders" for an owner that
// is reconnecting to NATS has the same effect.
//
// A dead edge's clients all come back at once: its "no responders" is
// remembered for `settle`, and the takes of its records in that time claim
// them without a probe and a second read (one probe per dead edge and
// settle, not one per session).
class KvSessionStore final : public recovery::SessionStore {
 public:
  struct Options {
    std::string nsp;
    // maxDisconnectionDuration: a record disconnected longer is expired.
    std::chrono::milliseconds window{120000};
    int replicas = 1;
    bus::JsStorage storage = bus::JsStorage::kFile;
    // This edge: the owner written into the records it puts and takes.
    std::string edge_id;
    // How long a record said connected by a live edge is watched for its
    // "disconnected" write before the pid counts as reused.
    std::chrono::milliseconds settle{1000};
    // The bucket's TTL; 0: max(2 x window, 1 h). Connected records are
    // re-put every ttl / 3. Tests shorten it.
    std::chrono::milliseconds ttl{0};
    // Threads running Take's KV round trips (a take waiting for a probe
    // answer or its settle holds none). Each mostly waits for JetStream: a
    // dead edge's clients all restore at once, so more than the cores.
    int take_threads = 8;
    // Puts and erases in flight; past it Put fails (ResourceExhausted)
    // rather than queue without bound.
    size_t max_pending = 65536;
  };

  // Ensures the bucket (idempotent; every edge of the namespace calls it).
  // `js` and `bus` (the same NATS connection or not) must outlive the store.
  static absl::StatusOr<std::unique_ptr<KvSessionStore>> Create(bus::JetStream& js, bus::Bus& bus,
                                                                Options options);
  // Stops the refresh and take threads (queued takes complete with
  // Cancelled), waits for the probes in flight (at most `settle`) and
  // (bounded) for the writes in flight.
  ~KvSessionStore() override;
  KvSessionStore(const KvSessionStore&) = delete;
  KvSessionStore& operator=(const KvSessionStore&) = delete;

  // `done` runs on the publisher's thread once the server stored the write
  // (or with why not). A pid that is not a KV key ([A-Za-z0-9_-]: every
  // pid the edge makes) is InvalidArgument.
  void Put(recovery::SessionRecord record, Done done) override;
  // Writes an empty value (Take: NotFound).
  void Erase(const std::string& pid, Done done) override;
  // See above; `done` runs once, on a take thread (Cancelled while the store
  // closes: on the closing or a bus thread). Errors other than the
  // contract's (Unavailable, DeadlineExceeded of a KV request...) come as
  // they are: a new session for the client all the same.
  void Take(const std::string& pid, std::chrono::system_clock::time_point now,
            TakeDone done) override;

  const std::string& bucket() const { return kv_->bucket(); }
  // Probes sent to records' owners so far.
  uint64_t probes() const { return probes_.load(std::memory_order_relaxed); }
  std::chrono::milliseconds ttl() const { return ttl_; }

 private:
  KvSessionStore(bus::Bus& bus, Options options, std::chrono::milliseconds ttl,
                 std::unique_ptr<bus::KvBucket> kv, std::unique_ptr<bus::AsyncPublisher> publisher);

  // Sends without waiting; `done` runs only when the status is OK. Without
  // `done`, no ack is asked for.
  absl::Status Publish(const std::string& pid, const std::string& value, Done done)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RefreshLoop();

  // A take in progress. It never holds a thread while it waits (for a probe,
  // or between the re-reads of the settle): it is queued again.
  struct PendingTake {
    std::string pid;
    std::chrono::system_clock::time_point now;
    TakeDone done;
    // Set by the probe: the end of the settle.
    std::optional<std::chrono::steady_clock::time_point> settle_end;
    // The owner that did not answer its probe ("no responders").
    std::optional<std::string> gone_edge;
  };
  void TakeLoop();
  // Reads the record and decides, or probes its owner, or queues the next
  // read of the settle.
  void Step(PendingTake take);
  void Probe(PendingTake take, const std::string& owner);
  // True when a probe of `owner` found no responders less than `settle` ago.
  bool KnownGone(const std::string& owner, std::chrono::steady_clock::time_point now);
  // Runs `take` again at `at` (done with Cancelled once the store stops).
  void Requeue(PendingTake take, std::chrono::steady_clock::time_point at);
  // The disconnected record read at `revision`: expired, or taken.
  absl::StatusOr<recovery::SessionRecord> TakeDisconnected(
      const std::string& pid, recovery::SessionRecord record, uint64_t revision,
      std::chrono::system_clock::time_point now);
  // Compare-and-set from `revision` to "connected on this edge".
  absl::StatusOr<recovery::SessionRecord> Claim(const std::string& pid,
                                                recovery::SessionRecord record, uint64_t revision);

  bus::Bus& bus_;
  const Options options_;
  const std::chrono::milliseconds ttl_;
  std::unique_ptr<bus::KvBucket> kv_;
  std::unique_ptr<bus::AsyncPublisher> publisher_;
  const std::string subject_prefix_;  // "$KV.<bucket>."

  // Writes happen under it, so a refresh never lands after a newer write of
  // the same pid.
  mutable std::mutex mu_;
  // The value last written as connected, per pid (re-put by the refresh).
  std::unordered_map<std::string, std::string> connected_ ABSL_GUARDED_BY(mu_);
  // Owners whose probe found no responders, and when: gone for `settle`.
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> gone_edges_
      ABSL_GUARDED_BY(mu_);
  // Takes by the time they are due.
  std::multimap<std::chrono::steady_clock::time_point, PendingTake> takes_ ABSL_GUARDED_BY(mu_);
  int probes_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::condition_variable cv_;
  // The take threads wait on their own: one wakes per take queued.
  std::condition_variable takes_cv_;
  std::atomic<uint64_t> probes_{0};

  std::vector<std::thread> take_threads_;
  std::thread refresh_thread_;
};

}  // namespace switchboard::cluster
