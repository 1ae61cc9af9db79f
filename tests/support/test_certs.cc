#include "tests/support/test_certs.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace switchboard::testing_support {
namespace {

std::string Drain(BIO* bio) {
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(size));
}

}  // namespace

std::string Cert::CertPem() const {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_X509(bio.get(), cert.get());
  return Drain(bio.get());
}

std::string Cert::KeyPem() const {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  return Drain(bio.get());
}

Cert MakeCert(const std::string& cn, const Cert* issuer, bool is_ca, const std::string& eku,
              const std::string& san) {
  static long serial = 1;
  Cert c;
  c.key.reset(EVP_EC_gen("P-256"), EVP_PKEY_free);
  c.cert.reset(X509_new(), X509_free);
  X509* x = c.cert.get();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
  X509_set_pubkey(x, c.key.get());
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509* issuer_cert = issuer != nullptr ? issuer->cert.get() : x;
  EVP_PKEY* issuer_key = issuer != nullptr ? issuer->key.get() : c.key.get();
  X509_set_issuer_name(x, X509_get_subject_name(issuer_cert));
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer_cert, x, nullptr, nullptr, 0);
  auto add = [&](int nid, const std::string& value) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    EXPECT_NE(ext, nullptr) << value;
    if (ext == nullptr) return;
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  };
  add(NID_basic_constraints, is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  add(NID_key_usage,
      is_ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature,keyEncipherment");
  add(NID_subject_key_identifier, "hash");
  if (issuer != nullptr) add(NID_authority_key_identifier, "keyid:always");
  if (!eku.empty()) add(NID_ext_key_usage, eku);
  if (!san.empty()) add(NID_subject_alt_name, san);
  EXPECT_GT(X509_sign(x, issuer_key, EVP_sha256()), 0);
  return c;
}

const Pki& pki() {
  static const Pki* p = [] {
    auto* made = new Pki();
    made->ca = MakeCert("Switchboard Test CA", nullptr, true);
    made->server = MakeCert(kTestServerName, &made->ca, false, "serverAuth",
                            std::string("DNS:") + kTestServerName + ",DNS:localhost,IP:127.0.0.1");
    made->client = MakeCert("sbctl-client", &made->ca, false, "clientAuth");
    made->other_ca = MakeCert("Other CA", nullptr, true);
    made->other_client = MakeCert("intruder", &made->other_ca, false, "clientAuth");
    return made;
  }();
  return *p;
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/sb_test_XXXXXX";
  char* dir = mkdtemp(tmpl);
  EXPECT_NE(dir, nullptr);
  path_ = dir != nullptr ? dir : "/tmp";
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string TempDir::Write(const std::string& name, const std::string& contents) const {
  std::string file = path_ + "/" + name;
  std::ofstream(file, std::ios::binary) << contents;
  return file;
}

}  // namespace switchboard::testing_support
