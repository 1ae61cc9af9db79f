#include "broker/validation.h"

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "bus/routing.h"
#include "nlohmann/json.hpp"

namespace switchboard::broker {
namespace {

constexpr std::string_view kReservedEvents[] = {"connect",       "connect_error", "disconnect",
                                                "disconnecting", "newListener",   "removeListener"};

// Debian's Abseil has its own string_view, which StrCat wants.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

absl::Status CheckArguments(const google::protobuf::RepeatedPtrField<v1::Argument>& args) {
  for (int i = 0; i < args.size(); ++i) {
    const v1::Argument& arg = args.Get(i);
    if (arg.value_case() == v1::Argument::VALUE_NOT_SET) {
      return absl::InvalidArgumentError(
          absl::StrCat("args[", i, "] has no value: set json or binary"));
    }
    if (arg.has_json() && !nlohmann::json::accept(arg.json())) {
      return absl::InvalidArgumentError(absl::StrCat("args[", i, "].json is not valid JSON"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckSocketIds(const Names& ids, std::string_view field) {
  for (const std::string& id : ids) {
    if (bus::EdgeOfSocketId(id).empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("malformed socket id in ", Sv(field), ": \"", absl::CHexEscape(id), "\""));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidatePublish(const v1::PublishRequest& request, uint32_t max_ack_timeout_ms) {
  if (request.event().empty()) return absl::InvalidArgumentError("event name must not be empty");
  for (std::string_view reserved : kReservedEvents) {
    if (request.event() == reserved) {
      return absl::InvalidArgumentError(
          absl::StrCat("event name \"", Sv(reserved), "\" is reserved by Socket.IO"));
    }
  }
  if (absl::Status s = CheckArguments(request.args()); !s.ok()) return s;
  if (absl::Status s = CheckSocketIds(request.target().socket_ids(), "target.socket_ids");
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          CheckSocketIds(request.target().except_socket_ids(), "target.except_socket_ids");
      !s.ok()) {
    return s;
  }
  if (request.ack_timeout_ms() > max_ack_timeout_ms) {
    return absl::InvalidArgumentError(absl::StrCat("ack_timeout_ms ", request.ack_timeout_ms(),
                                                   " exceeds the maximum of ", max_ack_timeout_ms));
  }
  if (request.ack_timeout_ms() > 0 && request.volatile_()) {
    return absl::InvalidArgumentError("ack_timeout_ms is not allowed with volatile");
  }
  return absl::OkStatus();
}

absl::Status ValidateSelector(const v1::Selector& selector) {
  bool criteria =
      !selector.rooms().empty() || !selector.socket_ids().empty() || !selector.user_ids().empty();
  if (!criteria && !selector.all_sockets()) {
    return absl::InvalidArgumentError(
        "empty selector: name rooms, socket_ids or user_ids, or set all_sockets");
  }
  if (criteria && selector.all_sockets()) {
    return absl::InvalidArgumentError("all_sockets must be the only criterion of a selector");
  }
  return CheckSocketIds(selector.socket_ids(), "selector.socket_ids");
}

absl::StatusOr<std::string_view> EdgeOfAckRef(std::string_view ref) {
  std::string_view edge = bus::EdgeOfAckRef(ref);
  if (edge.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed ack_ref \"", absl::CHexEscape(Sv(ref)), "\""));
  }
  return edge;
}

}  // namespace switchboard::broker
