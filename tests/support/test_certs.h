#pragma once

// Certificates made with OpenSSL for TLS tests: a CA, a server certificate
// for 127.0.0.1 / localhost / switchboard.test, client certificates, and a
// temporary directory to write them into.

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

namespace switchboard::testing_support {

inline constexpr char kTestServerName[] = "switchboard.test";

struct Cert {
  std::shared_ptr<EVP_PKEY> key;
  std::shared_ptr<X509> cert;

  std::string CertPem() const;
  std::string KeyPem() const;
};

// A P-256 certificate for `cn`, signed by `issuer` (self-signed when null). A CA when `is_ca`;
// else a leaf with extended key usage `eku` and subject alternative names `san`.
Cert MakeCert(const std::string& cn, const Cert* issuer, bool is_ca, const std::string& eku = "",
              const std::string& san = "");

// A CA, the server's certificate and a client certificate from it, and a client certificate from
// another CA.
struct Pki {
  Cert ca;
  Cert server;
  Cert client;
  Cert other_ca;
  Cert other_client;
};
// Made once per process.
const Pki& pki();

// A temporary directory, removed with everything in it.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  // Writes `contents` to NAME in the directory; returns its path.
  std::string Write(const std::string& name, const std::string& contents) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace switchboard::testing_support
