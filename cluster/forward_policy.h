#pragma once

// One namespace's forwarding policy (services/CONFIG.md, `forward`): which
// client events go to backends and how (cluster/forwarder.h). A plain value:
// the configuration parses it, the namespace policy carries it, the forwarder
// follows it.

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace switchboard::cluster {

struct ForwardPolicy {
  // nullopt ("*"): every client event; else these names.
  std::optional<std::vector<std::string>> events;
  // How long a client's ack waits for a backend.
  std::chrono::milliseconds ack_timeout{10'000};
  // Handshake headers passed to backends (lower-case names); never
  // `authorization`.
  std::vector<std::string> headers;
  // Query parameters never passed to backends: where tokens are read from
  // (auth.queryParameter of every namespace that reads one).
  std::vector<std::string> hidden_query;

  bool Forwards(std::string_view event) const {
    return !events || std::find(events->begin(), events->end(), event) != events->end();
  }
};

}  // namespace switchboard::cluster
