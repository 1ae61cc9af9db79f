#pragma once

// A namespace's connection state recovery settings, as plain data (the
// configuration parser fills them in without linking the edge).

#include <chrono>
#include <cstddef>

namespace switchboard::recovery {

// The reference server's `connectionStateRecovery` option, per namespace.
struct Options {
  // How long a disconnected session stays recoverable, and how much history
  // the namespace's log keeps.
  std::chrono::milliseconds max_disconnection_duration{120'000};
  // A restored session skips the namespace's middlewares (JWT, hooks); when
  // false they run again and must name the session's user.
  bool skip_middlewares = true;
  // Bytes the namespace's log may hold (packets and their targets); the
  // oldest entries go first past it. 64 MiB.
  size_t max_log_bytes = size_t{64} << 20;
};

}  // namespace switchboard::recovery
