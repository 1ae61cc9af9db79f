#include "policy/client_auth.h"

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "edge/socketio/socket.h"

namespace switchboard::policy {
namespace {

absl::StatusOr<std::vector<auth::Algorithm>> Algorithms(const AuthKeySpec& spec) {
  std::vector<auth::Algorithm> out;
  for (const auto& name : spec.algorithms) {
    auto alg = auth::ParseAlgorithm(name);
    if (!alg) return absl::InvalidArgumentError(absl::StrCat("unknown algorithm ", name));
    out.push_back(*alg);
  }
  return out;
}

absl::StatusOr<std::string> ReadSecret(const AuthKeySpec& spec) {
  if (!spec.secret_env.empty()) {
    const char* value = std::getenv(spec.secret_env.c_str());
    if (value == nullptr || *value == '\0') {
      return absl::InvalidArgumentError(
          absl::StrCat("environment variable ", spec.secret_env, " is not set"));
    }
    return std::string(value);
  }
  std::ifstream in(spec.secret_file, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read ", spec.secret_file));
  std::string secret((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  if (secret.empty())
    return absl::InvalidArgumentError(absl::StrCat(spec.secret_file, " is empty"));
  return secret;
}

absl::Status AddKey(auth::KeySet& keys, const AuthKeySpec& spec) {
  auto algorithms = Algorithms(spec);
  if (!algorithms.ok()) return algorithms.status();
  std::optional<std::string> kid;
  if (!spec.kid.empty()) kid = spec.kid;
  if (!spec.jwks_file.empty()) return keys.AddJwksFile(spec.jwks_file);
  if (!spec.public_key_file.empty()) {
    return keys.AddPublicKeyPemFile(spec.public_key_file, kid, *algorithms);
  }
  auto secret = ReadSecret(spec);
  if (!secret.ok()) return secret.status();
  return keys.AddHmacSecret(*secret, kid, *algorithms);
}

}  // namespace

absl::StatusOr<std::shared_ptr<ClientAuth>> ClientAuth::Create(const AuthPolicy& policy,
                                                               std::string_view where) {
  auth::KeySet keys;
  for (size_t i = 0; i < policy.keys.size(); ++i) {
    if (absl::Status status = AddKey(keys, policy.keys[i]); !status.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(std::string(where), ".keys[", i, "]: ", std::string(status.message())));
    }
  }
  return std::shared_ptr<ClientAuth>(new ClientAuth(policy, std::move(keys)));
}

ClientAuth::ClientAuth(AuthPolicy policy, auth::KeySet keys)
    : policy_(std::move(policy)), keys_(std::move(keys)) {
  if (!policy_.issuer.empty()) verify_.issuer = policy_.issuer;
  if (!policy_.audience.empty()) verify_.audience = policy_.audience;
  verify_.leeway = std::chrono::seconds(policy_.leeway_seconds);
}

std::string ClientAuth::FindToken(const sio::Socket& socket) const {
  for (TokenSource source : policy_.token_from) {
    switch (source) {
      case TokenSource::kAuth: {
        const sio::Json& auth = socket.auth();
        auto it = auth.is_object() ? auth.find("token") : auth.end();
        if (it != auth.end() && it->is_string()) return it->get<std::string>();
        break;
      }
      case TokenSource::kHeader: {
        auto header = socket.handshake().Header("authorization");
        static constexpr std::string_view kBearer = "Bearer ";
        if (header && header->size() > kBearer.size() &&
            header->substr(0, kBearer.size()) == kBearer) {
          return std::string(header->substr(kBearer.size()));
        }
        break;
      }
      case TokenSource::kQuery:
        if (auto value = socket.handshake().Query(policy_.query_parameter)) {
          if (!value->empty()) return std::move(*value);
        }
        break;
    }
  }
  return {};
}

auth::VerifyResult ClientAuth::Check(const sio::Socket& socket) const {
  std::string token = FindToken(socket);
  if (token.empty()) {
    auth::VerifyResult missing;
    missing.error = auth::VerifyError{auth::ErrorCode::kMissing, "no token"};
    return missing;
  }
  return auth::Verify(token, keys_, verify_, std::chrono::system_clock::now());
}

void ClientAuth::Install(sio::Namespace& nsp) {
  nsp.Use([this](const sio::SocketPtr& socket, sio::Next next) {
    auth::VerifyResult result = Check(*socket);
    if (!result.ok()) {
      rejected_.fetch_add(1, std::memory_order_relaxed);
      auth::ErrorCode code = result.error->code;
      return next(sio::ConnectError{std::string(auth::ErrorMessage(code)),
                                    sio::Json{{"code", std::string(auth::ErrorDataCode(code))}}});
    }
    auto sub = result.claims.find("sub");
    if (sub == result.claims.end() || !sub->is_string() || sub->get<std::string>().empty()) {
      rejected_.fetch_add(1, std::memory_order_relaxed);
      return next(sio::ConnectError{
          std::string(auth::ErrorMessage(auth::ErrorCode::kInvalid)),
          sio::Json{{"code", std::string(auth::ErrorDataCode(auth::ErrorCode::kInvalid))}}});
    }
    socket->SetUserId(sub->get<std::string>());
    // Kept as the token said them; the rest of the token stays out of memory.
    sio::Json kept = sio::Json::object();
    for (const auto& name : policy_.claims) {
      if (auto it = result.claims.find(name); it != result.claims.end()) kept[name] = *it;
    }
    if (!kept.empty()) socket->SetClaims(std::move(kept));
    accepted_.fetch_add(1, std::memory_order_relaxed);
    next(std::nullopt);
  });
}

}  // namespace switchboard::policy
