#include "services/api_auth.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <utility>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/grpc_security_constants.h>

#include "absl/strings/str_cat.h"

namespace switchboard::services {
namespace {

constexpr size_t kMaxFileBytes = 1 << 20;

// (Debian's absl has its own string_view: its string helpers do not take
// std::string_view.)
std::string_view Trim(std::string_view s) {
  auto blank = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// The pieces of `s` between `sep`s (an empty `s` is one empty piece).
std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> pieces;
  while (true) {
    size_t at = s.find(sep);
    pieces.push_back(s.substr(0, at));
    if (at == std::string_view::npos) return pieces;
    s.remove_prefix(at + 1);
  }
}

// Why `token` is not acceptable, or "" if it is.
std::string TokenProblem(std::string_view token) {
  for (char c : token) {
    if (c < 0x21 || c > 0x7e) return "token with a blank or non-ASCII character";
  }
  if (token.size() < kMinApiTokenLength) {
    return absl::StrCat("token shorter than ", kMinApiTokenLength, " characters");
  }
  return "";
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": cannot read (", std::strerror(errno), ")"));
  }
  std::string data;
  char buffer[4096];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    data.append(buffer, static_cast<size_t>(in.gcount()));
    if (data.size() > kMaxFileBytes) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": larger than 1 MiB"));
    }
  }
  if (in.bad()) return absl::InvalidArgumentError(absl::StrCat(path, ": read error"));
  return data;
}

// ---- PEM checks (OpenSSL) -------------------------------------------------------------------

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

BioPtr MemBio(const std::string& pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// Every certificate in `pem`, in order.
std::vector<X509Ptr> ReadCertificates(const std::string& pem) {
  std::vector<X509Ptr> certs;
  BioPtr bio = MemBio(pem);
  while (bio) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) break;
    certs.push_back(std::move(cert));
  }
  ERR_clear_error();  // the end of the input is reported as an error
  return certs;
}

PkeyPtr ReadPrivateKey(const std::string& pem) {
  BioPtr bio = MemBio(pem);
  PkeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  ERR_clear_error();
  return key;
}

// ---- the auth metadata processor ------------------------------------------------------------

std::string_view View(const grpc_slice& slice) {
  return std::string_view(reinterpret_cast<const char*>(GRPC_SLICE_START_PTR(slice)),
                          GRPC_SLICE_LENGTH(slice));
}

// The token of "Bearer <token>" (scheme case-insensitive), or nullopt for
// another scheme.
std::optional<std::string_view> BearerToken(std::string_view value) {
  constexpr std::string_view kScheme = "bearer";
  if (value.size() < kScheme.size() ||
      !EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme)) {
    return std::nullopt;
  }
  std::string_view rest = value.substr(kScheme.size());
  if (!rest.empty() && rest.front() != ' ' && rest.front() != '\t') return std::nullopt;
  return Trim(rest);
}

struct ProcessorState {
  std::shared_ptr<const TokenSet> tokens;
  bool mutual_tls = false;
};

// Whether the connection's peer presented a client certificate. With mutual TLS
// the handshake only completes when such a certificate verifies against the CA.
bool HasVerifiedClientCertificate(const grpc_auth_context* context) {
  if (context == nullptr) return false;
  grpc_auth_property_iterator it =
      grpc_auth_context_find_properties_by_name(context, GRPC_X509_PEM_CERT_PROPERTY_NAME);
  return grpc_auth_property_iterator_next(&it) != nullptr;
}

// Runs for every call, on gRPC's transport threads, before the call reaches
// any handler; answers synchronously (a few SHA-256s).
void ProcessAuthMetadata(void* raw_state, grpc_auth_context* context, const grpc_metadata* md,
                         size_t num_md, grpc_process_auth_metadata_done_cb done,
                         void* user_data) {
  const auto* state = static_cast<const ProcessorState*>(raw_state);
  std::string_view path;
  std::vector<grpc_metadata> consumed;
  bool bearer = false;
  bool valid = false;
  for (size_t i = 0; i < num_md; ++i) {
    std::string_view key = View(md[i].key);
    if (key == ":path") {
      path = View(md[i].value);
    } else if (key == "authorization") {
      consumed.push_back(md[i]);  // handlers never see the token
      if (auto token = BearerToken(View(md[i].value))) {
        bearer = true;
        // Every presented token is checked, even after a match.
        bool match = state->tokens != nullptr && state->tokens->Matches(*token);
        valid = valid || match;
      }
    }
  }
  if (valid || IsUnauthenticatedMethod(path) ||
      (state->mutual_tls && HasVerifiedClientCertificate(context))) {
    done(user_data, consumed.data(), consumed.size(), nullptr, 0, GRPC_STATUS_OK, nullptr);
    return;
  }
  done(user_data, nullptr, 0, nullptr, 0, GRPC_STATUS_UNAUTHENTICATED,
       bearer ? "invalid bearer token" : "missing bearer token");
}

void DestroyProcessorState(void* state) { delete static_cast<ProcessorState*>(state); }

// grpc::ServerCredentials over core credentials. The C++ InsecureServerCredentials
// cannot carry an auth metadata processor (it binds without a security
// connector, so gRPC's server auth filter never runs); core insecure and SSL
// credentials can, through grpc_server_credentials_set_auth_metadata_processor.
class CoreServerCredentials final : public grpc::ServerCredentials {
 public:
  explicit CoreServerCredentials(grpc_server_credentials* creds) : creds_(creds) {}
  ~CoreServerCredentials() override { grpc_server_credentials_release(creds_); }
  CoreServerCredentials(const CoreServerCredentials&) = delete;
  CoreServerCredentials& operator=(const CoreServerCredentials&) = delete;

  // The processor is set on the core credentials at construction; a C++ one
  // would silently not run, so asking for it is a programming error.
  void SetAuthMetadataProcessor(const std::shared_ptr<grpc::AuthMetadataProcessor>&) override {
    std::abort();
  }

 private:
  int AddPortToServer(const std::string& addr, grpc_server* server) override {
    return grpc_server_add_http2_port(server, addr.c_str(), creds_);
  }

  grpc_server_credentials* const creds_;
};

}  // namespace

// ---- TokenSet ---------------------------------------------------------------------------------

TokenSet::Digest TokenSet::Sha256(std::string_view data) {
  Digest digest{};
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest.data());
  return digest;
}

absl::StatusOr<TokenSet> TokenSet::Create(const std::vector<std::string>& tokens) {
  TokenSet set;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (std::string problem = TokenProblem(tokens[i]); !problem.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("token #", i + 1, ": ", problem));
    }
    set.digests_.push_back(Sha256(tokens[i]));
  }
  return set;
}

bool TokenSet::Matches(std::string_view token) const {
  const Digest presented = Sha256(token);
  unsigned char match = 0;
  for (const Digest& digest : digests_) {
    match |= static_cast<unsigned char>(
        CRYPTO_memcmp(digest.data(), presented.data(), digest.size()) == 0);
  }
  return match != 0;
}

// ---- token sources ----------------------------------------------------------------------------

absl::StatusOr<std::vector<std::string>> ParseTokenFile(std::string_view contents,
                                                        std::string_view origin) {
  std::vector<std::string> tokens;
  size_t line_number = 0;
  for (std::string_view line : Split(contents, '\n')) {
    ++line_number;
    line = Trim(line);  // also a CR of CRLF files
    if (line.empty() || line.front() == '#') continue;
    if (std::string problem = TokenProblem(line); !problem.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(std::string(origin), ":", line_number, ": ", problem));
    }
    tokens.emplace_back(line);
  }
  if (tokens.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(origin), ": no tokens"));
  }
  return tokens;
}

absl::StatusOr<std::vector<std::string>> ReadTokenFile(const std::string& path) {
  auto contents = ReadSmallFile(path);
  if (!contents.ok()) return contents.status();
  return ParseTokenFile(*contents, path);
}

absl::StatusOr<std::vector<std::string>> ParseTokenList(std::string_view value,
                                                        std::string_view origin) {
  std::vector<std::string> tokens;
  size_t index = 0;
  for (std::string_view item : Split(value, ',')) {
    ++index;
    item = Trim(item);
    if (item.empty()) continue;
    if (std::string problem = TokenProblem(item); !problem.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(std::string(origin), ": item #", index, ": ", problem));
    }
    tokens.emplace_back(item);
  }
  if (tokens.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(origin), ": no tokens"));
  }
  return tokens;
}

// ---- TLS ----------------------------------------------------------------------------------------

absl::StatusOr<ApiTlsOptions> LoadApiTls(const std::string& cert_file, const std::string& key_file,
                                         const std::string& client_ca_file) {
  if (cert_file.empty() || key_file.empty()) {
    return absl::InvalidArgumentError("--api-tls-cert and --api-tls-key go together");
  }
  ApiTlsOptions tls;
  auto cert = ReadSmallFile(cert_file);
  if (!cert.ok()) return cert.status();
  tls.cert_chain = *std::move(cert);
  auto certs = ReadCertificates(tls.cert_chain);
  if (certs.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(cert_file, ": no PEM certificate"));
  }
  auto key = ReadSmallFile(key_file);
  if (!key.ok()) return key.status();
  tls.private_key = *std::move(key);
  PkeyPtr pkey = ReadPrivateKey(tls.private_key);
  if (!pkey) return absl::InvalidArgumentError(absl::StrCat(key_file, ": no PEM private key"));
  if (X509_check_private_key(certs.front().get(), pkey.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(
        key_file, ": the key does not match the certificate in ", cert_file));
  }
  if (!client_ca_file.empty()) {
    auto ca = ReadSmallFile(client_ca_file);
    if (!ca.ok()) return ca.status();
    tls.client_ca = *std::move(ca);
    if (ReadCertificates(tls.client_ca).empty()) {
      return absl::InvalidArgumentError(absl::StrCat(client_ca_file, ": no PEM certificate"));
    }
  }
  return tls;
}

std::string ApiSecurity::Describe() const {
  std::string auth;
  if (has_tokens()) auth = absl::StrCat("bearer tokens (", tokens->size(), ")");
  if (mutual_tls()) {
    auth = auth.empty() ? "client certificates (mutual TLS)"
                        : absl::StrCat("client certificates (mutual TLS) or ", auth);
  }
  if (auth.empty()) auth = "none";
  return absl::StrCat("authentication: ", auth, "; transport: ", tls ? "TLS" : "plaintext");
}

absl::StatusOr<ApiSecurity> LoadApiSecurity(const ApiSecurityFlags& flags) {
  ApiSecurity security;
  std::vector<std::string> tokens;
  if (!flags.token_file.empty()) {
    auto from_file = ReadTokenFile(flags.token_file);
    if (!from_file.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--api-token-file ", from_file.status().message()));
    }
    tokens.insert(tokens.end(), from_file->begin(), from_file->end());
  }
  if (!flags.token_env.empty()) {
    const char* value = std::getenv(flags.token_env.c_str());
    if (value == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("--api-token-env: $", flags.token_env, " is not set"));
    }
    auto from_env = ParseTokenList(value, absl::StrCat("$", flags.token_env));
    if (!from_env.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--api-token-env ", from_env.status().message()));
    }
    tokens.insert(tokens.end(), from_env->begin(), from_env->end());
  }
  if (!tokens.empty()) {
    auto set = TokenSet::Create(tokens);
    if (!set.ok()) return set.status();
    security.tokens = std::make_shared<const TokenSet>(*std::move(set));
  }
  if (!flags.tls_cert.empty() || !flags.tls_key.empty() || !flags.tls_client_ca.empty()) {
    if (flags.tls_cert.empty() || flags.tls_key.empty()) {
      return absl::InvalidArgumentError(
          "--api-tls-cert and --api-tls-key go together (and --api-tls-client-ca needs them)");
    }
    auto tls = LoadApiTls(flags.tls_cert, flags.tls_key, flags.tls_client_ca);
    if (!tls.ok()) return tls.status();
    security.tls = *std::move(tls);
  }
  return security;
}

// ---- exposure -----------------------------------------------------------------------------------

bool IsLoopbackHost(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (EqualsIgnoreCase(host, "localhost") || EqualsIgnoreCase(host, "localhost.")) {
    return true;
  }
  std::string h(host);
  in_addr v4;
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6;
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

absl::Status CheckApiExposure(std::string_view host, const ApiSecurity& security) {
  if (security.authenticated() || IsLoopbackHost(host)) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "the gRPC API would be open to the network: ", std::string(host),
      " is not a loopback address and no authentication is configured "
      "(give --api-token-file, --api-token-env or --api-tls-client-ca, "
      "or listen on 127.0.0.1)"));
}

bool IsUnauthenticatedMethod(std::string_view path) {
  return path.starts_with("/grpc.health.v1.Health/");
}

// ---- credentials ------------------------------------------------------------------------------

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeApiServerCredentials(
    const ApiSecurity& security) {
  if (!security.authenticated() && !security.tls) return grpc::InsecureServerCredentials();
  grpc_server_credentials* creds = nullptr;
  if (security.tls) {
    const ApiTlsOptions& tls = *security.tls;
    grpc_ssl_pem_key_cert_pair pair{tls.private_key.c_str(), tls.cert_chain.c_str()};
    grpc_ssl_client_certificate_request_type request = GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE;
    if (security.mutual_tls()) {
      // Without tokens the certificate is the only way in: require it at the
      // handshake. With tokens, a presented certificate must verify, but a
      // client may come with a token instead.
      request = security.has_tokens() ? GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY
                                      : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    }
    grpc_ssl_server_certificate_config* config = grpc_ssl_server_certificate_config_create(
        security.mutual_tls() ? tls.client_ca.c_str() : nullptr, &pair, 1);
    if (config == nullptr) return absl::InvalidArgumentError("bad TLS certificate or key");
    grpc_ssl_server_credentials_options* options =
        grpc_ssl_server_credentials_create_options_using_config(request, config);
    creds = options != nullptr ? grpc_ssl_server_credentials_create_with_options(options) : nullptr;
  } else {
    creds = grpc_insecure_server_credentials_create();
  }
  if (creds == nullptr) return absl::InternalError("cannot create the API's server credentials");
  if (security.authenticated()) {
    auto* state = new ProcessorState{security.tokens, security.mutual_tls()};
    grpc_server_credentials_set_auth_metadata_processor(
        creds, grpc_auth_metadata_processor{ProcessAuthMetadata, DestroyProcessorState, state});
  }
  return std::make_shared<CoreServerCredentials>(creds);
}

}  // namespace switchboard::services
