#pragma once

// The switchboard version string (CMake's project(VERSION)), the one place
// binaries, heartbeats and metrics read it from.

#include <string_view>

namespace switchboard::services {

std::string_view Version();

}  // namespace switchboard::services
