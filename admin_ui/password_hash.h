#pragma once
// `switchboard hash-password`: the bcrypt hash an operator puts in adminUi.auth.passwordHash
// (checked by admin_ui/password.h), so that no other tool is needed.

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace switchboard::admin_ui {

// "$2b$<cost>$<salt><hash>" with a fresh random salt (libcrypt). Refuses an empty password and
// one holding a NUL byte. As every bcrypt, only the first 72 bytes count.
absl::StatusOr<std::string> HashPassword(std::string_view password, int cost = 10);

}  // namespace switchboard::admin_ui
