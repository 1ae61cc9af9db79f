#include "edge/engineio/handshake.h"

#include <strings.h>

#include "edge/http/query.h"

namespace switchboard::eio {

Handshake::Handshake(std::string_view address, std::string_view url,
                     std::chrono::system_clock::time_point time, size_t header_bytes)
    : address_size_(static_cast<uint32_t>(address.size())),
      url_size_(static_cast<uint32_t>(url.size())),
      time_(time) {
  data_.reserve(address.size() + url.size() + header_bytes);
  data_.append(address).append(url);
}

void Handshake::AddHeader(std::string_view name, std::string_view value) {
  data_.append(name).append(": ").append(value).append("\r\n");
}

std::optional<std::string_view> Handshake::Header(std::string_view name) const {
  std::string_view rest = std::string_view(data_).substr(address_size_ + url_size_);
  while (!rest.empty()) {
    size_t end = rest.find("\r\n");
    std::string_view line = rest.substr(0, end);
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 2);
    size_t colon = line.find(": ");
    if (colon == name.size() && strncasecmp(line.data(), name.data(), name.size()) == 0) {
      return line.substr(colon + 2);
    }
  }
  return std::nullopt;
}

std::optional<std::string> Handshake::Query(std::string_view name) const {
  for (auto& [key, value] : QueryParameters()) {
    if (key == name) return std::move(value);
  }
  return std::nullopt;
}

std::vector<std::pair<std::string, std::string>> Handshake::QueryParameters() const {
  return edge::ParseQuery(url());
}

std::optional<Handshake> Handshake::FromParts(std::string data, uint32_t address_size,
                                              uint32_t url_size,
                                              std::chrono::system_clock::time_point time) {
  if (uint64_t{address_size} + url_size > data.size()) return std::nullopt;
  Handshake out;
  out.data_ = std::move(data);
  out.address_size_ = address_size;
  out.url_size_ = url_size;
  out.time_ = time;
  return out;
}

}  // namespace switchboard::eio
