#include "edge/engineio/websocket_handshake.h"

#include <openssl/sha.h>

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <boost/beast/http/verb.hpp>

#include "absl/status/status.h"
#include "edge/engineio/base64.h"

namespace switchboard::eio::ws {
namespace http = boost::beast::http;

std::string AcceptKey(std::string_view client_key) {
  static constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::string input;
  input.reserve(client_key.size() + kGuid.size());
  input.append(client_key).append(kGuid);
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  return Base64Encode(std::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

namespace {

bool HasToken(std::string_view list, std::string_view token) {
  for (auto element : http::token_list(list)) {
    if (boost::beast::iequals(element, token)) return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<std::string> UpgradeResponse(const http::request_header<>& request) {
  if (request.method() != http::verb::get) {
    return absl::InvalidArgumentError("WebSocket upgrade must be a GET");
  }
  if (request.version() < 11) return absl::InvalidArgumentError("WebSocket needs HTTP/1.1");
  if (!HasToken(request[http::field::connection], "upgrade")) {
    return absl::InvalidArgumentError("Connection: upgrade missing");
  }
  if (!HasToken(request[http::field::upgrade], "websocket")) {
    return absl::InvalidArgumentError("Upgrade: websocket missing");
  }
  if (request[http::field::sec_websocket_version] != "13") {
    return absl::InvalidArgumentError("Sec-WebSocket-Version must be 13");
  }
  std::string_view key = request[http::field::sec_websocket_key];
  auto decoded = Base64Decode(key);
  if (!decoded.ok() || decoded->size() != 16) {
    return absl::InvalidArgumentError("bad Sec-WebSocket-Key");
  }
  std::string response =
      "HTTP/1.1 101 Switching Protocols\r\n"
      "Upgrade: websocket\r\n"
      "Connection: Upgrade\r\n"
      "Sec-WebSocket-Accept: ";
  response += AcceptKey(key);
  response += "\r\n\r\n";
  return response;
}

}  // namespace switchboard::eio::ws
