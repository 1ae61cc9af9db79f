#include "edge/auth/jwt.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace switchboard::auth {
namespace {

using json = nlohmann::json;
using std::chrono::seconds;

// -------------------------------------------------- test key material --

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};

std::string BioContents(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(len));
}

std::string PublicPem(EVP_PKEY* pkey) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  EXPECT_EQ(PEM_write_bio_PUBKEY(bio.get(), pkey), 1);
  return BioContents(bio.get());
}

std::string PrivatePem(EVP_PKEY* pkey) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  EXPECT_EQ(PEM_write_bio_PrivateKey(bio.get(), pkey, nullptr, nullptr, 0, nullptr, nullptr), 1);
  return BioContents(bio.get());
}

// PKCS#1 "RSA PUBLIC KEY".
std::string RsaPkcs1Pem(EVP_PKEY* pkey) {
  unsigned char* der = nullptr;
  int len = i2d_PublicKey(pkey, &der);
  EXPECT_GT(len, 0);
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  EXPECT_GT(PEM_write_bio(bio.get(), "RSA PUBLIC KEY", "", der, len), 0);
  OPENSSL_free(der);
  return BioContents(bio.get());
}

// A self-signed certificate for `pkey`.
std::string CertificatePem(EVP_PKEY* pkey) {
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, pkey);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("test"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  EXPECT_GT(X509_sign(cert, pkey, EVP_sha256()), 0);
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  EXPECT_EQ(PEM_write_bio_X509(bio.get(), cert), 1);
  X509_free(cert);
  return BioContents(bio.get());
}

std::string BnParam(EVP_PKEY* pkey, const char* name, int pad = 0) {
  BIGNUM* bn = nullptr;
  EXPECT_EQ(EVP_PKEY_get_bn_param(pkey, name, &bn), 1) << name;
  std::string out(pad > 0 ? static_cast<size_t>(pad) : static_cast<size_t>(BN_num_bytes(bn)),
                  '\0');
  if (pad > 0) {
    BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), pad);
  } else {
    BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  }
  BN_free(bn);
  return out;
}

std::string B64(std::string_view bytes) {
  return absl::WebSafeBase64Escape(absl::string_view(bytes.data(), bytes.size()));
}

// Keys are generated once per process and only when a test needs them.
EVP_PKEY* RsaKey() {
  static EVP_PKEY* key = EVP_RSA_gen(2048);
  return key;
}
EVP_PKEY* OtherRsaKey() {
  static EVP_PKEY* key = EVP_RSA_gen(2048);
  return key;
}
EVP_PKEY* EcKey() {
  static EVP_PKEY* key = EVP_EC_gen("P-256");
  return key;
}
EVP_PKEY* OtherEcKey() {
  static EVP_PKEY* key = EVP_EC_gen("P-256");
  return key;
}

json RsaJwk(EVP_PKEY* pkey, std::string kid) {
  return {{"kty", "RSA"},
          {"kid", kid},
          {"n", B64(BnParam(pkey, OSSL_PKEY_PARAM_RSA_N))},
          {"e", B64(BnParam(pkey, OSSL_PKEY_PARAM_RSA_E))}};
}

json EcJwk(EVP_PKEY* pkey, std::string kid) {
  return {{"kty", "EC"},
          {"kid", kid},
          {"crv", "P-256"},
          {"x", B64(BnParam(pkey, OSSL_PKEY_PARAM_EC_PUB_X, 32))},
          {"y", B64(BnParam(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, 32))}};
}

// ------------------------------------------------------------ signing --

using Signer = std::function<std::string(std::string_view signing_input)>;

Signer Hmac(const EVP_MD* md, std::string secret) {
  return [md, secret](std::string_view input) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(md, secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
    return std::string(reinterpret_cast<char*>(mac), len);
  };
}
Signer Hs256(std::string secret) { return Hmac(EVP_sha256(), std::move(secret)); }

std::string DigestSign(EVP_PKEY* pkey, std::string_view input) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t len = 0;
  EXPECT_EQ(EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, pkey), 1);
  EXPECT_EQ(EVP_DigestSign(ctx, nullptr, &len,
                           reinterpret_cast<const unsigned char*>(input.data()), input.size()),
            1);
  std::string sig(len, '\0');
  EXPECT_EQ(EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                           reinterpret_cast<const unsigned char*>(input.data()), input.size()),
            1);
  sig.resize(len);
  EVP_MD_CTX_free(ctx);
  return sig;
}

Signer Rs256(EVP_PKEY* pkey) {
  return [pkey](std::string_view input) { return DigestSign(pkey, input); };
}

// ES256 in JWS form: raw r||s, 32 bytes each.
Signer Es256(EVP_PKEY* pkey) {
  return [pkey](std::string_view input) {
    std::string der = DigestSign(pkey, input);
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
    std::string raw(64, '\0');
    BN_bn2binpad(ECDSA_SIG_get0_r(sig), reinterpret_cast<unsigned char*>(raw.data()), 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(sig), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
    ECDSA_SIG_free(sig);
    return raw;
  };
}

// DER ECDSA signature (what JWS does NOT use).
Signer Es256Der(EVP_PKEY* pkey) {
  return [pkey](std::string_view input) { return DigestSign(pkey, input); };
}

std::string MakeTokenFromJson(std::string_view header_json, std::string_view payload_json,
                              const Signer& signer) {
  std::string input = absl::StrCat(B64(header_json), ".", B64(payload_json));
  return absl::StrCat(input, ".", signer ? B64(signer(input)) : "");
}

// An empty kid means none. (Not std::optional: GCC 12 -O3 reports a false
// -Wmaybe-uninitialized for a defaulted std::optional<std::string> argument.)
std::string MakeToken(std::string_view alg, const json& payload, const Signer& signer,
                      std::string_view kid = {}) {
  json header = {{"alg", alg}, {"typ", "JWT"}};
  if (!kid.empty()) header["kid"] = kid;
  return MakeTokenFromJson(header.dump(), payload.dump(), signer);
}

// ------------------------------------------------------------ fixture --

constexpr int64_t kNow = 1'700'000'000;
const std::chrono::system_clock::time_point kNowTp{seconds(kNow)};
constexpr std::string_view kSecret = "0123456789abcdef0123456789abcdef";

json Claims() { return {{"sub", "user-1"}, {"exp", kNow + 600}, {"iat", kNow}}; }

VerifyResult Check(std::string_view token, const KeySet& keys, const VerifyOptions& options = {}) {
  return Verify(token, keys, options, kNowTp);
}

KeySet HmacSet(std::vector<Algorithm> algs = {}) {
  KeySet keys;
  EXPECT_TRUE(keys.AddHmacSecret(kSecret, std::nullopt, std::move(algs)).ok());
  return keys;
}

KeySet PemSet(EVP_PKEY* pkey) {
  KeySet keys;
  absl::Status s = keys.AddPublicKeyPem(PublicPem(pkey), "test.pem");
  EXPECT_TRUE(s.ok()) << s;
  return keys;
}

std::string TempPath(const std::string& name) {
  return absl::StrCat(::testing::TempDir(), "sb_jwt_test_", ::getpid(), "_", name);
}

std::string WriteTemp(const std::string& name, std::string_view contents) {
  std::string path = TempPath(name);
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

#define EXPECT_VALID(result)                                                       \
  do {                                                                             \
    const VerifyResult& r_ = (result);                                             \
    EXPECT_TRUE(r_.ok()) << (r_.error ? r_.error->detail : std::string());         \
  } while (0)

#define EXPECT_CODE(result, expected_code)                                         \
  do {                                                                             \
    const VerifyResult& r_ = (result);                                             \
    ASSERT_FALSE(r_.ok());                                                         \
    EXPECT_EQ(r_.error->code, (expected_code)) << r_.error->detail;                \
    EXPECT_TRUE(r_.claims.is_null());                                              \
  } while (0)

#define EXPECT_INVALID(result) EXPECT_CODE(result, ErrorCode::kInvalid)

// ------------------------------------------------------------- basics --

TEST(JwtAlgorithmTest, ParseAndPrint) {
  for (Algorithm alg : {Algorithm::kHS256, Algorithm::kHS384, Algorithm::kHS512,
                        Algorithm::kRS256, Algorithm::kES256}) {
    EXPECT_EQ(ParseAlgorithm(AlgorithmName(alg)), alg);
  }
  EXPECT_EQ(AlgorithmName(Algorithm::kES256), "ES256");
  for (std::string_view bad : {"none", "None", "NONE", "hs256", "RS384", "PS256", "EdDSA", ""}) {
    EXPECT_FALSE(ParseAlgorithm(bad).has_value()) << bad;
  }
}

TEST(JwtErrorTest, MessagesAndCodes) {
  EXPECT_EQ(ErrorMessage(ErrorCode::kMissing), "Authentication token required");
  EXPECT_EQ(ErrorDataCode(ErrorCode::kMissing), "token_required");
  EXPECT_EQ(ErrorMessage(ErrorCode::kInvalid), "Invalid authentication token");
  EXPECT_EQ(ErrorDataCode(ErrorCode::kInvalid), "invalid_token");
  EXPECT_EQ(ErrorMessage(ErrorCode::kExpired), "Token expired");
  EXPECT_EQ(ErrorDataCode(ErrorCode::kExpired), "token_expired");
  EXPECT_EQ(ErrorMessage(ErrorCode::kNotYetValid), "Invalid authentication token");
  EXPECT_EQ(ErrorDataCode(ErrorCode::kNotYetValid), "token_not_yet_valid");
}

// -------------------------------------------------------- valid tokens --

TEST(JwtVerifyTest, ValidHmacTokens) {
  KeySet keys = HmacSet();
  std::string secret(kSecret);
  EXPECT_VALID(Check(MakeToken("HS256", Claims(), Hmac(EVP_sha256(), secret)), keys));
  EXPECT_VALID(Check(MakeToken("HS384", Claims(), Hmac(EVP_sha384(), secret)), keys));
  EXPECT_VALID(Check(MakeToken("HS512", Claims(), Hmac(EVP_sha512(), secret)), keys));
}

TEST(JwtVerifyTest, ReturnsTheClaims) {
  KeySet keys = HmacSet();
  json claims = Claims();
  claims["rooms"] = {"a", "b"};
  claims["nested"] = {{"x", 1}};
  VerifyResult r = Check(MakeToken("HS256", claims, Hs256(std::string(kSecret))), keys);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.claims, claims);
}

TEST(JwtVerifyTest, HmacAllowListIsEnforced) {
  KeySet keys = HmacSet({Algorithm::kHS256});
  std::string secret(kSecret);
  EXPECT_VALID(Check(MakeToken("HS256", Claims(), Hmac(EVP_sha256(), secret)), keys));
  EXPECT_INVALID(Check(MakeToken("HS512", Claims(), Hmac(EVP_sha512(), secret)), keys));
  // An HS256 MAC presented as HS384 (alg swapped in the header).
  EXPECT_INVALID(Check(MakeToken("HS384", Claims(), Hmac(EVP_sha256(), secret)), HmacSet()));
}

TEST(JwtVerifyTest, ValidRs256) {
  KeySet keys = PemSet(RsaKey());
  EXPECT_VALID(Check(MakeToken("RS256", Claims(), Rs256(RsaKey())), keys));
}

TEST(JwtVerifyTest, ValidEs256) {
  KeySet keys = PemSet(EcKey());
  EXPECT_VALID(Check(MakeToken("ES256", Claims(), Es256(EcKey())), keys));
}

TEST(JwtVerifyTest, Es256RejectsDerAndWrongLengths) {
  KeySet keys = PemSet(EcKey());
  EXPECT_INVALID(Check(MakeToken("ES256", Claims(), Es256Der(EcKey())), keys));
  std::string token = MakeToken("ES256", Claims(), Es256(EcKey()));
  std::string input = token.substr(0, token.rfind('.'));
  std::string raw = Es256(EcKey())(input);
  EXPECT_VALID(Check(absl::StrCat(input, ".", B64(raw)), keys));
  EXPECT_INVALID(Check(absl::StrCat(input, ".", B64(raw.substr(0, 63))), keys));
  EXPECT_INVALID(Check(absl::StrCat(input, ".", B64(raw + '\0')), keys));
  EXPECT_INVALID(Check(absl::StrCat(input, ".", B64(std::string(64, '\0'))), keys));
}

TEST(JwtVerifyTest, Rs256RejectsWrongLength) {
  KeySet keys = PemSet(RsaKey());
  std::string token = MakeToken("RS256", Claims(), Rs256(RsaKey()));
  std::string input = token.substr(0, token.rfind('.'));
  std::string sig = Rs256(RsaKey())(input);
  EXPECT_INVALID(Check(absl::StrCat(input, ".", B64(sig.substr(1))), keys));
  EXPECT_INVALID(Check(absl::StrCat(input, ".", B64(std::string(1, '\0') + sig)), keys));
}

TEST(JwtKeyLoadTest, CertificateAndPkcs1Pem) {
  KeySet from_cert;
  ASSERT_TRUE(from_cert.AddPublicKeyPem(CertificatePem(RsaKey()), "cert.pem").ok());
  EXPECT_VALID(Check(MakeToken("RS256", Claims(), Rs256(RsaKey())), from_cert));
  KeySet from_ec_cert;
  ASSERT_TRUE(from_ec_cert.AddPublicKeyPem(CertificatePem(EcKey()), "ec-cert.pem").ok());
  EXPECT_VALID(Check(MakeToken("ES256", Claims(), Es256(EcKey())), from_ec_cert));
  KeySet from_pkcs1;
  absl::Status s = from_pkcs1.AddPublicKeyPem(RsaPkcs1Pem(RsaKey()), "rsa.pem");
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_VALID(Check(MakeToken("RS256", Claims(), Rs256(RsaKey())), from_pkcs1));
}

TEST(JwtKeyLoadTest, PemFile) {
  std::string path = WriteTemp("ec.pem", PublicPem(EcKey()));
  KeySet keys;
  ASSERT_TRUE(keys.AddPublicKeyPemFile(path, "ec-1").ok());
  EXPECT_VALID(Check(MakeToken("ES256", Claims(), Es256(EcKey()), "ec-1"), keys));
  std::remove(path.c_str());
}

// ----------------------------------------------------------------- kid --

TEST(JwtVerifyTest, KidSelectsTheKey) {
  KeySet keys;
  ASSERT_TRUE(keys.AddHmacSecret("secret-a", "a").ok());
  ASSERT_TRUE(keys.AddHmacSecret("secret-b", "b").ok());
  EXPECT_VALID(Check(MakeToken("HS256", Claims(), Hs256("secret-b"), "b"), keys));
  EXPECT_VALID(Check(MakeToken("HS256", Claims(), Hs256("secret-a"), "a"), keys));
  // The kid names a key, and only that key is tried.
  EXPECT_INVALID(Check(MakeToken("HS256", Claims(), Hs256("secret-b"), "a"), keys));
  // Unknown kid.
  VerifyResult r = Check(MakeToken("HS256", Claims(), Hs256("secret-a"), "c"), keys);
  EXPECT_INVALID(r);
  EXPECT_EQ(r.error->detail, "unknown kid");
  // No kid: every key allowing the alg is tried.
  EXPECT_VALID(Check(MakeToken("HS256", Claims(), Hs256("secret-b")), keys));
  EXPECT_INVALID(Check(MakeToken("HS256", Claims(), Hs256("secret-c")), keys));
}

TEST(JwtVerifyTest, KidWithoutMatchingKeyIsInvalidEvenIfUnnamedKeysExist) {
  KeySet keys = HmacSet();  // No kid.
  EXPECT_INVALID(Check(MakeToken("HS256", Claims(), Hs256(std::string(kSecret)), "k1"), keys));
}

TEST(JwtVerifyTest, KidMustBeAString) {
  KeySet keys = HmacSet();
  std::string token = MakeTokenFromJson(R"({"alg":"HS256","kid":7})", Claims().dump(),
                                        Hs256(std::string(kSecret)));
  EXPECT_INVALID(Check(token, keys));
}

// ---------------------------------------------------------------- JWKS --

class JwksTest : public ::testing::Test {
 protected:
  static json Jwks() {
    json oct = {{"kty", "oct"}, {"kid", "hmac-1"}, {"k", B64("jwks-shared-secret")}};
    json rsa = RsaJwk(RsaKey(), "rsa-1");
    rsa["alg"] = "RS256";
    rsa["use"] = "sig";
    return {{"keys", {rsa, EcJwk(EcKey(), "ec-1"), oct}}};
  }

  static absl::Status Load(const json& jwks, KeySet& keys) {
    std::string path = WriteTemp("jwks.json", jwks.dump());
    absl::Status s = keys.AddJwksFile(path);
    std::remove(path.c_str());
    return s;
  }

  static absl::Status LoadError(json jwk) {
    KeySet keys;
    return keys.AddJwks(json{{"keys", {std::move(jwk)}}}.dump(), "jwks.json");
  }
};

TEST_F(JwksTest, RsaEcAndOctKeys) {
  KeySet keys;
  absl::Status s = Load(Jwks(), keys);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(keys.size(), 3u);
  EXPECT_VALID(Check(MakeToken("RS256", Claims(), Rs256(RsaKey()), "rsa-1"), keys));
  EXPECT_VALID(Check(MakeToken("ES256", Claims(), Es256(EcKey()), "ec-1"), keys));
  EXPECT_VALID(Check(MakeToken("HS256", Claims(), Hs256("jwks-shared-secret"), "hmac-1"), keys));
  EXPECT_VALID(Check(MakeToken("HS512", Claims(), Hmac(EVP_sha512(), "jwks-shared-secret"),
                               "hmac-1"),
                     keys));
  // Without kid: candidates by algorithm.
  EXPECT_VALID(Check(MakeToken("ES256", Claims(), Es256(EcKey())), keys));
  // Right key, wrong kid for its type.
  EXPECT_INVALID(Check(MakeToken("RS256", Claims(), Rs256(RsaKey()), "ec-1"), keys));
  EXPECT_INVALID(Check(MakeToken("ES256", Claims(), Es256(EcKey()), "rsa-1"), keys));
  // Other keys.
  EXPECT_INVALID(Check(MakeToken("RS256", Claims(), Rs256(OtherRsaKey()), "rsa-1"), keys));
  EXPECT_INVALID(Check(MakeToken("ES256", Claims(), Es256(OtherEcKey()), "ec-1"), keys));
}

TEST_F(JwksTest, AlgPinsTheKey) {
  json oct = {{"kty", "oct"}, {"kid", "h"}, {"k", B64("s3cret")}, {"alg", "HS384"}};
  KeySet keys;
  ASSERT_TRUE(keys.AddJwks(json{{"keys", {oct}}}.dump(), "jwks").ok());
  EXPECT_VALID(Check(MakeToken("HS384", Claims(), Hmac(EVP_sha384(), "s3cret"), "h"), keys));
  EXPECT_INVALID(Check(MakeToken("HS256", Claims(), Hs256("s3cret"), "h"), keys));
}

TEST_F(JwksTest, SkipsKeysWeDoNotUse) {
  json enc = RsaJwk(OtherRsaKey(), "enc-1");
  enc["use"] = "enc";
  json rs384 = RsaJwk(OtherRsaKey(), "rs384");
  rs384["alg"] = "RS384";
  json okp = {{"kty", "OKP"}, {"crv", "Ed25519"}, {"x", B64("x")}, {"kid", "ed"}};
  json ec = EcJwk(EcKey(), "ec-1");
  KeySet keys;
  absl::Status s = keys.AddJwks(json{{"keys", {enc, rs384, okp, ec}}}.dump(), "jwks");
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(keys.size(), 1u);
  EXPECT_INVALID(Check(MakeToken("RS256", Claims(), Rs256(OtherRsaKey()), "enc-1"), keys));
  EXPECT_INVALID(Check(MakeToken("RS256", Claims(), Rs256(OtherRsaKey())), keys));
}

TEST_F(JwksTest, LoadErrors) {
  auto expect_error = [](const absl::Status& s, std::string_view fragment) {
    EXPECT_FALSE(s.ok());
    EXPECT_NE(std::string(s.message()).find(fragment), std::string_view::npos) << s;
    EXPECT_NE(s.message().find("jwks.json"), std::string_view::npos) << s;
  };
  json rsa = RsaJwk(RsaKey(), "r");
  json bad = rsa;
  bad["alg"] = "none";
  expect_error(LoadError(bad), "none");
  bad = rsa;
  bad["alg"] = "HS256";
  expect_error(LoadError(bad), "HS256");
  bad = rsa;
  bad["alg"] = "ES256";
  expect_error(LoadError(bad), "ES256");
  bad = rsa;
  bad.erase("n");
  expect_error(LoadError(bad), "\"n\"");
  bad = rsa;
  bad["n"] = "not base64!";
  expect_error(LoadError(bad), "base64url");
  PkeyPtr rsa1024(EVP_RSA_gen(1024));
  expect_error(LoadError(RsaJwk(rsa1024.get(), "small")), "2048");
  bad = rsa;
  bad["n"] = B64(std::string(256, '\xff'));  // Not a valid modulus.
  expect_error(LoadError(bad), "keys[0]");
  json ec = EcJwk(EcKey(), "e");
  bad = ec;
  bad["crv"] = "P-384";
  expect_error(LoadError(bad), "P-384");
  bad = ec;
  bad["x"] = B64(std::string(31, '\x01'));
  expect_error(LoadError(bad), "32 bytes");
  bad = ec;
  bad["y"] = B64(std::string(32, '\x01'));  // Not on the curve.
  expect_error(LoadError(bad), "keys[0]");
  bad = {{"kty", "oct"}, {"k", ""}};
  expect_error(LoadError(bad), "\"k\"");
  bad = {{"kty", "oct"}, {"k", B64("s")}, {"alg", "RS256"}};
  expect_error(LoadError(bad), "RS256");
  bad = {{"kty", "OKP"}, {"alg", "ES256"}};
  expect_error(LoadError(bad), "OKP");
  bad = {{"kty", 3}};
  expect_error(LoadError(bad), "kty");
  expect_error(LoadError(json{{"kty", "OKP"}}), "no usable key");

  KeySet keys;
  expect_error(keys.AddJwks("{not json", "jwks.json"), "JSON");
  expect_error(keys.AddJwks(R"({"keys":{}})", "jwks.json"), "keys");
  expect_error(keys.AddJwks(R"([])", "jwks.json"), "keys");
  expect_error(keys.AddJwks(R"({"keys":[]})", "jwks.json"), "no usable key");
  expect_error(keys.AddJwks(json{{"keys", {ec, EcJwk(OtherEcKey(), "e")}}}.dump(), "jwks.json"),
               "duplicate kid");
  EXPECT_TRUE(keys.empty());  // Failed loads leave the set unchanged.

  absl::Status missing = keys.AddJwksFile("/nonexistent/jwks.json");
  EXPECT_FALSE(missing.ok());
  EXPECT_NE(std::string(missing.message()).find("/nonexistent/jwks.json"), std::string_view::npos);
}

// ---------------------------------------------------- forged tokens --

TEST(JwtVerifyTest, WrongKey) {
  EXPECT_INVALID(Check(MakeToken("HS256", Claims(), Hs256("another secret")), HmacSet()));
  EXPECT_INVALID(Check(MakeToken("RS256", Claims(), Rs256(OtherRsaKey())), PemSet(RsaKey())));
  EXPECT_INVALID(Check(MakeToken("ES256", Claims(), Es256(OtherEcKey())), PemSet(EcKey())));
}

TEST(JwtVerifyTest, EmptyKeySetRejectsEverything) {
  KeySet keys;
  EXPECT_INVALID(Check(MakeToken("HS256", Claims(), Hs256(std::string(kSecret))), keys));
}

TEST(JwtVerifyTest, TamperedPayloadOrSignature) {
  KeySet keys = HmacSet();
  std::string token = MakeToken("HS256", Claims(), Hs256(std::string(kSecret)));
  size_t dot1 = token.find('.');
  size_t dot2 = token.rfind('.');
  json forged = Claims();
  forged["sub"] = "admin";
  std::string tampered = absl::StrCat(token.substr(0, dot1 + 1), B64(forged.dump()),
                                      token.substr(dot2));
  EXPECT_INVALID(Check(tampered, keys));

  std::string bad_sig = token;
  bad_sig[dot2 + 1] = bad_sig[dot2 + 1] == 'A' ? 'B' : 'A';
  EXPECT_INVALID(Check(bad_sig, keys));
  EXPECT_INVALID(Check(token.substr(0, dot2 + 1), keys));  // Signature stripped.

  KeySet rsa = PemSet(RsaKey());
  std::string rs = MakeToken("RS256", Claims(), Rs256(RsaKey()));
  std::string rs_tampered = absl::StrCat(rs.substr(0, rs.find('.') + 1), B64(forged.dump()),
                                         rs.substr(rs.rfind('.')));
  EXPECT_INVALID(Check(rs_tampered, rsa));
}

TEST(JwtVerifyTest, AlgNoneIsRejected) {
  KeySet keys = HmacSet();
  for (std::string_view alg : {"none", "None", "NONE", "nOnE"}) {
    json header = {{"alg", alg}, {"typ", "JWT"}};
    EXPECT_INVALID(Check(MakeTokenFromJson(header.dump(), Claims().dump(), nullptr), keys));
    EXPECT_INVALID(
        Check(MakeTokenFromJson(header.dump(), Claims().dump(), Hs256(std::string(kSecret))),
              keys));
  }
}

TEST(JwtVerifyTest, AlgConfusionHs256WithRsaPublicKeyPem) {
  std::string pem = PublicPem(RsaKey());
  KeySet keys;
  ASSERT_TRUE(keys.AddPublicKeyPem(pem, "rsa.pem").ok());
  // The classic attack: HMAC over the token with the public PEM as secret.
  EXPECT_INVALID(Check(MakeToken("HS256", Claims(), Hs256(pem)), keys));
  // Also with the kid of the RSA key.
  KeySet with_kid;
  ASSERT_TRUE(with_kid.AddPublicKeyPem(pem, "rsa.pem", "rsa-1").ok());
  EXPECT_INVALID(Check(MakeToken("HS256", Claims(), Hs256(pem), "rsa-1"), with_kid));
  // And the set cannot be configured to allow it.
  KeySet misconfigured;
  EXPECT_FALSE(
      misconfigured.AddPublicKeyPem(pem, "rsa.pem", std::nullopt, {Algorithm::kHS256}).ok());
}

TEST(JwtVerifyTest, Rs256TokenAgainstHmacOnlySet) {
  EXPECT_INVALID(Check(MakeToken("RS256", Claims(), Rs256(RsaKey())), HmacSet()));
  EXPECT_INVALID(Check(MakeToken("ES256", Claims(), Es256(EcKey())), HmacSet()));
}

TEST(JwtVerifyTest, CritHeaderIsRejected) {
  std::string token = MakeTokenFromJson(R"({"alg":"HS256","crit":["exp"]})", Claims().dump(),
                                        Hs256(std::string(kSecret)));
  EXPECT_INVALID(Check(token, HmacSet()));
}

// -------------------------------------------------------- time claims --

VerifyResult CheckHs(const json& claims, const VerifyOptions& options = {}) {
  return Check(MakeToken("HS256", claims, Hs256(std::string(kSecret))), HmacSet(), options);
}

TEST(JwtClaimsTest, ExpiredAndLeewayEdges) {
  VerifyOptions options;
  options.leeway = seconds(30);
  EXPECT_CODE(CheckHs({{"exp", kNow - 3600}}, options), ErrorCode::kExpired);
  EXPECT_CODE(CheckHs({{"exp", kNow - 30}}, options), ErrorCode::kExpired);
  EXPECT_VALID(CheckHs({{"exp", kNow - 29}}, options));
  EXPECT_VALID(CheckHs({{"exp", kNow - 29.5}}, options));
  options.leeway = seconds(0);
  EXPECT_CODE(CheckHs({{"exp", kNow}}, options), ErrorCode::kExpired);
  EXPECT_VALID(CheckHs({{"exp", kNow + 1}}, options));
  options.leeway = seconds(-5);  // Counts as zero.
  EXPECT_VALID(CheckHs({{"exp", kNow + 1}}, options));
  EXPECT_VALID(CheckHs({{"sub", "no-exp"}}));  // exp is optional.
}

TEST(JwtClaimsTest, NotBeforeAndLeewayEdges) {
  VerifyOptions options;
  options.leeway = seconds(30);
  EXPECT_CODE(CheckHs({{"nbf", kNow + 3600}}, options), ErrorCode::kNotYetValid);
  EXPECT_CODE(CheckHs({{"nbf", kNow + 31}}, options), ErrorCode::kNotYetValid);
  EXPECT_VALID(CheckHs({{"nbf", kNow + 30}}, options));
  EXPECT_VALID(CheckHs({{"nbf", kNow - 10}}, options));
  options.leeway = seconds(0);
  EXPECT_VALID(CheckHs({{"nbf", kNow}}, options));
  EXPECT_CODE(CheckHs({{"nbf", kNow + 1}}, options), ErrorCode::kNotYetValid);
}

TEST(JwtClaimsTest, ExpiredOnlyAfterTheSignatureChecks) {
  // A forged expired token is invalid, not expired.
  EXPECT_INVALID(Check(MakeToken("HS256", {{"exp", kNow - 3600}}, Hs256("wrong")), HmacSet()));
}

TEST(JwtClaimsTest, NumericAndStringClaimTypes) {
  EXPECT_INVALID(CheckHs({{"exp", std::to_string(kNow + 600)}}));
  EXPECT_INVALID(CheckHs({{"nbf", "0"}}));
  EXPECT_INVALID(CheckHs({{"iat", true}}));
  EXPECT_INVALID(CheckHs({{"exp", nullptr}}));
  EXPECT_INVALID(CheckHs({{"exp", json::array({kNow + 600})}}));
  EXPECT_VALID(CheckHs({{"exp", 1e300}, {"iat", 0.5}, {"nbf", -1}}));
  EXPECT_CODE(CheckHs({{"exp", -1e300}}), ErrorCode::kExpired);
  EXPECT_INVALID(CheckHs({{"sub", 42}}));
  EXPECT_INVALID(CheckHs({{"iss", json::array({"a"})}}));
  EXPECT_INVALID(CheckHs({{"aud", 1}}));
  EXPECT_INVALID(CheckHs({{"aud", json::array({"a", 1})}}));
}

TEST(JwtClaimsTest, IssuerAndAudience) {
  VerifyOptions options;
  options.issuer = "https://issuer.example";
  options.audience = "switchboard";
  json claims = Claims();
  claims["iss"] = "https://issuer.example";
  claims["aud"] = "switchboard";
  EXPECT_VALID(CheckHs(claims, options));
  claims["aud"] = {"other", "switchboard"};
  EXPECT_VALID(CheckHs(claims, options));
  claims["aud"] = {"other", "third"};
  EXPECT_INVALID(CheckHs(claims, options));
  claims["aud"] = json::array();
  EXPECT_INVALID(CheckHs(claims, options));
  claims["aud"] = "Switchboard";
  EXPECT_INVALID(CheckHs(claims, options));
  claims.erase("aud");
  EXPECT_INVALID(CheckHs(claims, options));

  claims["aud"] = "switchboard";
  claims["iss"] = "https://evil.example";
  EXPECT_INVALID(CheckHs(claims, options));
  claims.erase("iss");
  EXPECT_INVALID(CheckHs(claims, options));

  // Not configured: not checked.
  EXPECT_VALID(CheckHs({{"iss", "anyone"}, {"aud", "anything"}}));
}

// ---------------------------------------------------- malformed input --

TEST(JwtMalformedTest, Segments) {
  KeySet keys = HmacSet();
  std::string token = MakeToken("HS256", Claims(), Hs256(std::string(kSecret)));
  EXPECT_VALID(Check(token, keys));
  EXPECT_INVALID(Check("", keys));
  EXPECT_INVALID(Check(".", keys));
  EXPECT_INVALID(Check("..", keys));
  EXPECT_INVALID(Check("abc", keys));
  EXPECT_INVALID(Check(token.substr(0, token.rfind('.')), keys));  // Two segments.
  EXPECT_INVALID(Check(token + ".", keys));
  EXPECT_INVALID(Check(token + ".abc", keys));
  EXPECT_INVALID(Check(" " + token, keys));
  EXPECT_INVALID(Check(token + "\n", keys));
  EXPECT_INVALID(Check("Bearer " + token, keys));
}

TEST(JwtMalformedTest, Base64) {
  KeySet keys = HmacSet();
  std::string secret(kSecret);
  std::string header = B64(R"({"alg":"HS256"})");
  std::string payload = B64(Claims().dump());
  auto sign = [&](const std::string& h, const std::string& p) {
    std::string input = absl::StrCat(h, ".", p);
    return absl::StrCat(input, ".", B64(Hs256(secret)(input)));
  };
  EXPECT_VALID(Check(sign(header, payload), keys));
  // Padding is not tolerated, even if correctly signed.
  std::string padded = payload;
  while (padded.size() % 4 != 0) padded += '=';
  if (padded != payload) EXPECT_INVALID(Check(sign(header, padded), keys));
  std::string token = sign(header, payload);
  EXPECT_INVALID(Check(token + "=", keys));
  // Standard base64 characters and junk.
  EXPECT_INVALID(Check(sign(header, payload + "+"), keys));
  EXPECT_INVALID(Check(sign(header, payload + "/"), keys));
  EXPECT_INVALID(Check(sign(header + "*", payload), keys));
  EXPECT_INVALID(Check(sign(std::string(1, '\0') + header, payload), keys));
  // Length % 4 == 1.
  EXPECT_INVALID(Check(sign(header, payload.substr(0, (payload.size() / 4) * 4 + 1)), keys));
  // Non-canonical trailing bits: same bytes, other text (signed as sent).
  std::string text = Claims().dump();
  while (text.size() % 3 != 1) text.insert(1, " ");
  std::string canonical = B64(text);
  ASSERT_EQ(canonical.size() % 4, 2u);
  EXPECT_VALID(Check(sign(header, canonical), keys));
  std::string non_canonical = canonical;
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t v = kAlphabet.find(non_canonical.back());
  ASSERT_EQ(v & 15, 0u);
  non_canonical.back() = kAlphabet[v | 1];
  EXPECT_INVALID(Check(sign(header, non_canonical), keys));
}

TEST(JwtMalformedTest, NonCanonicalBase64Signature) {
  KeySet keys = HmacSet();
  std::string token = MakeToken("HS256", Claims(), Hs256(std::string(kSecret)));
  // HS256: 32 bytes -> 43 chars; the last char carries 2 unused bits.
  char& last = token.back();
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t v = kAlphabet.find(last);
  ASSERT_NE(v, std::string_view::npos);
  ASSERT_EQ(v & 3, 0u);
  last = kAlphabet[v | 1];  // Same decoded bytes, different text.
  EXPECT_INVALID(Check(token, keys));
}

TEST(JwtMalformedTest, HeaderAndPayloadJson) {
  KeySet keys = HmacSet();
  Signer hs = Hs256(std::string(kSecret));
  const std::string claims = Claims().dump();
  for (std::string_view header : {R"(not json)", R"([])", R"("HS256")", R"({})",
                                  R"({"alg":256})", R"({"alg":null})", R"({"alg":"HS256")",
                                  R"({"alg":"HS256"} x)", ""}) {
    SCOPED_TRACE(header);
    EXPECT_INVALID(Check(MakeTokenFromJson(header, claims, hs), keys));
  }
  for (std::string_view payload : {R"(not json)", R"([])", R"("sub")", R"(null)", R"(42)",
                                   R"({"sub":"x")", "", "{\"sub\":\"\xff\"}"}) {
    SCOPED_TRACE(payload);
    EXPECT_INVALID(Check(MakeTokenFromJson(R"({"alg":"HS256"})", payload, hs), keys));
  }
  // Whitespace and "typ" variations are fine.
  EXPECT_VALID(Check(MakeTokenFromJson(R"( { "alg" : "HS256" , "typ" : 1 } )", claims, hs), keys));
}

TEST(JwtMalformedTest, JsonDepthIsBounded) {
  KeySet keys = HmacSet();
  Signer hs = Hs256(std::string(kSecret));
  auto nested = [](int depth) {
    return absl::StrCat(R"({"n":)", std::string(static_cast<size_t>(depth), '['),
                        std::string(static_cast<size_t>(depth), ']'), "}");
  };
  EXPECT_VALID(Check(MakeTokenFromJson(R"({"alg":"HS256"})", nested(kMaxJsonDepth - 1), hs),
                     keys));
  EXPECT_INVALID(Check(MakeTokenFromJson(R"({"alg":"HS256"})", nested(kMaxJsonDepth), hs), keys));
  EXPECT_INVALID(Check(MakeTokenFromJson(R"({"alg":"HS256"})", nested(5000), hs), keys));
  // Brackets inside strings do not count.
  EXPECT_VALID(Check(MakeTokenFromJson(R"({"alg":"HS256"})",
                                       absl::StrCat(R"({"s":")", std::string(100, '['), R"(\"["})"),
                                       hs),
                     keys));
}

TEST(JwtMalformedTest, OversizeToken) {
  KeySet keys = HmacSet();
  Signer hs = Hs256(std::string(kSecret));
  auto token_with_filler = [&](size_t filler) {
    json claims = Claims();
    claims["filler"] = std::string(filler, 'x');
    return MakeToken("HS256", claims, hs);
  };
  std::string small = token_with_filler(11000);
  ASSERT_LT(small.size(), kMaxTokenSize);
  EXPECT_VALID(Check(small, keys));
  // Grow to exactly the limit and one past it.
  size_t filler = 11000 + (kMaxTokenSize - small.size()) * 3 / 4;
  std::string at_limit = token_with_filler(filler);
  while (at_limit.size() < kMaxTokenSize) at_limit = token_with_filler(++filler);
  while (at_limit.size() > kMaxTokenSize) at_limit = token_with_filler(--filler);
  if (at_limit.size() == kMaxTokenSize) EXPECT_VALID(Check(at_limit, keys));
  std::string big = token_with_filler(filler + 3);
  ASSERT_GT(big.size(), kMaxTokenSize);
  VerifyResult r = Check(big, keys);
  EXPECT_INVALID(r);
  EXPECT_EQ(r.error->detail, "token too large");
  EXPECT_INVALID(Check(std::string(1 << 20, 'a'), keys));
}

// ------------------------------------------------------- key loading --

TEST(JwtKeyLoadTest, Errors) {
  auto expect_error = [](const absl::Status& s, std::string_view fragment) {
    EXPECT_FALSE(s.ok());
    EXPECT_NE(std::string(s.message()).find(fragment), std::string_view::npos) << s;
  };
  KeySet keys;
  expect_error(keys.AddPublicKeyPem("garbage", "bad.pem"), "bad.pem");
  expect_error(keys.AddPublicKeyPem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                                    "bad.pem"),
               "bad.pem");
  expect_error(keys.AddPublicKeyPem(PrivatePem(EcKey()), "priv.pem"), "private key");
  expect_error(keys.AddPublicKeyPem(
                   "-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n", "foo.pem"),
               "FOO");

  PkeyPtr p384(EVP_EC_gen("P-384"));
  expect_error(keys.AddPublicKeyPem(PublicPem(p384.get()), "p384.pem"), "P-384");
  expect_error(keys.AddPublicKeyPem(PublicPem(p384.get()), "p384.pem"), "p384.pem");
  PkeyPtr rsa1024(EVP_RSA_gen(1024));
  expect_error(keys.AddPublicKeyPem(PublicPem(rsa1024.get()), "small.pem"), "2048");
  PkeyPtr ed(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  expect_error(keys.AddPublicKeyPem(PublicPem(ed.get()), "ed.pem"), "unsupported key type");

  // Key / algorithm mismatches.
  expect_error(keys.AddPublicKeyPem(PublicPem(RsaKey()), "rsa.pem", std::nullopt,
                                    {Algorithm::kES256}),
               "ES256");
  expect_error(keys.AddPublicKeyPem(PublicPem(EcKey()), "ec.pem", std::nullopt,
                                    {Algorithm::kRS256}),
               "RS256");
  expect_error(keys.AddPublicKeyPem(PublicPem(EcKey()), "ec.pem", std::nullopt,
                                    {Algorithm::kES256, Algorithm::kHS256}),
               "HS256");
  expect_error(keys.AddHmacSecret("s", std::nullopt, {Algorithm::kRS256}), "RS256");
  expect_error(keys.AddHmacSecret("", std::nullopt), "empty");
  expect_error(keys.AddPublicKeyPemFile("/nonexistent/key.pem"), "/nonexistent/key.pem");
  EXPECT_TRUE(keys.empty());

  ASSERT_TRUE(keys.AddHmacSecret("s", "k").ok());
  expect_error(keys.AddPublicKeyPem(PublicPem(EcKey()), "ec.pem", "k"), "duplicate kid");
  EXPECT_EQ(keys.size(), 1u);
}

TEST(JwtKeyLoadTest, ExplicitAllowListOnPublicKeys) {
  KeySet keys;
  ASSERT_TRUE(
      keys.AddPublicKeyPem(PublicPem(EcKey()), "ec.pem", std::nullopt, {Algorithm::kES256}).ok());
  EXPECT_VALID(Check(MakeToken("ES256", Claims(), Es256(EcKey())), keys));
}

TEST(JwtVerifyTest, LeavesNoOpenSslErrorsBehind) {
  // Other users of the thread's error queue (TLS) must not see our failures.
  ERR_clear_error();
  KeySet keys;
  ASSERT_TRUE(keys.AddPublicKeyPem(PublicPem(RsaKey()), "rsa.pem", "r").ok());
  ASSERT_TRUE(keys.AddPublicKeyPem(PublicPem(EcKey()), "ec.pem", "e").ok());
  EXPECT_INVALID(Check(MakeToken("RS256", Claims(), Rs256(OtherRsaKey()), "r"), keys));
  EXPECT_INVALID(Check(MakeToken("ES256", Claims(), Es256Der(EcKey()), "e"), keys));
  EXPECT_FALSE(keys.AddPublicKeyPem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                                    "bad.pem")
                   .ok());
  EXPECT_FALSE(keys.AddJwks(json{{"keys", {{{"kty", "RSA"}, {"n", B64(std::string(256, '\xff'))},
                                            {"e", B64("\x01\x00\x01")}}}}}
                                .dump(),
                            "jwks")
                   .ok());
  EXPECT_EQ(ERR_peek_error(), 0u);
}

// ------------------------------------------------------------ sharing --

TEST(JwtVerifyTest, SharedKeySetAcrossThreads) {
  KeySet keys;
  ASSERT_TRUE(keys.AddHmacSecret(kSecret, "h").ok());
  ASSERT_TRUE(keys.AddPublicKeyPem(PublicPem(RsaKey()), "rsa.pem", "r").ok());
  ASSERT_TRUE(keys.AddPublicKeyPem(PublicPem(EcKey()), "ec.pem", "e").ok());
  auto shared = std::make_shared<const KeySet>(std::move(keys));
  const std::vector<std::string> tokens = {
      MakeToken("HS256", Claims(), Hs256(std::string(kSecret)), "h"),
      MakeToken("RS256", Claims(), Rs256(RsaKey()), "r"),
      MakeToken("ES256", Claims(), Es256(EcKey()), "e"),
  };
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        for (const std::string& token : tokens) {
          if (!Verify(token, *shared, {}, kNowTp).ok()) ++failures;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace switchboard::auth
