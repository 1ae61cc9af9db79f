#pragma once

#include <cstddef>
#include <cstdint>

namespace switchboard::services {

// Descriptors one client connection holds: its socket, plus the TLS relay's
// socketpair with --tls-cert.
inline constexpr uint64_t kDescriptorsPerConnection = 1;
inline constexpr uint64_t kDescriptorsPerTlsConnection = 3;
// Listeners, epoll sets, timers, NATS, gRPC, log and key files, and the
// HTTP connections of long-polling clients beside their sessions.
inline constexpr uint64_t kDescriptorReserve = 256;

struct DescriptorLimit {
  uint64_t soft = 0;  // in force now (RLIM_INFINITY: none)
  uint64_t hard = 0;
  bool raised = false;  // the soft limit was below the hard one and was raised
};

// Raises the soft RLIMIT_NOFILE to the hard limit (any process may) and says
// what is in force.
DescriptorLimit RaiseDescriptorLimit();

// Descriptors `max_connections` clients need with their reserve; 0 when
// `max_connections` is 0 (unbounded).
uint64_t DescriptorsNeeded(size_t max_connections, bool tls);

}  // namespace switchboard::services
