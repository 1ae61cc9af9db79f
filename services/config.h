#pragma once

// The `switchboard` JSON configuration: listener, engine options and, per
// namespace, its policy (policy/namespace_policy.h: rooms, authentication,
// relay rules, forwarding; see CONFIG.md). Parsing is pure: no I/O but
// LoadConfig's read, no edge library, so tests link it alone.

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "admin_ui/options.h"
#include "edge/engineio/options.h"
#include "edge/http/options.h"
#include "edge/socketio/limits.h"
#include "policy/namespace_policy.h"

namespace switchboard::services {

using Json = policy::Json;

// "page": a web page (and the socket.io-client browser bundle it loads) served by the edge's
// HTTP server at fixed paths. Off unless configured.
struct PageConfig {
  std::string path = "/";                         // URL path of the page
  std::string file;                               // the page's HTML file
  std::string client_path = "/socket.io.min.js";  // URL path of the bundle
  std::string client_file;                        // the bundle (socket.io.min.js)
};

// "adminUi": the official Socket.IO Admin UI for the whole cluster (admin_ui/). Off unless
// configured.
using AdminUiConfig = admin_ui::Options;

struct Config {
  std::string host = "127.0.0.1";
  uint16_t port = 3000;
  unsigned threads = 0;  // 0: one per core
  std::string log_level = "info";
  std::string path = "/socket.io/";
  eio::Options engine;
  std::chrono::milliseconds connect_timeout{45000};
  // "limits" (also engine.max_connections / handshake_rate above).
  sio::ServerLimits socket_limits;
  sio::DecoderLimits decoder;  // max_attachment_bytes 0: maxHttpBufferSize
  edge::HttpOptions http;      // its host / port unused: `host` / `port` above
  // limits.maxPendingAcks: client acks of forwarded events waiting for a
  // backend at once on this edge.
  size_t max_pending_acks = 10'000;
  std::vector<policy::NamespacePolicy> namespaces;  // in file order
  // Relative files are relative to the config file's folder (LoadConfig resolves them).
  std::optional<PageConfig> page;
  std::optional<AdminUiConfig> admin_ui;
};

// "HOST:PORT", "[v6addr]:PORT"; port 0..65535.
absl::StatusOr<std::pair<std::string, uint16_t>> ParseListen(std::string_view text);

// A namespace policy object (the value in "namespaces").
absl::StatusOr<policy::NamespacePolicy> ParseNamespacePolicy(std::string_view name,
                                                             const Json& spec,
                                                             std::string_view path);

// The whole file. Errors are InvalidArgument with the key path, e.g.
//   namespaces["/chat"].rules[1].target.room: unknown reference "$roomz"
// The namespace "/" is always in `namespaces` (first, with the default policy
// and no rules, when the file does not list it).
absl::StatusOr<Config> ParseConfig(std::string_view text);
absl::StatusOr<Config> LoadConfig(const std::string& file);

}  // namespace switchboard::services
