#include "edge/recovery/recovery.h"

#include "edge/recovery/memory_log.h"
#include "edge/recovery/memory_session_store.h"

namespace switchboard::recovery {

const char* ResultName(Result result) {
  switch (result) {
    case Result::kRecovered: return "recovered";
    case Result::kExpired: return "expired";
    case Result::kUnknown: return "unknown";
    case Result::kReused: return "reused";
    case Result::kCount: break;
  }
  return "unknown";
}

std::unique_ptr<Recovery> Recovery::InMemory(Options options) {
  return std::make_unique<Recovery>(
      options,
      std::make_unique<MemoryLog>(options.max_disconnection_duration, options.max_log_bytes),
      std::make_unique<MemorySessionStore>(options.max_disconnection_duration));
}

}  // namespace switchboard::recovery
