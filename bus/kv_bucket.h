#pragma once

// A JetStream key-value bucket holding one value per key (history 1), with
// compare-and-set by revision.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bus/jetstream.h"
#include "bus/js_stream.h"

typedef struct __kvStore kvStore;

namespace switchboard::bus {

struct KvConfig {
  std::string bucket;
  // A key not written for this long is removed (0: kept forever).
  std::chrono::milliseconds ttl{0};
  int replicas = 1;
  JsStorage storage = JsStorage::kFile;
  // Past it, writes of new data are refused (ResourceExhausted; -1: no
  // limit). KV buckets discard new, never old keys.
  int64_t max_bytes = -1;
};

struct KvEntry {
  std::string value;
  uint64_t revision = 0;  // the stream sequence of this value
};

class KvBucket {
 public:
  // Creates the bucket, or updates the limits (ttl, max_bytes, replicas) of
  // an existing one that has others; idempotent and safe when several
  // processes call it at once. FailedPrecondition when it exists with the
  // other storage.
  static absl::StatusOr<std::unique_ptr<KvBucket>> Ensure(JetStream& js, const KvConfig& config);
  ~KvBucket();
  KvBucket(const KvBucket&) = delete;
  KvBucket& operator=(const KvBucket&) = delete;

  // Keys: NATS subject tokens and dots (letters, digits, -_=/.), as NATS.c
  // checks; others are InvalidArgument.

  // Writes, whatever is there; the new revision.
  absl::StatusOr<uint64_t> Put(std::string_view key, std::string_view value);
  // NotFound when absent, deleted or purged.
  absl::StatusOr<KvEntry> Get(std::string_view key);
  // Writes only if the key has no value (absent or deleted); AlreadyExists
  // otherwise.
  absl::StatusOr<uint64_t> Create(std::string_view key, std::string_view value);
  // Writes only if the key's current revision is `revision`
  // (compare-and-set); FailedPrecondition otherwise. Of several racing
  // updates from the same revision exactly one succeeds: a value made
  // single-use by updating it to "used" from the revision read.
  absl::StatusOr<uint64_t> Update(std::string_view key, std::string_view value, uint64_t revision);
  // Leaves a delete marker (Get: NotFound).
  absl::Status Delete(std::string_view key);
  // Removes the key's values, leaving one marker (Get: NotFound).
  absl::Status Purge(std::string_view key);

  const std::string& bucket() const { return bucket_; }

 private:
  KvBucket(std::shared_ptr<natsConnection> conn, std::string bucket, kvStore* kv);
  std::shared_ptr<natsConnection> conn_;  // outlives kv_
  std::string bucket_;
  std::unique_ptr<kvStore, void (*)(kvStore*)> kv_;
};

}  // namespace switchboard::bus
