#include "cluster/kv_session_store.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "bus/routing.h"
#include "cluster/moved_socket_proto.h"
#include "switchboard/v1/bus.pb.h"
#include "switchboard/v1/recovery.pb.h"

namespace switchboard::cluster {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::system_clock;

// How often a record said connected by a live edge is re-read during the
// settle.
constexpr milliseconds kSettlePoll{50};

// Pids are two edge::NewId: [A-Za-z0-9_-], all of them KV key characters.
// Anything else (a client's invention) cannot be a key we wrote.
bool ValidKey(std::string_view pid) {
  if (pid.empty() || pid.size() > 256) return false;
  return std::all_of(pid.begin(), pid.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
}

std::string Serialize(const recovery::SessionRecord& record) {
  v1::SessionRecord out;
  out.set_pid(record.pid);
  ToProto(record.state, out.mutable_socket());
  out.mutable_socket()->clear_auth_json();
  out.set_start_offset(record.start_offset);
  if (record.disconnected_at) {
    out.set_disconnected_unix_ns(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     record.disconnected_at->time_since_epoch())
                                     .count());
  }
  out.set_edge_id(record.edge_id);
  return out.SerializeAsString();
}

absl::StatusOr<recovery::SessionRecord> Parse(const std::string& value) {
  // Empty: erased.
  if (value.empty()) return absl::NotFoundError("unknown pid");
  v1::SessionRecord in;
  if (!in.ParseFromString(value)) return absl::NotFoundError("unreadable session record");
  recovery::SessionRecord record;
  record.pid = in.pid();
  record.state = FromProto(in.socket());
  record.start_offset = in.start_offset();
  if (in.has_disconnected_unix_ns()) {
    record.disconnected_at = Clock::time_point(std::chrono::duration_cast<Clock::duration>(
        std::chrono::nanoseconds(in.disconnected_unix_ns())));
  }
  record.edge_id = in.edge_id();
  return record;
}

absl::Status Reused() { return absl::FailedPreconditionError("session in use"); }

}  // namespace

absl::StatusOr<std::unique_ptr<KvSessionStore>> KvSessionStore::Create(bus::JetStream& js,
                                                                       bus::Bus& bus,
                                                                       Options options) {
  if (options.edge_id.empty()) return absl::InvalidArgumentError("KvSessionStore needs an edge id");
  // Records of sessions that never come back go after the TTL; a
  // disconnected one must outlive its window (with margin for clock skew
  // between edges).
  milliseconds ttl = options.ttl;
  if (ttl <= milliseconds::zero()) {
    ttl = std::max<milliseconds>(2 * options.window, std::chrono::hours(1));
  }
  bus::KvConfig config;
  config.bucket = bus::SessionBucket(options.nsp);
  config.ttl = ttl;
  config.replicas = options.replicas;
  config.storage = options.storage;
  auto kv = bus::KvBucket::Ensure(js, config);
  if (!kv.ok()) return kv.status();
  bus::AsyncPublisher::Options publisher_options;
  publisher_options.max_pending = options.max_pending;
  auto publisher = bus::AsyncPublisher::Create(js, std::move(publisher_options));
  if (!publisher.ok()) return publisher.status();
  return std::unique_ptr<KvSessionStore>(
      new KvSessionStore(bus, std::move(options), ttl, std::move(*kv), std::move(*publisher)));
}

KvSessionStore::KvSessionStore(bus::Bus& bus, Options options, milliseconds ttl,
                               std::unique_ptr<bus::KvBucket> kv,
                               std::unique_ptr<bus::AsyncPublisher> publisher)
    : bus_(bus),
      options_(std::move(options)),
      ttl_(ttl),
      kv_(std::move(kv)),
      publisher_(std::move(publisher)),
      subject_prefix_(absl::StrCat("$KV.", kv_->bucket(), ".")) {
  int threads = std::max(1, options_.take_threads);
  for (int i = 0; i < threads; ++i) take_threads_.emplace_back([this] { TakeLoop(); });
  refresh_thread_ = std::thread([this] { RefreshLoop(); });
}

KvSessionStore::~KvSessionStore() {
  std::multimap<std::chrono::steady_clock::time_point, PendingTake> cancelled;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    cancelled.swap(takes_);
  }
  cv_.notify_all();
  takes_cv_.notify_all();
  for (auto& [at, take] : cancelled) take.done(absl::CancelledError("session store closing"));
  for (auto& thread : take_threads_) thread.join();
  refresh_thread_.join();
  {
    // A probe's callback touches the store; the bus calls it within
    // `settle` (its timeout). Takes it requeues now are cancelled.
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return probes_in_flight_ == 0; });
  }
  // The publisher's destructor waits for the writes in flight.
  publisher_.reset();
}

absl::Status KvSessionStore::Publish(const std::string& pid, const std::string& value, Done done) {
  // Nobody waits for it (a shard saving a session): no ack to handle.
  if (!done) return publisher_->PublishUnacknowledged(absl::StrCat(subject_prefix_, pid), value);
  return publisher_->Publish(absl::StrCat(subject_prefix_, pid), value,
                             [done = std::move(done)](absl::StatusOr<uint64_t> sequence) {
                               if (done) done(sequence.status());
                             });
}

void KvSessionStore::Put(recovery::SessionRecord record, Done done) {
  if (!ValidKey(record.pid)) {
    if (done) done(absl::InvalidArgumentError("pid is not a KV key"));
    return;
  }
  std::string value = Serialize(record);
  absl::Status status;
  {
    std::lock_guard lock(mu_);
    if (record.disconnected_at) {
      connected_.erase(record.pid);
    } else {
      connected_.insert_or_assign(record.pid, value);
    }
    status = Publish(record.pid, value, done);
  }
  // Not sent: the publisher never runs `done`.
  if (!status.ok() && done) done(status);
}

void KvSessionStore::Erase(const std::string& pid, Done done) {
  if (!ValidKey(pid)) {
    if (done) done(absl::OkStatus());  // never written
    return;
  }
  absl::Status status;
  {
    std::lock_guard lock(mu_);
    connected_.erase(pid);
    status = Publish(pid, std::string(), done);
  }
  if (!status.ok() && done) done(status);
}

void KvSessionStore::RefreshLoop() {
  const milliseconds period = std::max<milliseconds>(ttl_ / 3, milliseconds(10));
  std::unique_lock lock(mu_);
  while (!stop_) {
    if (cv_.wait_for(lock, period, [this] { return stop_; })) break;
    std::vector<std::string> pids;
    pids.reserve(connected_.size());
    for (const auto& [pid, value] : connected_) pids.push_back(pid);
    lock.unlock();
    size_t failed = 0;
    for (const std::string& pid : pids) {
      // One pid at a time under the lock: a Put in between is either before
      // (and re-put here if still connected) or after this write.
      lock.lock();
      for (int retries = 0; !stop_;) {
        auto it = connected_.find(pid);
        if (it == connected_.end()) break;
        absl::Status sent = Publish(pid, it->second, [](absl::Status status) {
          if (!status.ok()) spdlog::debug("session record refresh failed: {}", status.ToString());
        });
        // At the bound of writes in flight: wait for acks rather than skip.
        if (absl::IsResourceExhausted(sent) && ++retries <= 100) {
          cv_.wait_for(lock, milliseconds(10), [this] { return stop_; });
          continue;
        }
        if (!sent.ok()) ++failed;
        break;
      }
      if (stop_) break;
      lock.unlock();
    }
    if (!lock.owns_lock()) lock.lock();
    if (failed > 0) spdlog::warn("{} session record refreshes failed", failed);
  }
}

void KvSessionStore::Take(const std::string& pid, Clock::time_point now, TakeDone done) {
  {
    std::lock_guard lock(mu_);
    if (!stop_) {
      PendingTake take;
      take.pid = pid;
      take.now = now;
      take.done = std::move(done);
      takes_.emplace(std::chrono::steady_clock::now(), std::move(take));
      takes_cv_.notify_one();
      return;
    }
  }
  done(absl::CancelledError("session store closing"));
}

void KvSessionStore::Requeue(PendingTake take, std::chrono::steady_clock::time_point at) {
  {
    std::lock_guard lock(mu_);
    if (!stop_) {
      takes_.emplace(at, std::move(take));
      takes_cv_.notify_one();
      return;
    }
  }
  take.done(absl::CancelledError("session store closing"));
}

void KvSessionStore::TakeLoop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    if (takes_.empty()) {
      takes_cv_.wait(lock);
      continue;
    }
    auto first = takes_.begin();
    // A copy: another thread may take that entry while this one waits.
    const auto due = first->first;
    if (due > std::chrono::steady_clock::now()) {
      takes_cv_.wait_until(lock, due);
      continue;
    }
    PendingTake take = std::move(first->second);
    takes_.erase(first);
    // This thread may have been the one waiting for the next entry's time.
    if (!takes_.empty()) takes_cv_.notify_one();
    lock.unlock();
    Step(std::move(take));
    lock.lock();
  }
}

void KvSessionStore::Step(PendingTake take) {
  if (!ValidKey(take.pid)) return take.done(absl::NotFoundError("unknown pid"));
  auto entry = kv_->Get(take.pid);
  if (absl::IsNotFound(entry.status())) return take.done(absl::NotFoundError("unknown pid"));
  if (!entry.ok()) return take.done(entry.status());
  auto record = Parse(entry->value);
  if (!record.ok()) return take.done(record.status());
  if (record->disconnected_at) {
    return take.done(TakeDisconnected(take.pid, std::move(*record), entry->revision, take.now));
  }
  if (record->edge_id == options_.edge_id) return take.done(Reused());
  const auto now = std::chrono::steady_clock::now();
  if ((take.gone_edge && *take.gone_edge == record->edge_id) ||
      (!take.settle_end && KnownGone(record->edge_id, now))) {
    return take.done(Claim(take.pid, std::move(*record), entry->revision));
  }
  if (!take.settle_end) {
    take.settle_end = now + options_.settle;
    return Probe(std::move(take), record->edge_id);
  }
  if (now >= *take.settle_end) return take.done(Reused());
  Requeue(std::move(take), now + kSettlePoll);
}

bool KvSessionStore::KnownGone(const std::string& owner,
                               std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mu_);
  auto it = gone_edges_.find(owner);
  if (it == gone_edges_.end()) return false;
  if (now - it->second < options_.settle) return true;
  gone_edges_.erase(it);
  return false;
}

void KvSessionStore::Probe(PendingTake take, const std::string& owner) {
  if (!bus::ValidNodeId(owner)) return Requeue(std::move(take), std::chrono::steady_clock::now());
  {
    std::lock_guard lock(mu_);
    ++probes_in_flight_;
  }
  probes_.fetch_add(1, std::memory_order_relaxed);
  v1::Probe probe;
  probe.set_broker_id(options_.edge_id);
  // Shared: the callback is a std::function, which must be copyable.
  auto pending = std::make_shared<PendingTake>(std::move(take));
  bus_.Request(
      bus::ProbeSubject(owner), probe.SerializeAsString(), options_.settle,
      [this, pending, owner](absl::StatusOr<bus::Message> reply) {
        // "No responders": the owner's subscriptions are gone with its
        // connection. The next step claims the record if it still names it.
        const auto now = std::chrono::steady_clock::now();
        if (absl::IsNotFound(reply.status())) pending->gone_edge = owner;
        Requeue(std::move(*pending), now);
        std::lock_guard lock(mu_);
        if (absl::IsNotFound(reply.status())) {
          // Edge ids come and go (pod names): forget the old ones here.
          std::erase_if(gone_edges_,
                        [&](const auto& gone) { return now - gone.second >= options_.settle; });
          gone_edges_.insert_or_assign(owner, now);
        }
        if (--probes_in_flight_ == 0) cv_.notify_all();
      },
      bus::InlineExecutor);
}

absl::StatusOr<recovery::SessionRecord> KvSessionStore::TakeDisconnected(
    const std::string& pid, recovery::SessionRecord record, uint64_t revision,
    Clock::time_point now) {
  if (now - *record.disconnected_at > options_.window) {
    absl::Status deleted = kv_->Delete(pid);
    if (!deleted.ok()) spdlog::debug("expired session record not deleted: {}", deleted.ToString());
    return absl::DeadlineExceededError("session expired");
  }
  return Claim(pid, std::move(record), revision);
}

absl::StatusOr<recovery::SessionRecord> KvSessionStore::Claim(const std::string& pid,
                                                              recovery::SessionRecord record,
                                                              uint64_t revision) {
  // "Connected here": a second take sees the pid in use, and a probe of
  // this edge answers while the restored session lives.
  recovery::SessionRecord taken = record;
  taken.disconnected_at.reset();
  taken.edge_id = options_.edge_id;
  auto updated = kv_->Update(pid, Serialize(taken), revision);
  if (absl::IsFailedPrecondition(updated.status())) return Reused();
  if (!updated.ok()) return updated.status();
  return record;
}

}  // namespace switchboard::cluster
