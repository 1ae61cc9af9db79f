#pragma once

// Logging of the switchboard binaries (spdlog, to stderr).
//
//   text: 2024-05-01 12:00:00.123 [info] [switchboard] message
//   json: {"time":"2024-05-01T12:00:00.123456Z","level":"info","logger":"switchboard","msg":"message"}
//
// One line per record; JSON strings are escaped. Convention: a line about one
// connection starts with "sid=<engine.io id>" (socket id "socket=<id>"). Never
// log a token, key or secret (API tokens and JWTs are only ever compared,
// never formatted).

#include <spdlog/spdlog.h>

#include <string_view>

namespace switchboard::services {

enum class LogFormat { kText, kJson };

// Installs the default logger "switchboard" on stderr in that format.
void SetUpLogging(LogFormat format);

// Escapes `in` as the inside of a JSON string.
void AppendJsonEscaped(std::string_view in, spdlog::memory_buf_t& out);

}  // namespace switchboard::services
