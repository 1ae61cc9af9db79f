#include "bus/kv_bucket.h"

#include <nats/nats.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "bus/nats_status.h"

namespace switchboard::bus {

using internal::JsToStatus;
using internal::ToStatus;

namespace {

constexpr int64_t kNanosPerMilli = 1000000;

using StreamInfoHandle = std::unique_ptr<jsStreamInfo, void (*)(jsStreamInfo*)>;
using EntryHandle = std::unique_ptr<kvEntry, void (*)(kvEntry*)>;

// NATS.c's KV calls report the server's refusal of an expected revision
// only as NATS_ERR with the server's text.
bool WrongLastSequence() {
  const char* last = nats_GetLastError(nullptr);
  return last != nullptr && std::strstr(last, "wrong last sequence") != nullptr;
}

absl::Status KvStatus(natsStatus s, std::string_view what, std::string_view key) {
  return JsToStatus(s, static_cast<jsErrCode>(0),
                    absl::StrCat(std::string(what), " ", std::string(key)));
}

// The bucket's stream exists with other limits: change them. Its subject,
// history, discard policy and flags stay as NATS.c made them.
absl::Status UpdateLimits(JetStream& js, const KvConfig& config) {
  const std::string stream = absl::StrCat("KV_", config.bucket);
  jsStreamInfo* raw = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&raw, js.native(), stream.c_str(), nullptr, &code);
  StreamInfoHandle info(raw, &jsStreamInfo_Destroy);
  if (s != NATS_OK) return JsToStatus(s, code, absl::StrCat("stream info of ", stream));
  jsStreamConfig& cfg = *info->Config;
  const jsStorageType want =
      config.storage == JsStorage::kMemory ? js_MemoryStorage : js_FileStorage;
  if (cfg.Storage != want) {
    return absl::FailedPreconditionError(
        absl::StrCat("KV bucket ", config.bucket,
                     " exists with the other storage; storage cannot change (delete the bucket "
                     "to change it)"));
  }
  cfg.MaxAge = static_cast<int64_t>(config.ttl.count()) * kNanosPerMilli;
  cfg.MaxBytes = config.max_bytes < 0 ? -1 : config.max_bytes;
  cfg.Replicas = config.replicas;
  cfg.MaxMsgsPerSubject = 1;
  // The server refuses a duplicate window longer than max_age.
  if (cfg.MaxAge > 0 && cfg.Duplicates > cfg.MaxAge) cfg.Duplicates = cfg.MaxAge;
  jsStreamInfo* raw_updated = nullptr;
  s = js_UpdateStream(&raw_updated, js.native(), &cfg, nullptr, &code);
  StreamInfoHandle updated(raw_updated, &jsStreamInfo_Destroy);
  return JsToStatus(s, code, absl::StrCat("update KV bucket ", config.bucket));
}

}  // namespace

KvBucket::KvBucket(std::shared_ptr<natsConnection> conn, std::string bucket, kvStore* kv)
    : conn_(std::move(conn)), bucket_(std::move(bucket)), kv_(kv, &kvStore_Destroy) {}

KvBucket::~KvBucket() = default;

absl::StatusOr<std::unique_ptr<KvBucket>> KvBucket::Ensure(JetStream& js, const KvConfig& config) {
  if (config.bucket.empty() || config.replicas < 1 || config.ttl.count() < 0) {
    return absl::InvalidArgumentError("a KV bucket needs a name, replicas >= 1 and ttl >= 0");
  }
  kvConfig cfg;
  kvConfig_Init(&cfg);
  cfg.Bucket = config.bucket.c_str();
  cfg.History = 1;
  cfg.TTL = static_cast<int64_t>(config.ttl.count()) * kNanosPerMilli;
  cfg.MaxBytes = config.max_bytes < 0 ? -1 : config.max_bytes;
  cfg.StorageType = config.storage == JsStorage::kMemory ? js_MemoryStorage : js_FileStorage;
  cfg.Replicas = config.replicas;
  // NATS.c creates the stream, or accepts one with the same config (also
  // when another process just created it).
  kvStore* raw = nullptr;
  natsStatus s = js_CreateKeyValue(&raw, js.native(), &cfg);
  if (s == NATS_OK) {
    return std::unique_ptr<KvBucket>(new KvBucket(js.shared_connection(), config.bucket, raw));
  }
  if (s != NATS_ERR) return KvStatus(s, "create KV bucket", config.bucket);
  // "Existing configuration is different": other limits.
  if (absl::Status st = UpdateLimits(js, config); !st.ok()) return st;
  s = js_KeyValue(&raw, js.native(), config.bucket.c_str());
  if (s != NATS_OK) return KvStatus(s, "bind KV bucket", config.bucket);
  return std::unique_ptr<KvBucket>(new KvBucket(js.shared_connection(), config.bucket, raw));
}

absl::StatusOr<uint64_t> KvBucket::Put(std::string_view key, std::string_view value) {
  std::string k(key);
  uint64_t rev = 0;
  natsStatus s =
      kvStore_Put(&rev, kv_.get(), k.c_str(), value.data(), static_cast<int>(value.size()));
  if (s != NATS_OK) return KvStatus(s, "KV put", k);
  return rev;
}

absl::StatusOr<KvEntry> KvBucket::Get(std::string_view key) {
  std::string k(key);
  kvEntry* raw = nullptr;
  natsStatus s = kvStore_Get(&raw, kv_.get(), k.c_str());
  EntryHandle e(raw, &kvEntry_Destroy);
  if (s == NATS_NOT_FOUND) return absl::NotFoundError(absl::StrCat("KV key ", k, " not found"));
  if (s != NATS_OK) return KvStatus(s, "KV get", k);
  KvEntry out;
  out.revision = kvEntry_Revision(e.get());
  int len = kvEntry_ValueLen(e.get());
  if (len > 0) {
    out.value.assign(static_cast<const char*>(kvEntry_Value(e.get())), static_cast<size_t>(len));
  }
  return out;
}

absl::StatusOr<uint64_t> KvBucket::Create(std::string_view key, std::string_view value) {
  std::string k(key);
  uint64_t rev = 0;
  natsStatus s =
      kvStore_Create(&rev, kv_.get(), k.c_str(), value.data(), static_cast<int>(value.size()));
  if (s == NATS_OK) return rev;
  if (s == NATS_ERR && WrongLastSequence()) {
    return absl::AlreadyExistsError(absl::StrCat("KV key ", k, " already has a value"));
  }
  return KvStatus(s, "KV create", k);
}

absl::StatusOr<uint64_t> KvBucket::Update(std::string_view key, std::string_view value,
                                          uint64_t revision) {
  std::string k(key);
  if (revision == 0) return absl::InvalidArgumentError("KV update needs a revision (> 0)");
  uint64_t rev = 0;
  natsStatus s = kvStore_Update(&rev, kv_.get(), k.c_str(), value.data(),
                                static_cast<int>(value.size()), revision);
  if (s == NATS_OK) return rev;
  if (s == NATS_ERR && WrongLastSequence()) {
    return absl::FailedPreconditionError(
        absl::StrCat("KV key ", k, " is no longer at revision ", revision));
  }
  return KvStatus(s, "KV update", k);
}

absl::Status KvBucket::Delete(std::string_view key) {
  std::string k(key);
  return KvStatus(kvStore_Delete(kv_.get(), k.c_str()), "KV delete", k);
}

absl::Status KvBucket::Purge(std::string_view key) {
  std::string k(key);
  return KvStatus(kvStore_Purge(kv_.get(), k.c_str(), nullptr), "KV purge", k);
}

}  // namespace switchboard::bus
