#pragma once

// Security of the public gRPC API (services/api_server.h): bearer tokens,
// TLS / mutual TLS, and the rule that the API is never open to the network.
//
// Bearer tokens. A call is authenticated by `authorization: Bearer <token>`
// metadata that matches one of the configured tokens (several at once, for
// rotation). Only SHA-256 digests of the tokens are kept; the presented
// token's digest is compared with every configured digest by CRYPTO_memcmp,
// without early exit. A token is at least 16 characters of visible ASCII
// (0x21-0x7e). Sources: a file (one token per line; blank lines and lines
// starting with '#' are ignored) and an environment variable (comma-separated).
// Error messages name the line or position of a bad token, never the token.
//
// Mutual TLS. With a client CA, a client certificate signed by that CA
// authenticates every call on its connection. Without tokens the certificate
// is required at the handshake; with tokens it is optional (a presented one
// must verify) and a call passes with a verified certificate or a valid token.
//
// Exemption: grpc.health.v1.Health needs no authentication (Kubernetes gRPC
// probes send no metadata). Everything else — switchboard.v1.Switchboard,
// server reflection, any unknown method — answers UNAUTHENTICATED "missing
// bearer token" (no Bearer authorization) or "invalid bearer token".
//
// The check runs in gRPC's transport security layer (an auth metadata
// processor on the server credentials, for plaintext as well as TLS), before
// any handler; the authorization metadata is consumed there, so handlers never
// see the token.

#include <array>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <grpcpp/security/server_credentials.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace switchboard::services {

inline constexpr size_t kMinApiTokenLength = 16;

// The accepted bearer tokens, as SHA-256 digests.
class TokenSet {
 public:
  // InvalidArgument for a token shorter than kMinApiTokenLength or with a
  // character outside 0x21-0x7e (the message gives its index, not the token).
  static absl::StatusOr<TokenSet> Create(const std::vector<std::string>& tokens);

  bool empty() const { return digests_.empty(); }
  size_t size() const { return digests_.size(); }

  // Whether `token` is one of the set. Constant time in the token's content:
  // one SHA-256 and a CRYPTO_memcmp against every digest.
  bool Matches(std::string_view token) const;

 private:
  using Digest = std::array<unsigned char, 32>;
  static Digest Sha256(std::string_view data);
  std::vector<Digest> digests_;
};

// The tokens of a token file's contents. `origin` (e.g. the path) prefixes
// errors: InvalidArgument "FILE:3: token shorter than 16 characters".
// No tokens at all is InvalidArgument too.
absl::StatusOr<std::vector<std::string>> ParseTokenFile(std::string_view contents,
                                                        std::string_view origin);
// Reads and parses `path`.
absl::StatusOr<std::vector<std::string>> ReadTokenFile(const std::string& path);
// The tokens of a comma-separated list (surrounding blanks trimmed, empty items
// skipped). `origin` prefixes errors ("$NAME: token #2 ...").
absl::StatusOr<std::vector<std::string>> ParseTokenList(std::string_view value,
                                                        std::string_view origin);

// PEM contents for the API listener.
struct ApiTlsOptions {
  std::string cert_chain{};   // server certificate chain
  std::string private_key{};  // its key
  std::string client_ca{};    // non-empty: mutual TLS, client certificates must chain to these
};

// Reads the PEM files and checks them with OpenSSL (parsable certificates,
// the key matches the certificate). InvalidArgument naming the file.
absl::StatusOr<ApiTlsOptions> LoadApiTls(const std::string& cert_file, const std::string& key_file,
                                         const std::string& client_ca_file);

// What the API listener enforces.
struct ApiSecurity {
  std::shared_ptr<const TokenSet> tokens{};  // null or empty: no bearer tokens
  std::optional<ApiTlsOptions> tls{};        // none: plaintext

  bool has_tokens() const { return tokens != nullptr && !tokens->empty(); }
  bool mutual_tls() const { return tls.has_value() && !tls->client_ca.empty(); }
  // Every call but health checks must authenticate.
  bool authenticated() const { return has_tokens() || mutual_tls(); }
  // "bearer tokens (2) over TLS", "mutual TLS", "none (plaintext)"... for logs.
  std::string Describe() const;
};

// The command line's API security flags (switchboard broker / standalone).
struct ApiSecurityFlags {
  std::string token_file{};     // --api-token-file
  std::string token_env{};      // --api-token-env (a variable name)
  std::string tls_cert{};       // --api-tls-cert
  std::string tls_key{};        // --api-tls-key
  std::string tls_client_ca{};  // --api-tls-client-ca
};

// Loads tokens (from both sources, if both are given) and TLS material.
// InvalidArgument for a bad or missing file, an unset or empty variable, a
// short token, a key without certificate, a client CA without certificate...
absl::StatusOr<ApiSecurity> LoadApiSecurity(const ApiSecurityFlags& flags);

// 127.0.0.0/8, ::1 (also IPv4-mapped ::ffff:127.x.y.z), "localhost". A host
// name other than "localhost" is not loopback (it is not resolved).
bool IsLoopbackHost(std::string_view host);

// FailedPrecondition when an unauthenticated API (no tokens, no mutual TLS)
// would listen on a non-loopback address; OK otherwise.
absl::Status CheckApiExposure(std::string_view host, const ApiSecurity& security);

// The listener's credentials: plaintext or TLS, with the authentication check
// when `security.authenticated()`.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeApiServerCredentials(
    const ApiSecurity& security);

// Exempt from authentication: the gRPC health service.
bool IsUnauthenticatedMethod(std::string_view path);

}  // namespace switchboard::services
