#pragma once

// The template language of relay rules (services/CONFIG.md, "Templates"): a
// JSON value whose strings starting with '$' read the event being handled
// (its arguments, the sender, the clock). Parsed once at load time, evaluated
// per event.

#include <absl/status/statusor.h>

#include <cstdint>
#include <memory>
#include <string_view>

#include "policy/json_reader.h"

namespace switchboard::policy {

// Everything a template or a reference can read while a rule runs.
struct RuleContext {
  const Json* args = nullptr;    // the event's arguments (a JSON array)
  std::string_view socket_id;    // $socket.id
  std::string_view user_id;      // $socket.userId ("" = anonymous: absent)
  const Json* claims = nullptr;  // $socket.claims.NAME (the claims kept on the socket)
  std::string_view event;        // $event
  std::string_view nsp;          // $nsp
  std::string_view room;         // $room   (join / leave rules)
  std::string_view error;        // $error  (errorAck)
  int64_t now_ms = 0;            // $now    (ms since the Unix epoch)
};

// Which variables a template may use; checked at load time.
enum TemplateVars : unsigned {
  kVarsBase = 0,        // $, $.path, $args, $socket.id/.userId/.claims, $now, $event, $nsp
  kVarRoom = 1u << 0,   // $room
  kVarError = 1u << 1,  // $error
};

// A JSON value in which strings starting with '$' are references:
//   "$"            the first argument          "$.a.b" / "$.list.0"  a field of it
//   "$args"        all arguments (array)       "$args.1.name"        a field of one
//   "$socket.id"   the sender's socket id      "$now"  server time, ms since epoch
//   "$socket.userId"  its user id              "$socket.claims.name"  a claim kept on it
//   "$event" "$nsp" "$room" "$error"           "$$x"   the literal string "$x"
//   "$.room|$"     alternatives: the first that is present and not null
// In an object the key "..." spreads an object value into the result (later
// keys override). A reference to something absent is dropped from objects,
// becomes null in arrays, and leaves the whole value absent at top level.
class Template {
 public:
  // `path` names the spec in error messages.
  static absl::StatusOr<Template> Parse(const Json& spec, std::string_view path,
                                        unsigned vars = kVarsBase);
  // The literal `value` (no references).
  static Template Literal(Json value);

  // The evaluated value, or a discarded Json (is_discarded()) when absent.
  // InvalidArgument when "..." meets a value that is not an object.
  absl::StatusOr<Json> Evaluate(const RuleContext& ctx) const;
  // Copy of the spec as written.
  const Json& spec() const { return spec_; }

  struct Node;

 private:
  std::shared_ptr<const Node> root_;
  Json spec_;
};

// Server time for $now: ms since the Unix epoch.
int64_t NowMs();

}  // namespace switchboard::policy
