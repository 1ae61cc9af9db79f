#pragma once
// The Admin UI's sessions: after a login the UI keeps a session id and reconnects with it
// ({sessionId} instead of the password). The reference keeps ids in a store; here an id is
// signed (HMAC-SHA256, with a key derived from the configured credentials) and carries its
// expiry, so that any edge of the cluster accepts it without a shared store, and changing the
// password ends every session.

#include <chrono>
#include <string>
#include <string_view>

namespace switchboard::admin_ui {

class SessionTokens {
 public:
  SessionTokens(std::string_view username, std::string_view password_hash,
                std::chrono::seconds lifetime = std::chrono::hours(24));

  // "<random>.<expiry, unix seconds>.<signature>", URL- and JSON-safe.
  std::string Issue(std::chrono::system_clock::time_point now) const;
  // Signed with this key and not expired at `now`.
  bool Valid(std::string_view token, std::chrono::system_clock::time_point now) const;

 private:
  std::string Sign(std::string_view body) const;

  std::string key_;
  std::chrono::seconds lifetime_;
};

}  // namespace switchboard::admin_ui
