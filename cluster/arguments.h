#pragma once

// Event arguments between the public API's form (a list of Argument: JSON
// text or binary) and the Socket.IO form (one JSON array whose binary nodes
// become attachments).

#include "absl/status/statusor.h"
#include "edge/socketio/packet.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "switchboard/v1/switchboard.pb.h"

namespace switchboard::cluster {

using Arguments = google::protobuf::RepeatedPtrField<v1::Argument>;

// InvalidArgument for an unset Argument or JSON text that does not parse.
absl::StatusOr<sio::Json> ArgumentsToJson(const Arguments& args);
// Each element of `array` becomes one Argument: a binary node as `binary`,
// anything else as compact JSON text (binary nodes nested deeper are sent as
// JSON, since an Argument holds either JSON or bytes).
void JsonToArguments(const sio::Json& array, Arguments* out);

}  // namespace switchboard::cluster
