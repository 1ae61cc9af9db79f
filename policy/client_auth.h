#pragma once

// JWT authentication of a namespace's clients (services/CONFIG.md, "auth").
// A middleware finds the token — the CONNECT auth payload's `token`, the
// handshake's `Authorization: Bearer` header, or a query parameter, as
// configured — verifies it against the namespace's keys and makes its `sub`
// the socket's user id and the configured claims the socket's claims. A
// client without a valid token gets CONNECT_ERROR with a clear message and a
// machine-readable `data.code` ("token_required", "invalid_token",
// "token_expired", "token_not_yet_valid").

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "edge/auth/jwt.h"
#include "edge/socketio/namespace.h"
#include "policy/namespace_policy.h"

namespace switchboard::policy {

class ClientAuth {
 public:
  // Loads the keys the policy names (files, environment variables); errors
  // name `where` (e.g. namespaces["/chat"].auth) and the key.
  static absl::StatusOr<std::shared_ptr<ClientAuth>> Create(const AuthPolicy& policy,
                                                            std::string_view where);

  // Adds the middleware; install before any other middleware of `nsp`.
  void Install(sio::Namespace& nsp);

  uint64_t accepted() const { return accepted_.load(std::memory_order_relaxed); }
  uint64_t rejected() const { return rejected_.load(std::memory_order_relaxed); }

  // What the middleware does for one socket (exposed for tests): the
  // verified claims, or the CONNECT_ERROR to send.
  auth::VerifyResult Check(const sio::Socket& socket) const;

 private:
  ClientAuth(AuthPolicy policy, auth::KeySet keys);
  std::string FindToken(const sio::Socket& socket) const;

  const AuthPolicy policy_;
  const auth::KeySet keys_;
  auth::VerifyOptions verify_;
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> rejected_{0};
};

}  // namespace switchboard::policy
