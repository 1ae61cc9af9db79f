#include "edge/engineio/handshake.h"

#include <strings.h>

#include "edge/http/query.h"

namespace switchboard::eio {

void Handshake::AddHeader(std::string_view name, std::string_view value) {
  header_block.append(name).append(": ").append(value).append("\r\n");
}

std::optional<std::string_view> Handshake::Header(std::string_view name) const {
  std::string_view rest = header_block;
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
  return edge::ParseQuery(url);
}

}  // namespace switchboard::eio
