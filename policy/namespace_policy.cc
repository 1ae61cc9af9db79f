#include "policy/namespace_policy.h"

#include <algorithm>
#include <set>

namespace switchboard::policy {

bool NamespacePolicy::EventAllowed(std::string_view event) const {
  if (!allowed_events) return true;
  return std::find(allowed_events->begin(), allowed_events->end(), event) != allowed_events->end();
}

bool NamespacePolicy::RoomNameAllowed(std::string_view room) const {
  if (room.empty() || room.size() > kMaxRoomNameBytes) return false;
  if (!room_regex) return true;
  return std::regex_match(room.begin(), room.end(), *room_regex);
}

std::vector<std::string> TokenQueryParameters(const std::vector<NamespacePolicy>& namespaces) {
  std::vector<std::string> names;
  for (const NamespacePolicy& policy : namespaces) {
    if (!policy.auth) continue;
    const auto& from = policy.auth->token_from;
    if (std::find(from.begin(), from.end(), TokenSource::kQuery) != from.end() &&
        std::find(names.begin(), names.end(), policy.auth->query_parameter) == names.end()) {
      names.push_back(policy.auth->query_parameter);
    }
  }
  return names;
}

std::vector<std::string> HandshakeHeadersRead(const std::vector<NamespacePolicy>& namespaces) {
  std::set<std::string> names;
  for (const NamespacePolicy& p : namespaces) {
    if (p.auth && std::count(p.auth->token_from.begin(), p.auth->token_from.end(),
                             TokenSource::kHeader) > 0) {
      names.insert("authorization");
    }
    if (p.forward) names.insert(p.forward->headers.begin(), p.forward->headers.end());
    if (p.connect_hook) {
      names.insert(p.connect_hook->headers.begin(), p.connect_hook->headers.end());
    }
  }
  return {names.begin(), names.end()};
}

}  // namespace switchboard::policy
