#pragma once

#include <chrono>
#include <string_view>
#include <string>
#include <utility>
#include <vector>


namespace switchboard::eio {

// What the client sent when it opened its Engine.IO connection; shared by
// every namespace socket of that connection (auth is per socket).
struct Handshake {
  std::string address;  // remote IP
  std::string url;      // request target of the first request
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<std::pair<std::string, std::string>> query;
  std::chrono::system_clock::time_point time;
  bool secure = false;

  // First header / query value with this (case-insensitive for headers) name.
  const std::string* Header(std::string_view name) const;
  const std::string* Query(std::string_view name) const;
};

}  // namespace switchboard::eio
