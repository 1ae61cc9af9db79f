#include "bus/js_stream.h"

#include <nats/nats.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "bus/nats_status.h"

namespace switchboard::bus {

using internal::JsToStatus;

namespace {

using StreamInfoHandle = std::unique_ptr<jsStreamInfo, void (*)(jsStreamInfo*)>;

constexpr int64_t kNanosPerMilli = 1000000;

jsStorageType ToNats(JsStorage s) {
  return s == JsStorage::kMemory ? js_MemoryStorage : js_FileStorage;
}

const char* Name(jsStorageType s) { return s == js_MemoryStorage ? "memory" : "file"; }

// Stream info, or NotFound.
absl::StatusOr<StreamInfoHandle> Info(JetStream& js, const std::string& name) {
  jsStreamInfo* raw = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&raw, js.native(), name.c_str(), nullptr, &code);
  StreamInfoHandle info(raw, &jsStreamInfo_Destroy);
  if (s != NATS_OK) return JsToStatus(s, code, absl::StrCat("stream info of ", name));
  if (info == nullptr) {
    return absl::NotFoundError(absl::StrCat("stream info of ", name, ": no such stream"));
  }
  return info;
}

bool SameLimits(const jsStreamConfig& have, const jsStreamConfig& want) {
  return have.SubjectsLen == 1 && std::string_view(have.Subjects[0]) == want.Subjects[0] &&
         have.MaxAge == want.MaxAge && have.MaxBytes == want.MaxBytes &&
         have.Replicas == want.Replicas && have.Discard == want.Discard &&
         have.AllowDirect == want.AllowDirect;
}

}  // namespace

absl::Status EnsureStream(JetStream& js, const StreamConfig& config) {
  if (config.name.empty() || config.subject.empty()) {
    return absl::InvalidArgumentError("a stream needs a name and a subject");
  }
  if (config.replicas < 1 || config.max_age.count() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("stream ", config.name, ": replicas must be >= 1 and max_age >= 0"));
  }
  const char* subjects[] = {config.subject.c_str()};
  jsStreamConfig want;
  jsStreamConfig_Init(&want);
  want.Name = config.name.c_str();
  want.Subjects = subjects;
  want.SubjectsLen = 1;
  want.Storage = ToNats(config.storage);
  want.Replicas = config.replicas;
  want.MaxAge = static_cast<int64_t>(config.max_age.count()) * kNanosPerMilli;
  want.MaxBytes = config.max_bytes < 0 ? -1 : config.max_bytes;
  want.Discard = js_DiscardOld;
  want.AllowDirect = true;

  // Bounded: a lost create race means the stream now exists, and the next
  // round takes the update path.
  absl::Status last;
  for (int attempt = 0; attempt < 3; ++attempt) {
    absl::StatusOr<StreamInfoHandle> info = Info(js, config.name);
    if (info.ok()) {
      const jsStreamConfig& have = *(*info)->Config;
      if (have.Storage != want.Storage) {
        return absl::FailedPreconditionError(absl::StrCat(
            "stream ", config.name, " exists with ", Name(have.Storage), " storage, configured: ",
            Name(want.Storage), "; storage cannot change (delete the stream to change it)"));
      }
      if (SameLimits(have, want)) return absl::OkStatus();
      jsStreamInfo* raw = nullptr;
      jsErrCode code = static_cast<jsErrCode>(0);
      natsStatus s = js_UpdateStream(&raw, js.native(), &want, nullptr, &code);
      StreamInfoHandle updated(raw, &jsStreamInfo_Destroy);
      return JsToStatus(s, code, absl::StrCat("update stream ", config.name));
    }
    if (!absl::IsNotFound(info.status())) return info.status();
    jsStreamInfo* raw = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    natsStatus s = js_AddStream(&raw, js.native(), &want, nullptr, &code);
    StreamInfoHandle created(raw, &jsStreamInfo_Destroy);
    if (s == NATS_OK) return absl::OkStatus();
    last = JsToStatus(s, code, absl::StrCat("create stream ", config.name));
    // Someone else created it first, with other limits: update it.
    if (code != JSStreamNameExistErr) return last;
  }
  return last;
}

absl::StatusOr<StreamBounds> GetStreamBounds(JetStream& js, std::string_view stream) {
  absl::StatusOr<StreamInfoHandle> info = Info(js, std::string(stream));
  if (!info.ok()) return info.status();
  const jsStreamState& st = (*info)->State;
  return StreamBounds{st.FirstSeq, st.LastSeq, st.Msgs, st.Bytes};
}

absl::Status DeleteStream(JetStream& js, std::string_view stream) {
  std::string name(stream);
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_DeleteStream(js.native(), name.c_str(), nullptr, &code);
  return JsToStatus(s, code, absl::StrCat("delete stream ", name));
}

}  // namespace switchboard::bus
