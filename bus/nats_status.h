#pragma once

// Internal to the NATS-backed bus files: natsStatus (and JetStream's error
// codes) to absl::Status, in one place. Includes NATS.c: not for public
// headers.

#include <nats/nats.h>

#include <string_view>

#include "absl/status/status.h"

namespace switchboard::bus::internal {

// `what` names the operation; the message adds NATS.c's text.
absl::Status ToStatus(natsStatus s, std::string_view what);

// As ToStatus, for JetStream API calls: adds the server's error code and
// NATS.c's last error text (the server's description), and maps the codes a
// caller acts on (stream / message not found: NotFound; JetStream disabled:
// FailedPrecondition; wrong last sequence: FailedPrecondition).
absl::Status JsToStatus(natsStatus s, jsErrCode code, std::string_view what);

}  // namespace switchboard::bus::internal
