#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace switchboard::eio {

// What the client sent when it opened its Engine.IO connection; shared by
// every namespace socket of that connection (auth is per socket). Kept as
// two strings rather than a container per header or parameter: a connection
// holds it for its whole life and reads it rarely.
struct Handshake {
  std::string address;  // remote IP
  std::string url;      // request target of the first request
  // The request's header fields, one "name: value\r\n" line each.
  std::string header_block;
  std::chrono::system_clock::time_point time;
  bool secure = false;

  void AddHeader(std::string_view name, std::string_view value);
  // First header with this name (case-insensitive).
  std::optional<std::string_view> Header(std::string_view name) const;
  // First query parameter of `url` with this name, percent-decoded.
  std::optional<std::string> Query(std::string_view name) const;
  // Every query parameter, in order, percent-decoded.
  std::vector<std::pair<std::string, std::string>> QueryParameters() const;
};

}  // namespace switchboard::eio
