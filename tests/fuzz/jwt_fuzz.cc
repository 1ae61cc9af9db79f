// links: sb_jwt
//
// libFuzzer target for the JWT parser/verifier (edge/auth/jwt.h). Seeds:
// tests/fuzz/corpus/jwt/ (valid and near-valid tokens for the keys below;
// their private halves were discarded after signing the seeds).
// Invariants: Verify never returns kMissing; a failure has no claims, a
// success has an object; a token that passes the iss/aud check also passes
// without it.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "edge/auth/jwt.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using switchboard::auth::KeySet;
using switchboard::auth::VerifyOptions;
using switchboard::auth::VerifyResult;

constexpr std::string_view kHmacSecret = "switchboard-fuzz-secret-0123456789";

constexpr std::string_view kEcPublicPem =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEZ4KsXS10Z6Bf5mnpLRlEgRQYrnrK\n"
    "KrfXFXocEB+Nu/m+7wGwW068nhFryuaGy9nI5S8gr7agm8kgxONQTUXo2g==\n"
    "-----END PUBLIC KEY-----\n";

constexpr std::string_view kRsaPublicPem =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAguYeEBZks52thL69HsKj\n"
    "RUcR+UWFRkyWEuCeFIF46A1Ft/0HX9UHPOC+vNf7RwIkeYhvsJ01YlDdnUwYaxXB\n"
    "3XZC0Gh1j3oEM8XAOPC6gPHwUQRNNEqwQnOEjxY8aKyzp+ZKiPNDT/VkNMiabBS6\n"
    "fcVlapqjkamdS2vRqXpy2/8x+XqZZ6pzSfDWkfg2UJnsWAyF6ENZHW7Z7gyi1XKI\n"
    "sx4PuPJ4yQb1w0yddbpCm8A3FLR9aXpWVNSz6JP2mZM4C9hIHFTXNZ7TauS2VbrF\n"
    "8tsnc3s/eHzy64jg2KtFEM51K1ARSk1+VHYWGUbtzvXb6K3JZrL+x9G9gHUOTTc1\n"
    "6wIDAQAB\n"
    "-----END PUBLIC KEY-----\n";

const KeySet& Keys() {
  static const KeySet* keys = [] {
    auto* set = new KeySet();
    if (!set->AddHmacSecret(kHmacSecret, "hmac").ok() ||
        !set->AddPublicKeyPem(kEcPublicPem, "fuzz-ec.pem", "ec").ok() ||
        !set->AddPublicKeyPem(kRsaPublicPem, "fuzz-rsa.pem", "rsa").ok()) {
      std::abort();
    }
    return set;
  }();
  return *keys;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A fixed clock keeps runs reproducible (seeds expire in 2033).
  static const std::chrono::system_clock::time_point kNow{std::chrono::seconds(1'700'000'000)};
  static const VerifyOptions kPlain{};
  static const VerifyOptions kChecked{.issuer = "sb-fuzz", .audience = "switchboard"};
  const std::string_view token(reinterpret_cast<const char*>(data), size);
  for (const VerifyOptions* options : {&kPlain, &kChecked}) {
    const VerifyResult r = switchboard::auth::Verify(token, Keys(), *options, kNow);
    if (r.ok()) {
      FUZZ_CHECK(r.claims.is_object(), "accepted token without an object payload");
      FUZZ_CHECK(token.size() <= switchboard::auth::kMaxTokenSize, "oversize token accepted");
    } else {
      FUZZ_CHECK(r.claims.is_null(), "claims on failure");
      FUZZ_CHECK(r.error->code != switchboard::auth::ErrorCode::kMissing, "kMissing returned");
    }
    if (options == &kChecked && r.ok()) {
      FUZZ_CHECK(switchboard::auth::Verify(token, Keys(), kPlain, kNow).ok(),
                 "iss/aud check made a token valid");
    }
  }
  return 0;
}
