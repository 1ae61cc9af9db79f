#include "bus/nats_status.h"

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"

namespace switchboard::bus::internal {

absl::Status ToStatus(natsStatus s, std::string_view what) {
  if (s == NATS_OK) return absl::OkStatus();
  std::string msg = absl::StrCat(std::string(what), ": ", natsStatus_GetText(s));
  switch (s) {
    case NATS_CONNECTION_CLOSED:
    case NATS_NO_SERVER:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_STALE_CONNECTION:
    case NATS_INSUFFICIENT_BUFFER:
    case NATS_IO_ERROR:
    case NATS_SYS_ERROR: return absl::UnavailableError(msg);
    case NATS_TIMEOUT: return absl::DeadlineExceededError(msg);
    case NATS_NO_RESPONDERS:
    case NATS_NOT_FOUND: return absl::NotFoundError(msg);
    case NATS_INVALID_SUBJECT:
    case NATS_INVALID_ARG:
    case NATS_INVALID_SUBSCRIPTION:
    case NATS_INVALID_QUEUE_NAME: return absl::InvalidArgumentError(msg);
    case NATS_CONNECTION_AUTH_FAILED:
    case NATS_NOT_PERMITTED: return absl::PermissionDeniedError(msg);
    case NATS_MAX_PAYLOAD:
    case NATS_SLOW_CONSUMER:
    case NATS_NO_MEMORY: return absl::ResourceExhaustedError(msg);
    case NATS_ILLEGAL_STATE:
    case NATS_DRAINING: return absl::FailedPreconditionError(msg);
    default: return absl::InternalError(msg);
  }
}

absl::Status JsToStatus(natsStatus s, jsErrCode code, std::string_view what) {
  if (s == NATS_OK) return absl::OkStatus();
  // The server's description (e.g. "wrong last sequence: 4"), when NATS.c
  // kept one for this thread.
  const char* last = nats_GetLastError(nullptr);
  std::string msg = absl::StrCat(std::string(what), ": ", natsStatus_GetText(s));
  if (last != nullptr && *last != '\0') absl::StrAppend(&msg, " (", last, ")");
  if (code != 0) absl::StrAppend(&msg, " [jetstream error ", static_cast<int>(code), "]");
  switch (code) {
    case JSStreamNotFoundErr:
    case JSNoMessageFoundErr:
    case JSConsumerNotFoundErr: return absl::NotFoundError(msg);
    case JSNotEnabledErr:
    case JSNotEnabledForAccountErr:
    case JSStreamWrongLastSequenceErr: return absl::FailedPreconditionError(msg);
    case JSStreamNameExistErr: return absl::AlreadyExistsError(msg);
    default: break;
  }
  // A full stream that discards new messages (KV buckets) refuses writes.
  if (last != nullptr && (std::strstr(last, "maximum bytes exceeded") != nullptr ||
                          std::strstr(last, "maximum messages exceeded") != nullptr)) {
    return absl::ResourceExhaustedError(msg);
  }
  absl::Status base = ToStatus(s, what);
  return absl::Status(base.code(), msg);
}

}  // namespace switchboard::bus::internal
