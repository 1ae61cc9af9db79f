#include "admin_ui/password_hash.h"

#include <crypt.h>

#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"

namespace switchboard::admin_ui {

absl::StatusOr<std::string> HashPassword(std::string_view password, int cost) {
  if (password.empty()) return absl::InvalidArgumentError("the password is empty");
  if (password.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError("the password holds a NUL byte");
  }
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  // No random bytes given: libcrypt takes them from the system's generator.
  if (crypt_gensalt_rn("$2b$", cost, nullptr, 0, salt, sizeof salt) == nullptr) {
    return absl::InternalError(
        absl::StrCat("crypt_gensalt_rn($2b$, ", cost, "): ", std::strerror(errno)));
  }
  auto data = std::make_unique<crypt_data>();  // ~32 KiB: not on the stack
  std::memset(data.get(), 0, sizeof(crypt_data));
  const std::string pw(password);
  const char* out = crypt_r(pw.c_str(), salt, data.get());
  // On failure libcrypt returns null or a string starting with '*'.
  if (out == nullptr || out[0] != '$') {
    return absl::InternalError(absl::StrCat("crypt_r: ", std::strerror(errno)));
  }
  std::string hash(out);
  std::memset(data.get(), 0, sizeof(crypt_data));  // no copy of the password left behind
  return hash;
}

}  // namespace switchboard::admin_ui
