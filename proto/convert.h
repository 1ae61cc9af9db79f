#pragma once

// Conversions between the API's proto types and what the C++ side uses,
// shared by the edges (membership journal) and the brokers.

#include <chrono>
#include <string>
#include <string_view>

#include "google/protobuf/timestamp.pb.h"
#include "switchboard/v1/switchboard.pb.h"

namespace switchboard::proto {

void ToTimestamp(std::chrono::system_clock::time_point time, google::protobuf::Timestamp* out);
std::chrono::system_clock::time_point FromTimestamp(const google::protobuf::Timestamp& timestamp);

// Engine.IO transport names ("polling", "websocket") and the API's enum;
// anything else is TRANSPORT_UNSPECIFIED / "".
v1::Transport TransportFromName(std::string_view name);
std::string TransportName(v1::Transport transport);

}  // namespace switchboard::proto
