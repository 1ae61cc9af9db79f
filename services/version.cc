#include "services/version.h"

#ifndef SB_VERSION
#error "SB_VERSION must be defined (services/CMakeLists.txt)"
#endif

namespace switchboard::services {

std::string_view Version() { return SB_VERSION; }

}  // namespace switchboard::services
