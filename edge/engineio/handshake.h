#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace switchboard::eio {

// What the client sent when it opened its Engine.IO connection; shared by
// every namespace socket of that connection (auth is per socket). One string
// (address, request target, then the kept header lines) rather than a
// container per header or parameter: a connection holds it for its whole
// life and reads it rarely.
class Handshake {
 public:
  Handshake() = default;
  Handshake(std::string_view address, std::string_view url,
            std::chrono::system_clock::time_point time, size_t header_bytes = 0);

  // Appends a header line (name as the client sent it).
  void AddHeader(std::string_view name, std::string_view value);

  // The remote IP.
  std::string_view address() const { return std::string_view(data_).substr(0, address_size_); }
  // The request target of the first request.
  std::string_view url() const { return std::string_view(data_).substr(address_size_, url_size_); }
  std::chrono::system_clock::time_point time() const { return time_; }
  // First kept header with this name (case-insensitive).
  std::optional<std::string_view> Header(std::string_view name) const;
  // First query parameter of `url` with this name, percent-decoded.
  std::optional<std::string> Query(std::string_view name) const;
  // Every query parameter, in order, percent-decoded.
  std::vector<std::pair<std::string, std::string>> QueryParameters() const;

  // Its parts, to rebuild it on another edge (a session moving there).
  const std::string& data() const { return data_; }
  uint32_t address_size() const { return address_size_; }
  uint32_t url_size() const { return url_size_; }
  // Null when the sizes do not fit `data`.
  static std::optional<Handshake> FromParts(std::string data, uint32_t address_size,
                                            uint32_t url_size,
                                            std::chrono::system_clock::time_point time);

 private:
  std::string data_;  // address, url, then one "name: value\r\n" line per header
  uint32_t address_size_ = 0;
  uint32_t url_size_ = 0;
  std::chrono::system_clock::time_point time_{};
};

}  // namespace switchboard::eio
