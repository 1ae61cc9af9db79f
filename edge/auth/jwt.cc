#include "edge/auth/jwt.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <limits>
#include <type_traits>
#include <utility>

#include "absl/status/statusor.h"
#include "edge/json_depth.h"

namespace switchboard::auth {

// ------------------------------------------------------------ utilities --

namespace {

// String concatenation over std::string_view, numbers and absl::string_view
// (this absl does not alias std::string_view, so absl::StrCat does not take
// it).
template <typename T>
void AppendPiece(std::string& out, const T& piece) {
  if constexpr (std::is_arithmetic_v<T>) {
    out += std::to_string(piece);
  } else if constexpr (std::is_same_v<T, absl::string_view>) {
    out.append(piece.data(), piece.size());
  } else {
    out += std::string_view(piece);
  }
}

template <typename... Args>
std::string Cat(const Args&... pieces) {
  std::string out;
  (AppendPiece(out, pieces), ...);
  return out;
}

template <auto Fn>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    Fn(p);
  }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, Deleter<ECDSA_SIG_free>>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, Deleter<OSSL_PARAM_BLD_free>>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, Deleter<OSSL_PARAM_free>>;

struct OpenSslFree {
  void operator()(void* p) const { OPENSSL_free(p); }
};

// Keeps OpenSSL errors we cause off the thread's error queue (other users of
// the queue on this thread, e.g. TLS, must not see them).
class ErrorMark {
 public:
  ErrorMark() { ERR_set_mark(); }
  ~ErrorMark() { ERR_pop_to_mark(); }
  ErrorMark(const ErrorMark&) = delete;
  ErrorMark& operator=(const ErrorMark&) = delete;
};

// The newest OpenSSL error as text, or "" (for load-time messages).
std::string LastOpenSslError() {
  unsigned long code = ERR_peek_last_error();
  if (code == 0) return "";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return Cat(" (", buf, ")");
}

constexpr int8_t kB64Invalid = -1;

constexpr std::array<int8_t, 256> MakeBase64UrlTable() {
  std::array<int8_t, 256> table{};
  for (auto& v : table) v = kB64Invalid;
  constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (size_t i = 0; i < kAlphabet.size(); ++i) {
    table[static_cast<unsigned char>(kAlphabet[i])] = static_cast<int8_t>(i);
  }
  return table;
}
constexpr std::array<int8_t, 256> kBase64UrlTable = MakeBase64UrlTable();

// Strict base64url without padding: alphabet only, length % 4 != 1, unused
// trailing bits zero (so every byte string has exactly one encoding).
std::optional<std::string> Base64UrlDecode(std::string_view in) {
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(in.size() / 4 * 3 + 2);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int8_t v = kBase64UrlTable[static_cast<unsigned char>(c)];
    if (v == kB64Invalid) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

// Parses bounded JSON without exceptions; discarded on any error.
nlohmann::json ParseJson(std::string_view text) {
  if (edge::ExceedsJsonDepth(text, static_cast<size_t>(kMaxJsonDepth))) {
    return nlohmann::json(nlohmann::json::value_t::discarded);
  }
  return nlohmann::json::parse(text, /*cb=*/nullptr, /*allow_exceptions=*/false);
}

enum class KeyType { kHmac, kRsa, kEcP256 };

std::string_view KeyTypeName(KeyType type) {
  switch (type) {
    case KeyType::kHmac:
      return "HMAC secret";
    case KeyType::kRsa:
      return "RSA key";
    case KeyType::kEcP256:
      return "EC P-256 key";
  }
  return "key";
}

bool Compatible(KeyType type, Algorithm alg) {
  switch (alg) {
    case Algorithm::kHS256:
    case Algorithm::kHS384:
    case Algorithm::kHS512:
      return type == KeyType::kHmac;
    case Algorithm::kRS256:
      return type == KeyType::kRsa;
    case Algorithm::kES256:
      return type == KeyType::kEcP256;
  }
  return false;
}

std::vector<Algorithm> DefaultAlgorithms(KeyType type) {
  switch (type) {
    case KeyType::kHmac:
      return {Algorithm::kHS256, Algorithm::kHS384, Algorithm::kHS512};
    case KeyType::kRsa:
      return {Algorithm::kRS256};
    case KeyType::kEcP256:
      return {Algorithm::kES256};
  }
  return {};
}

// Fills in the default allow-list, or checks the given one fits the key.
absl::Status ResolveAlgorithms(KeyType type, std::vector<Algorithm>& algorithms,
                               std::string_view where) {
  if (algorithms.empty()) {
    algorithms = DefaultAlgorithms(type);
    return absl::OkStatus();
  }
  for (Algorithm alg : algorithms) {
    if (!Compatible(type, alg)) {
      return absl::InvalidArgumentError(Cat(where, ": algorithm ", AlgorithmName(alg),
                                                     " cannot be used with an ",
                                                     KeyTypeName(type)));
    }
  }
  return absl::OkStatus();
}

constexpr size_t kMaxKeyFileSize = 1 << 20;

absl::StatusOr<std::string> ReadKeyFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(Cat(path, ": cannot open file"));
  std::string data;
  char buf[4096];
  while (in.read(buf, sizeof(buf)) || in.gcount() > 0) {
    data.append(buf, static_cast<size_t>(in.gcount()));
    if (data.size() > kMaxKeyFileSize) {
      return absl::InvalidArgumentError(Cat(path, ": file larger than 1 MiB"));
    }
  }
  if (in.bad()) return absl::InternalError(Cat(path, ": read error"));
  return data;
}

}  // namespace

// ---------------------------------------------------------- algorithms --

std::optional<Algorithm> ParseAlgorithm(std::string_view name) {
  if (name == "HS256") return Algorithm::kHS256;
  if (name == "HS384") return Algorithm::kHS384;
  if (name == "HS512") return Algorithm::kHS512;
  if (name == "RS256") return Algorithm::kRS256;
  if (name == "ES256") return Algorithm::kES256;
  return std::nullopt;
}

std::string_view AlgorithmName(Algorithm algorithm) {
  switch (algorithm) {
    case Algorithm::kHS256:
      return "HS256";
    case Algorithm::kHS384:
      return "HS384";
    case Algorithm::kHS512:
      return "HS512";
    case Algorithm::kRS256:
      return "RS256";
    case Algorithm::kES256:
      return "ES256";
  }
  return "?";
}

std::string_view ErrorMessage(ErrorCode code) {
  switch (code) {
    case ErrorCode::kMissing:
      return "Authentication token required";
    case ErrorCode::kExpired:
      return "Token expired";
    case ErrorCode::kInvalid:
    case ErrorCode::kNotYetValid:
      return "Invalid authentication token";
  }
  return "Invalid authentication token";
}

std::string_view ErrorDataCode(ErrorCode code) {
  switch (code) {
    case ErrorCode::kMissing:
      return "token_required";
    case ErrorCode::kExpired:
      return "token_expired";
    case ErrorCode::kNotYetValid:
      return "token_not_yet_valid";
    case ErrorCode::kInvalid:
      return "invalid_token";
  }
  return "invalid_token";
}

// ---------------------------------------------------------------- keys --

struct KeySet::Key {
  Key() = default;
  Key(const Key&) = delete;
  Key& operator=(const Key&) = delete;
  ~Key() {
    if (!secret.empty()) OPENSSL_cleanse(secret.data(), secret.size());
  }

  bool Allows(Algorithm alg) const {
    return std::find(algorithms.begin(), algorithms.end(), alg) != algorithms.end();
  }

  KeyType type = KeyType::kHmac;
  std::optional<std::string> kid;
  std::vector<Algorithm> algorithms;
  std::string secret;  // kHmac
  PkeyPtr pkey;        // kRsa, kEcP256
};

using KeyPtr = std::shared_ptr<const KeySet::Key>;

struct KeySetAccess {
  static const std::vector<KeyPtr>& Keys(const KeySet& set) { return set.keys_; }
};

namespace {

constexpr int kMinRsaBits = 2048;

// Classifies a public key: RSA (>= 2048 bits) or EC on P-256.
absl::StatusOr<KeyType> ClassifyPublicKey(EVP_PKEY* pkey, std::string_view where) {
  if (EVP_PKEY_is_a(pkey, "RSA")) {
    int bits = EVP_PKEY_get_bits(pkey);
    if (bits < kMinRsaBits) {
      return absl::InvalidArgumentError(
          Cat(where, ": RSA key has ", bits, " bits; at least 2048 are required"));
    }
    return KeyType::kRsa;
  }
  if (EVP_PKEY_is_a(pkey, "EC")) {
    char group[80] = {};
    size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       &len) != 1) {
      return absl::InvalidArgumentError(
          Cat(where, ": EC key without a named curve; only P-256 is supported"));
    }
    std::string_view name(group, len);
    if (name != "prime256v1" && name != "P-256") {
      const char* nist = EC_curve_nid2nist(OBJ_sn2nid(group));
      return absl::InvalidArgumentError(Cat(where, ": EC curve ", name, nist ? " (" : "",
                                            nist ? nist : "", nist ? ")" : "",
                                            " is not supported (only P-256)"));
    }
    return KeyType::kEcP256;
  }
  const char* type = EVP_PKEY_get0_type_name(pkey);
  return absl::InvalidArgumentError(Cat(where, ": unsupported key type ",
                                                 type ? type : "(unknown)",
                                                 "; expected RSA or EC P-256"));
}

absl::StatusOr<KeyPtr> MakePublicKey(PkeyPtr pkey, std::optional<std::string> kid,
                                     std::vector<Algorithm> algorithms, std::string_view where) {
  absl::StatusOr<KeyType> type = ClassifyPublicKey(pkey.get(), where);
  if (!type.ok()) return type.status();
  if (absl::Status s = ResolveAlgorithms(*type, algorithms, where); !s.ok()) return s;
  auto key = std::make_shared<KeySet::Key>();
  key->type = *type;
  key->kid = std::move(kid);
  key->algorithms = std::move(algorithms);
  key->pkey = std::move(pkey);
  return KeyPtr(std::move(key));
}

absl::StatusOr<KeyPtr> MakeHmacKey(std::string_view secret, std::optional<std::string> kid,
                                   std::vector<Algorithm> algorithms, std::string_view where) {
  if (secret.empty()) return absl::InvalidArgumentError(Cat(where, ": empty secret"));
  if (absl::Status s = ResolveAlgorithms(KeyType::kHmac, algorithms, where); !s.ok()) return s;
  auto key = std::make_shared<KeySet::Key>();
  key->type = KeyType::kHmac;
  key->kid = std::move(kid);
  key->algorithms = std::move(algorithms);
  key->secret.assign(secret);
  return KeyPtr(std::move(key));
}

absl::StatusOr<PkeyPtr> DecodePemPublicKey(std::string_view pem, std::string_view where) {
  if (pem.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
    return absl::InvalidArgumentError(Cat(where, ": too large"));
  }
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return absl::ResourceExhaustedError(Cat(where, ": out of memory"));
  char* raw_name = nullptr;
  char* raw_header = nullptr;
  unsigned char* raw_data = nullptr;
  long len = 0;
  if (PEM_read_bio(bio.get(), &raw_name, &raw_header, &raw_data, &len) != 1) {
    return absl::InvalidArgumentError(Cat(where, ": no PEM block found"));
  }
  std::unique_ptr<char, OpenSslFree> name(raw_name);
  std::unique_ptr<char, OpenSslFree> header(raw_header);
  std::unique_ptr<unsigned char, OpenSslFree> data(raw_data);
  std::string_view label(name.get());
  const unsigned char* p = data.get();
  PkeyPtr pkey;
  if (label == "PUBLIC KEY") {
    pkey.reset(d2i_PUBKEY(nullptr, &p, len));
  } else if (label == "RSA PUBLIC KEY") {
    pkey.reset(d2i_PublicKey(EVP_PKEY_RSA, nullptr, &p, len));
  } else if (label == "CERTIFICATE") {
    X509Ptr cert(d2i_X509(nullptr, &p, len));
    if (!cert) {
      return absl::InvalidArgumentError(
          Cat(where, ": cannot parse CERTIFICATE", LastOpenSslError()));
    }
    pkey.reset(X509_get_pubkey(cert.get()));
  } else if (label.find("PRIVATE KEY") != std::string_view::npos) {
    return absl::InvalidArgumentError(
        Cat(where, ": holds a private key; configure the public key (\"PUBLIC KEY\")"));
  } else {
    return absl::InvalidArgumentError(Cat(
        where, ": PEM block \"", label, "\" is not a PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE"));
  }
  if (!pkey || p != data.get() + len) {
    return absl::InvalidArgumentError(
        Cat(where, ": cannot parse ", label, LastOpenSslError()));
  }
  return pkey;
}

// --- JWKS components -> EVP_PKEY (OpenSSL 3 provider APIs) ---

absl::StatusOr<std::string> JwkBytes(const nlohmann::json& jwk, const char* member,
                                     std::string_view where) {
  auto it = jwk.find(member);
  if (it == jwk.end() || !it->is_string()) {
    return absl::InvalidArgumentError(
        Cat(where, ": missing string member \"", member, "\""));
  }
  std::optional<std::string> bytes = Base64UrlDecode(it->get_ref<const std::string&>());
  if (!bytes || bytes->empty()) {
    return absl::InvalidArgumentError(
        Cat(where, ": \"", member, "\" is not valid non-empty base64url"));
  }
  return *std::move(bytes);
}

BnPtr BytesToBn(std::string_view bytes) {
  return BnPtr(BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()),
                         static_cast<int>(bytes.size()), nullptr));
}

absl::StatusOr<PkeyPtr> PkeyFromParams(const char* type, OSSL_PARAM_BLD* bld,
                                       std::string_view where) {
  ParamPtr params(OSSL_PARAM_BLD_to_param(bld));
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return absl::InvalidArgumentError(
        Cat(where, ": cannot build the ", type, " key", LastOpenSslError()));
  }
  PkeyPtr pkey(raw);
  PkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1) {
    return absl::InvalidArgumentError(
        Cat(where, ": invalid ", type, " public key", LastOpenSslError()));
  }
  return pkey;
}

absl::StatusOr<PkeyPtr> RsaFromJwk(const nlohmann::json& jwk, std::string_view where) {
  absl::StatusOr<std::string> n = JwkBytes(jwk, "n", where);
  if (!n.ok()) return n.status();
  absl::StatusOr<std::string> e = JwkBytes(jwk, "e", where);
  if (!e.ok()) return e.status();
  if (n->size() > 2048 || e->size() > 8) {
    return absl::InvalidArgumentError(Cat(where, ": RSA n or e too large"));
  }
  BnPtr bn_n = BytesToBn(*n);
  BnPtr bn_e = BytesToBn(*e);
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bn_n || !bn_e || !bld ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1) {
    return absl::ResourceExhaustedError(Cat(where, ": out of memory"));
  }
  return PkeyFromParams("RSA", bld.get(), where);
}

absl::StatusOr<PkeyPtr> EcFromJwk(const nlohmann::json& jwk, std::string_view where) {
  auto crv = jwk.find("crv");
  if (crv == jwk.end() || !crv->is_string()) {
    return absl::InvalidArgumentError(Cat(where, ": missing string member \"crv\""));
  }
  if (crv->get_ref<const std::string&>() != "P-256") {
    return absl::InvalidArgumentError(Cat(
        where, ": EC curve ", crv->get_ref<const std::string&>(), " is not supported (only P-256)"));
  }
  absl::StatusOr<std::string> x = JwkBytes(jwk, "x", where);
  if (!x.ok()) return x.status();
  absl::StatusOr<std::string> y = JwkBytes(jwk, "y", where);
  if (!y.ok()) return y.status();
  if (x->size() != 32 || y->size() != 32) {
    return absl::InvalidArgumentError(Cat(where, ": P-256 x and y must be 32 bytes"));
  }
  std::string point = Cat("\x04", *x, *y);  // Uncompressed SEC1 point.
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) !=
          1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1) {
    return absl::ResourceExhaustedError(Cat(where, ": out of memory"));
  }
  return PkeyFromParams("EC", bld.get(), where);
}

std::optional<std::string> OptionalString(const nlohmann::json& obj, const char* member) {
  auto it = obj.find(member);
  if (it == obj.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

// One JWK -> a key, nullopt when skipped (not for signatures, or an
// algorithm/key type we do not implement), or an error.
absl::StatusOr<std::optional<KeyPtr>> KeyFromJwk(const nlohmann::json& jwk,
                                                 std::string_view where) {
  if (!jwk.is_object()) return absl::InvalidArgumentError(Cat(where, ": not an object"));
  for (const char* member : {"kty", "kid", "alg", "use"}) {
    auto it = jwk.find(member);
    if (it != jwk.end() && !it->is_string()) {
      return absl::InvalidArgumentError(
          Cat(where, ": \"", member, "\" must be a string"));
    }
  }
  std::optional<std::string> use = OptionalString(jwk, "use");
  if (use && *use != "sig") return std::optional<KeyPtr>();
  std::optional<std::string> kty = OptionalString(jwk, "kty");
  if (!kty) return absl::InvalidArgumentError(Cat(where, ": missing \"kty\""));
  std::optional<std::string> kid = OptionalString(jwk, "kid");
  std::optional<std::string> alg_name = OptionalString(jwk, "alg");

  std::vector<Algorithm> algorithms;
  if (alg_name) {
    if (*alg_name == "none") {
      return absl::InvalidArgumentError(Cat(where, ": alg \"none\" is never accepted"));
    }
    std::optional<Algorithm> alg = ParseAlgorithm(*alg_name);
    if (!alg) return std::optional<KeyPtr>();  // e.g. RS384, PS256, EdDSA.
    algorithms.push_back(*alg);
  }

  if (*kty == "oct") {
    absl::StatusOr<std::string> k = JwkBytes(jwk, "k", where);
    if (!k.ok()) return k.status();
    absl::StatusOr<KeyPtr> key = MakeHmacKey(*k, kid, algorithms, where);
    OPENSSL_cleanse(k->data(), k->size());
    if (!key.ok()) return key.status();
    return std::optional<KeyPtr>(*std::move(key));
  }
  absl::StatusOr<PkeyPtr> pkey;
  if (*kty == "RSA") {
    pkey = RsaFromJwk(jwk, where);
  } else if (*kty == "EC") {
    pkey = EcFromJwk(jwk, where);
  } else if (!algorithms.empty()) {
    return absl::InvalidArgumentError(Cat(where, ": alg ", *alg_name,
                                                   " cannot be used with kty ", *kty));
  } else {
    return std::optional<KeyPtr>();  // e.g. OKP.
  }
  if (!pkey.ok()) return pkey.status();
  absl::StatusOr<KeyPtr> key = MakePublicKey(*std::move(pkey), kid, algorithms, where);
  if (!key.ok()) return key.status();
  return std::optional<KeyPtr>(*std::move(key));
}

}  // namespace

KeySet::KeySet() = default;
KeySet::~KeySet() = default;
KeySet::KeySet(const KeySet&) = default;
KeySet& KeySet::operator=(const KeySet&) = default;
KeySet::KeySet(KeySet&&) noexcept = default;
KeySet& KeySet::operator=(KeySet&&) noexcept = default;

size_t KeySet::size() const { return keys_.size(); }

absl::Status KeySet::Append(std::vector<KeyPtr> keys) {
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::optional<std::string>& kid = keys[i]->kid;
    if (!kid) continue;
    auto same = [&](const KeyPtr& other) { return other->kid == kid; };
    if (std::any_of(keys_.begin(), keys_.end(), same) ||
        std::any_of(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(i), same)) {
      return absl::AlreadyExistsError(Cat("duplicate kid \"", *kid, "\""));
    }
  }
  keys_.insert(keys_.end(), std::make_move_iterator(keys.begin()),
               std::make_move_iterator(keys.end()));
  return absl::OkStatus();
}

absl::Status KeySet::AddHmacSecret(std::string_view secret, std::optional<std::string> kid,
                                   std::vector<Algorithm> algorithms) {
  absl::StatusOr<KeyPtr> key =
      MakeHmacKey(secret, std::move(kid), std::move(algorithms), "HMAC secret");
  if (!key.ok()) return key.status();
  absl::Status s = Append({*std::move(key)});
  if (!s.ok()) return absl::Status(s.code(), Cat("HMAC secret: ", s.message()));
  return s;
}

absl::Status KeySet::AddPublicKeyPem(std::string_view pem, std::string_view source,
                                     std::optional<std::string> kid,
                                     std::vector<Algorithm> algorithms) {
  ErrorMark mark;
  absl::StatusOr<PkeyPtr> pkey = DecodePemPublicKey(pem, source);
  if (!pkey.ok()) return pkey.status();
  absl::StatusOr<KeyPtr> key =
      MakePublicKey(*std::move(pkey), std::move(kid), std::move(algorithms), source);
  if (!key.ok()) return key.status();
  absl::Status s = Append({*std::move(key)});
  if (!s.ok()) return absl::Status(s.code(), Cat(source, ": ", s.message()));
  return s;
}

absl::Status KeySet::AddPublicKeyPemFile(const std::string& path, std::optional<std::string> kid,
                                         std::vector<Algorithm> algorithms) {
  absl::StatusOr<std::string> pem = ReadKeyFile(path);
  if (!pem.ok()) return pem.status();
  return AddPublicKeyPem(*pem, path, std::move(kid), std::move(algorithms));
}

absl::Status KeySet::AddJwks(std::string_view json, std::string_view source) {
  ErrorMark mark;
  try {
    nlohmann::json doc = ParseJson(json);
    if (doc.is_discarded()) {
      return absl::InvalidArgumentError(Cat(source, ": not valid JSON"));
    }
    auto keys_it = doc.is_object() ? doc.find("keys") : doc.end();
    if (keys_it == doc.end() || !keys_it->is_array()) {
      return absl::InvalidArgumentError(
          Cat(source, ": expected a JSON object with a \"keys\" array"));
    }
    std::vector<KeyPtr> keys;
    for (size_t i = 0; i < keys_it->size(); ++i) {
      const nlohmann::json& jwk = (*keys_it)[i];
      std::string where = Cat(source, ": keys[", i, "]");
      absl::StatusOr<std::optional<KeyPtr>> key = KeyFromJwk(jwk, where);
      if (!key.ok()) return key.status();
      if (*key) keys.push_back(**std::move(key));
    }
    if (keys.empty()) {
      return absl::InvalidArgumentError(Cat(
          source, ": no usable key (need kty RSA, EC P-256 or oct for RS256, ES256 or HS*)"));
    }
    absl::Status s = Append(std::move(keys));
    if (!s.ok()) return absl::Status(s.code(), Cat(source, ": ", s.message()));
    return s;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(Cat(source, ": ", e.what()));
  }
}

absl::Status KeySet::AddJwksFile(const std::string& path) {
  absl::StatusOr<std::string> json = ReadKeyFile(path);
  if (!json.ok()) return json.status();
  return AddJwks(*json, path);
}

// -------------------------------------------------------------- verify --

namespace {

VerifyResult Fail(ErrorCode code, std::string detail) {
  VerifyResult result;
  result.error = VerifyError{code, std::move(detail)};
  return result;
}

VerifyResult Invalid(std::string detail) { return Fail(ErrorCode::kInvalid, std::move(detail)); }

const EVP_MD* HmacDigest(Algorithm alg) {
  switch (alg) {
    case Algorithm::kHS256:
      return EVP_sha256();
    case Algorithm::kHS384:
      return EVP_sha384();
    case Algorithm::kHS512:
      return EVP_sha512();
    default:
      return nullptr;
  }
}

bool VerifyHmac(const KeySet::Key& key, Algorithm alg, std::string_view signing_input,
                std::string_view signature) {
  const EVP_MD* md = HmacDigest(alg);
  if (md == nullptr) return false;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (HMAC(md, key.secret.data(), static_cast<int>(key.secret.size()),
           reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(), mac,
           &mac_len) == nullptr) {
    return false;
  }
  // The length is public (fixed per algorithm); the bytes compare in constant
  // time.
  return signature.size() == mac_len && CRYPTO_memcmp(mac, signature.data(), mac_len) == 0;
}

bool DigestVerify(EVP_PKEY* pkey, std::string_view signing_input, const unsigned char* sig,
                  size_t sig_len) {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  return ctx &&
         EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey) == 1 &&
         EVP_DigestVerify(ctx.get(), sig, sig_len,
                          reinterpret_cast<const unsigned char*>(signing_input.data()),
                          signing_input.size()) == 1;
}

bool VerifyRs256(const KeySet::Key& key, std::string_view signing_input,
                 std::string_view signature) {
  if (signature.size() != static_cast<size_t>(EVP_PKEY_get_size(key.pkey.get()))) return false;
  return DigestVerify(key.pkey.get(), signing_input,
                      reinterpret_cast<const unsigned char*>(signature.data()), signature.size());
}

bool VerifyEs256(const KeySet::Key& key, std::string_view signing_input,
                 std::string_view signature) {
  if (signature.size() != 64) return false;
  const auto* raw = reinterpret_cast<const unsigned char*>(signature.data());
  BnPtr r(BN_bin2bn(raw, 32, nullptr));
  BnPtr s(BN_bin2bn(raw + 32, 32, nullptr));
  EcdsaSigPtr sig(ECDSA_SIG_new());
  if (!r || !s || !sig || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) return false;
  r.release();  // Owned by sig now.
  s.release();
  unsigned char* der_raw = nullptr;
  int der_len = i2d_ECDSA_SIG(sig.get(), &der_raw);
  if (der_len <= 0) return false;
  std::unique_ptr<unsigned char, OpenSslFree> der(der_raw);
  return DigestVerify(key.pkey.get(), signing_input, der.get(), static_cast<size_t>(der_len));
}

bool VerifySignature(const KeySet::Key& key, Algorithm alg, std::string_view signing_input,
                     std::string_view signature) {
  // Allows() already ties alg to the key type; checked again so a key can
  // never be used with another algorithm family.
  if (!Compatible(key.type, alg)) return false;
  switch (key.type) {
    case KeyType::kHmac:
      return VerifyHmac(key, alg, signing_input, signature);
    case KeyType::kRsa:
      return VerifyRs256(key, signing_input, signature);
    case KeyType::kEcP256:
      return VerifyEs256(key, signing_input, signature);
  }
  return false;
}

// Checks the registered claims of a verified payload.
VerifyResult CheckClaims(nlohmann::json payload, const VerifyOptions& options,
                         std::chrono::system_clock::time_point now) {
  for (const char* member : {"exp", "nbf", "iat"}) {
    auto it = payload.find(member);
    if (it != payload.end() && !it->is_number()) {
      return Invalid(Cat("claim ", member, " is not a number"));
    }
  }
  for (const char* member : {"iss", "sub"}) {
    auto it = payload.find(member);
    if (it != payload.end() && !it->is_string()) {
      return Invalid(Cat("claim ", member, " is not a string"));
    }
  }
  auto aud = payload.find("aud");
  if (aud != payload.end()) {
    bool ok = aud->is_string() ||
              (aud->is_array() && std::all_of(aud->begin(), aud->end(),
                                              [](const nlohmann::json& a) { return a.is_string(); }));
    if (!ok) return Invalid("claim aud is not a string or an array of strings");
  }

  const double now_s = std::chrono::duration<double>(now.time_since_epoch()).count();
  const double leeway = static_cast<double>(std::max<int64_t>(options.leeway.count(), 0));
  if (auto exp = payload.find("exp"); exp != payload.end()) {
    if (exp->get<double>() <= now_s - leeway) return Fail(ErrorCode::kExpired, "token expired");
  }
  if (auto nbf = payload.find("nbf"); nbf != payload.end()) {
    if (nbf->get<double>() > now_s + leeway) {
      return Fail(ErrorCode::kNotYetValid, "token not yet valid (nbf)");
    }
  }
  if (options.issuer) {
    auto iss = payload.find("iss");
    if (iss == payload.end()) return Invalid("issuer missing");
    if (iss->get_ref<const std::string&>() != *options.issuer) return Invalid("issuer mismatch");
  }
  if (options.audience) {
    if (aud == payload.end()) return Invalid("audience missing");
    bool found = aud->is_string() ? aud->get_ref<const std::string&>() == *options.audience
                                  : std::any_of(aud->begin(), aud->end(), [&](const auto& a) {
                                      return a.template get_ref<const std::string&>() ==
                                             *options.audience;
                                    });
    if (!found) return Invalid("audience mismatch");
  }
  VerifyResult result;
  result.claims = std::move(payload);
  return result;
}

VerifyResult VerifyImpl(std::string_view token, const KeySet& keys, const VerifyOptions& options,
                        std::chrono::system_clock::time_point now) {
  if (token.size() > kMaxTokenSize) return Invalid("token too large");
  size_t dot1 = token.find('.');
  if (dot1 == std::string_view::npos) return Invalid("not three segments");
  size_t dot2 = token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return Invalid("not three segments");
  }
  const std::string_view signing_input = token.substr(0, dot2);
  std::optional<std::string> header_bytes = Base64UrlDecode(token.substr(0, dot1));
  std::optional<std::string> payload_bytes =
      Base64UrlDecode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  std::optional<std::string> signature = Base64UrlDecode(token.substr(dot2 + 1));
  if (!header_bytes || !payload_bytes || !signature) return Invalid("bad base64url");

  nlohmann::json header = ParseJson(*header_bytes);
  if (header.is_discarded() || !header.is_object()) return Invalid("header is not a JSON object");
  auto alg_it = header.find("alg");
  if (alg_it == header.end() || !alg_it->is_string()) return Invalid("header alg missing");
  std::optional<Algorithm> alg = ParseAlgorithm(alg_it->get_ref<const std::string&>());
  if (!alg) return Invalid("algorithm not accepted");
  if (header.contains("crit")) return Invalid("unsupported crit header");
  std::optional<std::string> kid;
  if (auto kid_it = header.find("kid"); kid_it != header.end()) {
    if (!kid_it->is_string()) return Invalid("header kid is not a string");
    kid = kid_it->get<std::string>();
  }

  const std::vector<KeyPtr>& all = KeySetAccess::Keys(keys);
  bool kid_known = false;
  bool tried = false;
  bool verified = false;
  {
    ErrorMark mark;
    for (const KeyPtr& key : all) {
      if (kid) {
        if (key->kid != kid) continue;
        kid_known = true;
      }
      if (!key->Allows(*alg)) continue;
      tried = true;
      if (VerifySignature(*key, *alg, signing_input, *signature)) {
        verified = true;
        break;
      }
    }
  }
  if (kid && !kid_known) return Invalid("unknown kid");
  if (!tried) return Invalid("no key allows the algorithm");
  if (!verified) return Invalid("signature mismatch");

  nlohmann::json payload = ParseJson(*payload_bytes);
  if (payload.is_discarded() || !payload.is_object()) {
    return Invalid("payload is not a JSON object");
  }
  return CheckClaims(std::move(payload), options, now);
}

}  // namespace

VerifyResult Verify(std::string_view token, const KeySet& keys, const VerifyOptions& options,
                    std::chrono::system_clock::time_point now) {
  try {
    return VerifyImpl(token, keys, options, now);
  } catch (const std::exception&) {
    // Not expected (parsing does not throw); keeps the no-throw promise.
    return Invalid("internal error");
  }
}

}  // namespace switchboard::auth
