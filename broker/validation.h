#pragma once

// The API's argument checks, each in one place: InvalidArgument naming the
// field, before anything reaches the bus.

#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "broker/convert.h"
#include "switchboard/v1/switchboard.pb.h"

namespace switchboard::broker {

// Every args[i] set, and its JSON text (if JSON) valid.
absl::Status CheckArguments(const google::protobuf::RepeatedPtrField<v1::Argument>& args);
// Every id of the form "<edge-id>.<local id>".
absl::Status CheckSocketIds(const Names& ids, std::string_view field);
// The event name (not empty, not reserved by Socket.IO), the arguments, the
// target's socket ids, and the ack timeout (at most `max_ack_timeout_ms`, not
// with volatile).
absl::Status ValidatePublish(const v1::PublishRequest& request, uint32_t max_ack_timeout_ms);
// Names rooms, socket ids or users, or else is all_sockets alone.
absl::Status ValidateSelector(const v1::Selector& selector);
// The edge an ack_ref ("<edge-id>.<nonce>.<n>", from the edge's forwarder)
// names; InvalidArgument for anything else.
absl::StatusOr<std::string_view> EdgeOfAckRef(std::string_view ref);

}  // namespace switchboard::broker
