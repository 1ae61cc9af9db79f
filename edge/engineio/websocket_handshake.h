#pragma once

#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace switchboard::eio::ws {

// Sec-WebSocket-Accept for a client's Sec-WebSocket-Key (RFC 6455 4.2.2).
std::string AcceptKey(std::string_view client_key);

// Checks a WebSocket opening handshake (RFC 6455 4.2.1: GET, HTTP/1.1,
// Upgrade: websocket, Connection: upgrade, a 16-byte Sec-WebSocket-Key,
// version 13) and returns the bytes of the 101 response. No extension or
// subprotocol is negotiated. InvalidArgument names what is wrong.
absl::StatusOr<std::string> UpgradeResponse(const boost::beast::http::request_header<>& request);

}  // namespace switchboard::eio::ws
