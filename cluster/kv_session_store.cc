#include "cluster/kv_session_store.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bus/bus.h"
#include "bus/jetstream.h"
#include "bus/js_publisher.h"
#include "bus/kv_bucket.h"
#include "bus/routing.h"
#include "bus/worker.h"
#include "cluster/moved_socket_codec.h"
#include "switchboard/v1/bus.pb.h"
#include "switchboard/v1/move.pb.h"

namespace switchboard::cluster {
namespace {

using Clock = std::chrono::system_clock;

// Pids are ours ([A-Za-z0-9_-]); anything else a client sends is unknown.
bool ValidKey(std::string_view key) {
  if (key.empty() || key.size() > 128) return false;
  for (char c : key) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

int64_t UnixMs(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string Encode(const recovery::SessionRecord& record, bool ended = false) {
  v1::SessionRecord out;
  out.set_pid(record.pid);
  MovedSocketToProto(record.state, out.mutable_socket());
  out.set_start_offset(record.start_offset);
  if (record.disconnected_at) out.set_disconnected_unix_ms(UnixMs(*record.disconnected_at));
  out.set_edge_id(record.edge_id);
  out.set_ended(ended);
  return out.SerializeAsString();
}

// nullopt: not a record, or one of a session that ended for good.
std::optional<recovery::SessionRecord> Decode(const std::string& value) {
  v1::SessionRecord in;
  if (!in.ParseFromString(value) || in.ended()) return std::nullopt;
  recovery::SessionRecord record;
  record.pid = in.pid();
  record.state = MovedSocketFromProto(in.socket());
  record.start_offset = in.start_offset();
  if (in.disconnected_unix_ms() != 0) {
    record.disconnected_at =
        Clock::time_point(std::chrono::milliseconds(in.disconnected_unix_ms()));
  }
  record.edge_id = in.edge_id();
  return record;
}

}  // namespace

absl::StatusOr<std::unique_ptr<KvSessionStore>> KvSessionStore::Create(bus::JetStream& js,
                                                                       bus::Bus& bus,
                                                                       Options options) {
  bus::KvConfig config;
  config.bucket = bus::SessionBucket(options.nsp);
  config.ttl = options.ttl.count() > 0
                   ? options.ttl
                   : std::max<std::chrono::milliseconds>(2 * options.window, std::chrono::hours(1));
  config.replicas = options.replicas;
  config.storage = options.storage;
  auto bucket = bus::KvBucket::Ensure(js, config);
  if (!bucket.ok()) return bucket.status();
  // Records are small: a connect storm's writes all fit in flight.
  bus::AsyncPublisher::Options writer_options;
  writer_options.max_pending = size_t{1} << 16;
  auto writer = bus::AsyncPublisher::Create(js, std::move(writer_options));
  if (!writer.ok()) return writer.status();
  options.ttl = config.ttl;
  std::unique_ptr<KvSessionStore> store(
      new KvSessionStore(js, bus, std::move(options), std::move(*bucket), std::move(*writer)));
  store->worker_->PostAfter(store->ttl_ / 3, [store = store.get()] { store->Refresh(); });
  return store;
}

KvSessionStore::KvSessionStore(bus::JetStream& js, bus::Bus& bus, Options options,
                               std::unique_ptr<bus::KvBucket> bucket,
                               std::unique_ptr<bus::AsyncPublisher> writer)
    : bus_(bus),
      options_(std::move(options)),
      ttl_(options_.ttl),
      bucket_(std::move(bucket)),
      writer_(std::move(writer)),
      subject_prefix_(absl::StrCat("$KV.", bucket_->bucket(), ".")),
      worker_(std::make_shared<bus::internal::Worker>()) {
  (void)js;
}

KvSessionStore::~KvSessionStore() {
  worker_->Shutdown();  // no Take or refresh runs past here
  writer_.reset();      // waits for the writes in flight
}

void KvSessionStore::Write(const std::string& key, std::string value, Done done) {
  absl::Status sent = writer_->Publish(
      subject_prefix_ + key, value, [done, key](absl::StatusOr<uint64_t> revision) {
        if (!revision.ok()) {
          spdlog::warn("session record {} not stored: {}", key, revision.status().ToString());
        }
        if (done) done(revision.status());
      });
  if (!sent.ok()) {
    spdlog::warn("session record {} not sent: {}", key, sent.ToString());
    if (done) done(sent);
  }
}

void KvSessionStore::Put(recovery::SessionRecord record, Done done) {
  if (!ValidKey(record.pid)) {
    if (done) done(absl::InvalidArgumentError("not a pid"));
    return;
  }
  std::string value = Encode(record);
  {
    std::lock_guard lock(mu_);
    if (record.disconnected_at) {
      connected_.erase(record.pid);
    } else {
      connected_.insert_or_assign(record.pid, value);
    }
  }
  Write(record.pid, std::move(value), std::move(done));
}

void KvSessionStore::Erase(const std::string& pid, Done done) {
  if (!ValidKey(pid)) {
    if (done) done(absl::OkStatus());
    return;
  }
  {
    std::lock_guard lock(mu_);
    connected_.erase(pid);
  }
  recovery::SessionRecord ended;
  ended.pid = pid;
  ended.edge_id = options_.edge_id;
  Write(pid, Encode(ended, /*ended=*/true), std::move(done));
}

void KvSessionStore::Take(const std::string& pid, Clock::time_point now, TakeDone done) {
  if (!ValidKey(pid)) return done(absl::NotFoundError("unknown pid"));
  auto deadline = std::chrono::steady_clock::now() + options_.settle;
  worker_->Post([this, pid, now, deadline, done = std::move(done)]() mutable {
    TakeNow(pid, now, deadline, false, std::move(done));
  });
}

void KvSessionStore::TakeNow(const std::string& pid, Clock::time_point now,
                             std::chrono::steady_clock::time_point deadline, bool owner_alive,
                             TakeDone done) {
  absl::StatusOr<bus::KvEntry> entry = bucket_->Get(pid);
  if (absl::IsNotFound(entry.status())) return done(absl::NotFoundError("unknown pid"));
  if (!entry.ok()) return done(entry.status());
  std::optional<recovery::SessionRecord> record = Decode(entry->value);
  if (!record) return done(absl::NotFoundError("unknown pid"));
  if (record->disconnected_at) {
    if (now - *record->disconnected_at > options_.window) {
      return done(absl::DeadlineExceededError("session expired"));
    }
    return Claim(pid, entry->revision, std::move(*record), std::move(done));
  }
  if (record->edge_id.empty() || record->edge_id == options_.edge_id) {
    return done(absl::FailedPreconditionError("session in use"));
  }
  std::weak_ptr<bus::internal::Worker> worker = worker_;
  if (owner_alive) {
    // The owner is up: the record may say "disconnected" any moment.
    if (std::chrono::steady_clock::now() >= deadline) {
      return done(absl::FailedPreconditionError("session in use"));
    }
    worker_->PostAfter(std::chrono::milliseconds(50),
                       [this, pid, now, deadline, done = std::move(done)]() mutable {
                         TakeNow(pid, now, deadline, true, std::move(done));
                       });
    return;
  }
  v1::Probe probe;
  probe.set_broker_id(options_.edge_id);
  const std::string owner = bus::ProbeSubject(record->edge_id);  // before `record` moves
  bus_.Request(
      owner, probe.SerializeAsString(), options_.settle,
      [this, worker, pid, now, deadline, revision = entry->revision, record = std::move(*record),
       done = std::move(done)](absl::StatusOr<bus::Message> answer) mutable {
        auto alive = worker.lock();
        if (!alive) return;  // the store is gone
        // "No responders": the owner's connection is closed (it
        // crashed); the session was cut with it.
        bool crashed = absl::IsNotFound(answer.status());
        alive->Post([this, pid, now, deadline, revision, crashed, record = std::move(record),
                     done = std::move(done)]() mutable {
          if (crashed) return Claim(pid, revision, std::move(record), std::move(done));
          TakeNow(pid, now, deadline, true, std::move(done));
        });
      });
}

void KvSessionStore::Claim(const std::string& pid, uint64_t revision,
                           recovery::SessionRecord record, TakeDone done) {
  recovery::SessionRecord claimed = record;
  claimed.disconnected_at.reset();
  claimed.edge_id = options_.edge_id;
  absl::StatusOr<uint64_t> updated = bucket_->Update(pid, Encode(claimed), revision);
  if (absl::IsFailedPrecondition(updated.status())) {
    return done(absl::FailedPreconditionError("session taken by another restore"));
  }
  if (!updated.ok()) return done(updated.status());
  done(std::move(record));
}

void KvSessionStore::Refresh() {
  std::vector<std::pair<std::string, std::string>> values;
  {
    std::lock_guard lock(mu_);
    values.assign(connected_.begin(), connected_.end());
  }
  for (auto& [pid, value] : values) {
    // Paced by the writer's bound: wait for room rather than drop.
    for (int tries = 0; tries < 3; ++tries) {
      absl::Status sent = writer_->Publish(subject_prefix_ + pid, value, [](auto) {});
      if (!absl::IsResourceExhausted(sent)) break;
      (void)writer_->Flush(std::chrono::seconds(5));
    }
  }
  worker_->PostAfter(ttl_ / 3, [this] { Refresh(); });
}

size_t KvSessionStore::connected_records() const {
  std::lock_guard lock(mu_);
  return connected_.size();
}

}  // namespace switchboard::cluster
