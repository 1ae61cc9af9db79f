#pragma once

// Between the public API's proto messages and the index's types.

#include <string>

#include "broker/index.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "switchboard/v1/bus.pb.h"
#include "switchboard/v1/switchboard.pb.h"

namespace switchboard::broker {

using Names = google::protobuf::RepeatedPtrField<std::string>;

SocketInfo FromProto(const v1::SocketInfo& in);
void ToProto(const SocketInfo& in, v1::SocketInfo* out);
// A change this broker does not know (a newer edge) becomes a no-op event
// that only consumes its seq, keeping the stream gapless.
Event ToIndexEvent(const v1::MembershipEvent& event);
Selector IndexSelector(const std::string& nsp, const Names& rooms, const Names& socket_ids,
                       const Names& user_ids);
// An API page size for the index, which clamps it to kMaxPageSize.
int PageSize(uint32_t requested);

}  // namespace switchboard::broker
