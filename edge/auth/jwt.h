#pragma once

// JWT (JWS compact serialization) verification for client authentication.
// Hand-written on OpenSSL 3; no dependency on the rest of the edge.
//
//   auth::KeySet keys;
//   if (auto s = keys.AddHmacSecret(secret); !s.ok()) ...      // load once
//   auto shared = std::make_shared<const auth::KeySet>(std::move(keys));
//   auth::VerifyResult r = auth::Verify(token, *shared, options, now);
//   if (!r.ok()) reject(ErrorMessage(r.error->code), ErrorDataCode(r.error->code));
//
// What Verify accepts (anything else is kInvalid):
// * At most kMaxTokenSize bytes; exactly three '.'-separated segments, each
//   strict base64url WITHOUT padding ('=' is rejected, as are non-alphabet
//   bytes and non-canonical trailing bits).
// * Header: a JSON object with a string "alg" naming one of Algorithm (never
//   "none"), an optional string "kid"; "typ" is ignored; any "crit" is
//   rejected (we understand no extensions).
// * Candidate keys: when the header has a kid, the keys with exactly that kid
//   (none -> invalid, even if keys without kid exist); otherwise every key.
//   A candidate is tried only if its allow-list contains the header's alg, so
//   an HS256 token is never checked against an RSA/EC key (alg confusion).
// * Signature: HS* = HMAC compared in constant time (exact length); RS256 =
//   RSASSA-PKCS1-v1_5/SHA-256 (length = modulus size); ES256 = raw 64-byte
//   r||s (other lengths rejected).
// * Payload (checked only after the signature): a JSON object; JSON nesting
//   at most kMaxJsonDepth. exp/nbf/iat must be numbers when present, iss and
//   sub strings, aud a string or an array of strings. exp <= now - leeway ->
//   kExpired; nbf > now + leeway -> kNotYetValid; iss must equal
//   options.issuer and aud contain options.audience when those are set.
//
// Never throws; never logs. Error details never echo token contents.

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace switchboard::auth {

// Tokens longer than this are invalid without being parsed.
inline constexpr size_t kMaxTokenSize = 16 * 1024;
// Maximum nesting of arrays/objects in the header and payload JSON.
inline constexpr int kMaxJsonDepth = 32;

enum class Algorithm { kHS256, kHS384, kHS512, kRS256, kES256 };

// "HS256" -> kHS256 ...; case-sensitive. "none" and anything unknown ->
// nullopt.
std::optional<Algorithm> ParseAlgorithm(std::string_view name);
// kHS256 -> "HS256" ...
std::string_view AlgorithmName(Algorithm algorithm);

// Why a client is refused. kMissing is for the caller (no token presented);
// Verify never returns it.
enum class ErrorCode { kMissing, kInvalid, kExpired, kNotYetValid };

// CONNECT_ERROR message: "Authentication token required", "Invalid
// authentication token" (kInvalid and kNotYetValid), "Token expired".
std::string_view ErrorMessage(ErrorCode code);
// Machine-readable code for the CONNECT_ERROR data: "token_required",
// "invalid_token", "token_expired", "token_not_yet_valid".
std::string_view ErrorDataCode(ErrorCode code);

struct VerifyError {
  ErrorCode code = ErrorCode::kInvalid;
  // For operators (logs, counters): what failed, e.g. "signature mismatch",
  // "unknown kid". Never contains token bytes.
  std::string detail;
};

// Verification keys. Fill it with the Add* calls while configuring, then
// share it as const (e.g. std::shared_ptr<const KeySet>): const use is
// thread-safe. Copies share the (immutable) keys.
//
// Every key has an optional kid (unique within the set) and a non-empty
// allow-list of algorithms. An empty `algorithms` argument means the key
// type's default: HMAC secret -> HS256, HS384, HS512; RSA -> RS256; EC P-256
// -> ES256. Any other combination (HS* on an RSA key, RS256 on an HMAC
// secret...) is an error. A failed Add* leaves the set unchanged.
class KeySet {
 public:
  KeySet();
  ~KeySet();
  KeySet(const KeySet&);
  KeySet& operator=(const KeySet&);
  KeySet(KeySet&&) noexcept;
  KeySet& operator=(KeySet&&) noexcept;

  // An HMAC secret: the raw bytes (the caller reads files or the
  // environment). Empty -> InvalidArgument. RFC 7518 asks for at least as
  // many bytes as the hash output (32 for HS256); not enforced here.
  absl::Status AddHmacSecret(std::string_view secret,
                             std::optional<std::string> kid = std::nullopt,
                             std::vector<Algorithm> algorithms = {});

  // A PEM public key: the first PEM block must be "PUBLIC KEY" (SPKI), "RSA
  // PUBLIC KEY" (PKCS#1) or "CERTIFICATE" (its public key is used). RSA keys
  // must have at least 2048 bits; EC keys must be on P-256. `source` names
  // the input in error messages.
  absl::Status AddPublicKeyPem(std::string_view pem, std::string_view source,
                               std::optional<std::string> kid = std::nullopt,
                               std::vector<Algorithm> algorithms = {});
  absl::Status AddPublicKeyPemFile(const std::string& path,
                                   std::optional<std::string> kid = std::nullopt,
                                   std::vector<Algorithm> algorithms = {});

  // A JWK Set: {"keys": [...]}. Each key: kty "RSA" (n, e), "EC" (crv
  // "P-256", x, y: 32 bytes each) or "oct" (k); optional kid and alg (the
  // allow-list is then just alg). Keys with "use" other than "sig", with an
  // alg we do not implement (RS384, PS256, EdDSA...) or with another kty are
  // skipped; a key we would use but that is malformed or inconsistent (alg
  // "none", alg not matching kty, EC curve not P-256, bad base64url,
  // duplicate kid) is an error, as is a set with no usable key. Errors name
  // `source` and the key's index.
  absl::Status AddJwks(std::string_view json, std::string_view source);
  absl::Status AddJwksFile(const std::string& path);

  size_t size() const;
  bool empty() const { return size() == 0; }

  struct Key;  // Defined in jwt.cc.

 private:
  friend struct KeySetAccess;
  absl::Status Append(std::vector<std::shared_ptr<const Key>> keys);

  std::vector<std::shared_ptr<const Key>> keys_;
};

struct VerifyOptions {
  // Required "iss" value; unset = not checked.
  std::optional<std::string> issuer;
  // Value "aud" (a string or an array) must contain; unset = not checked.
  std::optional<std::string> audience;
  // Clock skew tolerated for exp and nbf. Negative counts as zero.
  std::chrono::seconds leeway{30};
};

struct VerifyResult {
  // Set on failure.
  std::optional<VerifyError> error;
  // On success, the payload (a JSON object); null on failure.
  nlohmann::json claims;

  bool ok() const { return !error.has_value(); }
};

// Verifies `token` (the compact JWS, without any "Bearer " prefix) against
// `keys` at time `now`. See the rules at the top of this file.
VerifyResult Verify(std::string_view token, const KeySet& keys, const VerifyOptions& options,
                    std::chrono::system_clock::time_point now);

}  // namespace switchboard::auth
