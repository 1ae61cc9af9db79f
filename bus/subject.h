#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace switchboard::bus {

// A subject is tokens separated by '.': no empty token, no whitespace or
// control characters. With `allow_wildcards`, a token may be exactly `*`, and
// the last token may be exactly `>`; otherwise `*` and `>` tokens are refused
// (a `*` or `>` inside a longer token is an ordinary character, as in NATS).
bool ValidSubject(std::string_view subject, bool allow_wildcards = false);
// OK for a valid literal subject, else InvalidArgument "invalid subject: ...".
absl::Status CheckSubject(std::string_view subject);

// NATS matching: `*` matches exactly one token, a final `>` one or more.
// `subject` must be a literal subject.
bool SubjectMatches(std::string_view pattern, std::string_view subject);

// Turns any bytes (room or namespace names with dots, spaces, `*`, `>`,
// unicode, or the empty string) into one safe subject token: base64url
// without padding, or "_" for the empty string (never a base64 output).
std::string EncodeToken(std::string_view any_bytes);
// The inverse of EncodeToken; InvalidArgument for a token it cannot produce.
absl::StatusOr<std::string> DecodeToken(std::string_view token);

}  // namespace switchboard::bus
