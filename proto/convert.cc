#include "proto/convert.h"

namespace switchboard::proto {

void ToTimestamp(std::chrono::system_clock::time_point time, google::protobuf::Timestamp* out) {
  auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(time.time_since_epoch()).count();
  int64_t seconds = nanos / 1'000'000'000;
  int64_t rest = nanos % 1'000'000'000;
  if (rest < 0) {  // Timestamp nanos are never negative
    rest += 1'000'000'000;
    --seconds;
  }
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(rest));
}

std::chrono::system_clock::time_point FromTimestamp(const google::protobuf::Timestamp& timestamp) {
  auto since_epoch =
      std::chrono::seconds(timestamp.seconds()) + std::chrono::nanoseconds(timestamp.nanos());
  return std::chrono::system_clock::time_point{} +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(since_epoch);
}

v1::Transport TransportFromName(std::string_view name) {
  if (name == "polling") return v1::TRANSPORT_POLLING;
  if (name == "websocket") return v1::TRANSPORT_WEBSOCKET;
  return v1::TRANSPORT_UNSPECIFIED;
}

std::string TransportName(v1::Transport transport) {
  switch (transport) {
    case v1::TRANSPORT_POLLING:
      return "polling";
    case v1::TRANSPORT_WEBSOCKET:
      return "websocket";
    default:
      return "";
  }
}

}  // namespace switchboard::proto
