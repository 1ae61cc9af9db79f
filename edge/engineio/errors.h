#pragma once

namespace switchboard::eio {

// Engine.IO's numbered HTTP errors: the "code" of the JSON body
// {"code":N,"message":"..."} that answers a refused request, as the reference
// server numbers them (engine.io's Server.errors).
enum ErrorCode : int {
  // No code: the body is the bare message, text/plain (errors the reference
  // server answers without its table, e.g. "data request overlap").
  kNoErrorCode = -1,
  kUnknownTransport = 0,
  kUnknownSid = 1,
  kBadHandshakeMethod = 2,
  kBadRequest = 3,
  kForbidden = 4,
  kUnsupportedProtocolVersion = 5,
};

// Handshakes refused by a limit answer with code 4, as the reference server
// does for a request its allowRequest hook refuses, with their own HTTP
// status and message.
inline constexpr ErrorCode kRefused = kForbidden;

}  // namespace switchboard::eio
