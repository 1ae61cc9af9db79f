// Security of the gRPC API (services/api_auth.h): token sources and the token set, the loopback
// rule, and — over real gRPC on 127.0.0.1 against a real Broker on the in-process bus — bearer
// tokens, TLS and mutual TLS with certificates made here with OpenSSL. Also runs sbctl against a
// TLS + token server and the `switchboard` binary (refusal to start, tokens end to end).

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_interceptor.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "broker/broker.h"
#include "bus/inproc_bus.h"
#include "services/api_auth.h"
#include "services/api_server.h"
#include "switchboard/v1/switchboard.grpc.pb.h"
#include "tests/sbctl/run_program.h"
#include "tests/support/test_certs.h"

extern char** environ;

namespace switchboard::services {
namespace {

namespace pb = ::switchboard::v1;
using ::testing::HasSubstr;
using ::testing::Not;
using testing_support::Cert;
using testing_support::pki;
using testing_support::RunProgram;
using testing_support::TempDir;
using namespace std::chrono_literals;

constexpr char kTokenA[] = "token-A-0123456789abcdef";
constexpr char kTokenB[] = "token-B-fedcba9876543210";
constexpr const char* kServerName = testing_support::kTestServerName;

std::shared_ptr<const TokenSet> Tokens(const std::vector<std::string>& tokens) {
  auto set = TokenSet::Create(tokens);
  EXPECT_TRUE(set.ok()) << set.status();
  return std::make_shared<const TokenSet>(*std::move(set));
}

ApiTlsOptions ServerTls(bool mutual) {
  return {.cert_chain = pki().server.CertPem(),
          .private_key = pki().server.KeyPem(),
          .client_ca = mutual ? pki().ca.CertPem() : ""};
}

// ---- token sources ------------------------------------------------------------------------------

TEST(TokenFileTest, SkipsBlankLinesAndComments) {
  auto tokens = ParseTokenFile(
      "# API tokens\n\n  token-one-0123456789  \r\n\t# old: rotated out\nsecond-token-abcdefgh\n",
      "tokens.txt");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_EQ(*tokens, (std::vector<std::string>{"token-one-0123456789", "second-token-abcdefgh"}));
}

TEST(TokenFileTest, RefusesShortTokensWithoutNamingThem) {
  auto tokens = ParseTokenFile("# comment\nlong-enough-token-123\nshort-secret\n", "tokens.txt");
  ASSERT_FALSE(tokens.ok());
  EXPECT_EQ(tokens.status().code(), absl::StatusCode::kInvalidArgument);
  std::string message(tokens.status().message());
  EXPECT_THAT(message, HasSubstr("tokens.txt:3: token shorter than 16 characters"));
  EXPECT_THAT(message, Not(HasSubstr("short-secret")));
}

TEST(TokenFileTest, RefusesBlanksInsideTokensAndEmptyFiles) {
  auto spaced = ParseTokenFile("token with spaces inside\n", "f");
  ASSERT_FALSE(spaced.ok());
  EXPECT_THAT(std::string(spaced.status().message()), HasSubstr("f:1: token with a blank"));
  auto empty = ParseTokenFile("# nothing\n\n", "f");
  ASSERT_FALSE(empty.ok());
  EXPECT_THAT(std::string(empty.status().message()), HasSubstr("f: no tokens"));
  auto missing = ReadTokenFile("/nonexistent/tokens.txt");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("cannot read"));
}

TEST(TokenListTest, CommaSeparated) {
  auto tokens = ParseTokenList(" token-one-0123456789 ,, second-token-abcdefgh,", "$X");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_EQ(*tokens, (std::vector<std::string>{"token-one-0123456789", "second-token-abcdefgh"}));
  auto short_one = ParseTokenList("token-one-0123456789,tiny", "$X");
  ASSERT_FALSE(short_one.ok());
  EXPECT_THAT(std::string(short_one.status().message()), HasSubstr("$X: item #2: token shorter"));
  EXPECT_THAT(std::string(short_one.status().message()), Not(HasSubstr("tiny")));
  EXPECT_FALSE(ParseTokenList(" , ", "$X").ok());
}

TEST(TokenSetTest, MatchesOnlyWholeTokens) {
  auto set = Tokens({kTokenA, kTokenB});
  EXPECT_EQ(set->size(), 2u);
  EXPECT_TRUE(set->Matches(kTokenA));
  EXPECT_TRUE(set->Matches(kTokenB));
  EXPECT_FALSE(set->Matches(""));
  EXPECT_FALSE(set->Matches(std::string(kTokenA).substr(1)));
  EXPECT_FALSE(set->Matches(std::string(kTokenA) + "x"));
  EXPECT_FALSE(set->Matches("token-a-0123456789abcdef"));  // case matters
  EXPECT_FALSE(TokenSet::Create({"short"}).ok());
}

TEST(LoadApiSecurityTest, TokensFromFileAndEnvironment) {
  TempDir dir;
  std::string file = dir.Write("tokens", absl::StrCat("# current\n", kTokenA, "\n"));
  ASSERT_EQ(setenv("SB_API_AUTH_TEST_TOKENS", kTokenB, 1), 0);
  auto security = LoadApiSecurity({.token_file = file, .token_env = "SB_API_AUTH_TEST_TOKENS"});
  ASSERT_TRUE(security.ok()) << security.status();
  ASSERT_TRUE(security->has_tokens());
  EXPECT_EQ(security->tokens->size(), 2u);
  EXPECT_TRUE(security->tokens->Matches(kTokenA));
  EXPECT_TRUE(security->tokens->Matches(kTokenB));
  EXPECT_FALSE(security->tls.has_value());
  EXPECT_TRUE(security->authenticated());

  auto unset = LoadApiSecurity({.token_env = "SB_API_AUTH_TEST_UNSET_VARIABLE"});
  ASSERT_FALSE(unset.ok());
  EXPECT_THAT(std::string(unset.status().message()), HasSubstr("is not set"));
  ASSERT_EQ(setenv("SB_API_AUTH_TEST_EMPTY", "", 1), 0);
  EXPECT_FALSE(LoadApiSecurity({.token_env = "SB_API_AUTH_TEST_EMPTY"}).ok());

  auto open = LoadApiSecurity({});
  ASSERT_TRUE(open.ok());
  EXPECT_FALSE(open->authenticated());
}

TEST(LoadApiSecurityTest, TlsFiles) {
  TempDir dir;
  std::string cert = dir.Write("server.pem", pki().server.CertPem());
  std::string key = dir.Write("server.key", pki().server.KeyPem());
  std::string ca = dir.Write("ca.pem", pki().ca.CertPem());
  std::string other_key = dir.Write("other.key", pki().client.KeyPem());
  std::string junk = dir.Write("junk.pem", "not a certificate\n");

  auto tls = LoadApiSecurity({.tls_cert = cert, .tls_key = key});
  ASSERT_TRUE(tls.ok()) << tls.status();
  EXPECT_TRUE(tls->tls.has_value());
  EXPECT_FALSE(tls->mutual_tls());
  EXPECT_FALSE(tls->authenticated());  // TLS alone authenticates nobody

  auto mutual = LoadApiSecurity({.tls_cert = cert, .tls_key = key, .tls_client_ca = ca});
  ASSERT_TRUE(mutual.ok()) << mutual.status();
  EXPECT_TRUE(mutual->mutual_tls());
  EXPECT_TRUE(mutual->authenticated());

  EXPECT_FALSE(LoadApiSecurity({.tls_cert = cert}).ok());
  EXPECT_FALSE(LoadApiSecurity({.tls_key = key}).ok());
  EXPECT_FALSE(LoadApiSecurity({.tls_client_ca = ca}).ok());
  auto mismatch = LoadApiSecurity({.tls_cert = cert, .tls_key = other_key});
  ASSERT_FALSE(mismatch.ok());
  EXPECT_THAT(std::string(mismatch.status().message()), HasSubstr("does not match"));
  auto bad_cert = LoadApiSecurity({.tls_cert = junk, .tls_key = key});
  ASSERT_FALSE(bad_cert.ok());
  EXPECT_THAT(std::string(bad_cert.status().message()), HasSubstr("no PEM certificate"));
  EXPECT_FALSE(LoadApiSecurity({.tls_cert = cert, .tls_key = junk}).ok());
  EXPECT_FALSE(LoadApiSecurity({.tls_cert = cert, .tls_key = key, .tls_client_ca = junk}).ok());
}

// ---- the loopback rule --------------------------------------------------------------------------

TEST(ApiExposureTest, LoopbackHosts) {
  for (const char* host : {"127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST",
                           "::ffff:127.0.0.1", "0:0:0:0:0:0:0:1"}) {
    EXPECT_TRUE(IsLoopbackHost(host)) << host;
  }
  for (const char* host : {"0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "192.168.1.1", "::2",
                           "example.com", "localhost.example.com", "", "::ffff:10.0.0.1"}) {
    EXPECT_FALSE(IsLoopbackHost(host)) << host;
  }
}

TEST(ApiExposureTest, UnauthenticatedOnlyOnLoopback) {
  ApiSecurity open;
  EXPECT_TRUE(CheckApiExposure("127.0.0.1", open).ok());
  EXPECT_TRUE(CheckApiExposure("localhost", open).ok());
  auto refused = CheckApiExposure("0.0.0.0", open);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("0.0.0.0 is not a loopback address"));
  ApiSecurity tls_only{.tls = ServerTls(false)};
  EXPECT_EQ(CheckApiExposure("10.0.0.1", tls_only).code(), absl::StatusCode::kFailedPrecondition);
  ApiSecurity tokens{.tokens = Tokens({kTokenA})};
  EXPECT_TRUE(CheckApiExposure("0.0.0.0", tokens).ok());
  ApiSecurity mutual{.tls = ServerTls(true)};
  EXPECT_TRUE(CheckApiExposure("::", mutual).ok());
}

TEST(ApiExposureTest, StartRefusesAnOpenApiOnTheNetwork) {
  bus::InProcessBus bus;
  auto broker = broker::Broker::Start(bus, {});
  ASSERT_TRUE(broker.ok()) << broker.status();
  auto open = ApiServer::Start(**broker, {.host = "0.0.0.0", .port = 0});
  ASSERT_FALSE(open.ok());
  EXPECT_EQ(open.status().code(), absl::StatusCode::kFailedPrecondition) << open.status();
  ApiServerOptions with_tokens{.host = "0.0.0.0", .port = 0};
  with_tokens.security.tokens = Tokens({kTokenA});
  auto guarded = ApiServer::Start(**broker, with_tokens);
  ASSERT_TRUE(guarded.ok()) << guarded.status();
  EXPECT_NE((*guarded)->port(), 0);
}

// ---- over gRPC ----------------------------------------------------------------------------------

class ApiAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    bus_ = std::make_unique<bus::InProcessBus>();
    auto broker = broker::Broker::Start(*bus_, {});
    ASSERT_TRUE(broker.ok()) << broker.status();
    broker_ = *std::move(broker);
  }
  void TearDown() override {
    server_.reset();
    broker_.reset();
    bus_.reset();
  }

  void Start(ApiSecurity security) {
    ApiServerOptions options{.host = "127.0.0.1", .port = 0};
    options.security = std::move(security);
    auto server = ApiServer::Start(*broker_, std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }
  std::string Address() const { return absl::StrCat("127.0.0.1:", server_->port()); }

  std::shared_ptr<grpc::Channel> Plain() const {
    return grpc::CreateChannel(Address(), grpc::InsecureChannelCredentials());
  }
  // TLS trusting `roots` (the test CA by default), presenting `client` if given.
  std::shared_ptr<grpc::Channel> Tls(const Cert* client = nullptr, std::string roots = "") const {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = roots.empty() ? pki().ca.CertPem() : roots;
    if (client != nullptr) {
      ssl.pem_cert_chain = client->CertPem();
      ssl.pem_private_key = client->KeyPem();
    }
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride(kServerName);
    return grpc::CreateCustomChannel(Address(), grpc::SslCredentials(ssl), args);
  }

  // GetStats with `authorization` metadata (none when empty).
  static grpc::Status Stats(const std::shared_ptr<grpc::Channel>& channel,
                            const std::string& authorization = "") {
    auto stub = pb::Switchboard::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    if (!authorization.empty()) ctx.AddMetadata("authorization", authorization);
    pb::GetStatsResponse response;
    return stub->GetStats(&ctx, {}, &response);
  }
  static std::string Bearer(const std::string& token) { return "Bearer " + token; }

  // One request, one response on `method` (also a streaming one), raw bytes.
  static grpc::Status RawCall(const std::shared_ptr<grpc::Channel>& channel,
                              const std::string& method, const std::string& request,
                              const std::string& authorization, std::string* response_bytes) {
    grpc::GenericStub stub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    if (!authorization.empty()) ctx.AddMetadata("authorization", authorization);
    grpc::Slice slice(request);
    grpc::ByteBuffer in(&slice, 1);
    grpc::ByteBuffer out;
    std::promise<grpc::Status> done;
    stub.UnaryCall(&ctx, method, grpc::StubOptions(), &in, &out,
                   [&done](grpc::Status s) { done.set_value(std::move(s)); });
    grpc::Status status = done.get_future().get();
    if (status.ok() && response_bytes != nullptr) {
      std::vector<grpc::Slice> slices;
      EXPECT_TRUE(out.Dump(&slices).ok());
      response_bytes->clear();
      for (const auto& s : slices) {
        response_bytes->append(reinterpret_cast<const char*>(s.begin()), s.size());
      }
    }
    return status;
  }
  // grpc.health.v1.Health/Check of "" → the encoded HealthCheckResponse.
  static grpc::Status Health(const std::shared_ptr<grpc::Channel>& channel, std::string* response) {
    return RawCall(channel, "/grpc.health.v1.Health/Check", "", "", response);
  }
  // ServerReflectionRequest{list_services: "*"} (field 7).
  static grpc::Status ListServices(const std::shared_ptr<grpc::Channel>& channel,
                                   const std::string& authorization,
                                   const std::string& method =
                                       "/grpc.reflection.v1alpha.ServerReflection/"
                                       "ServerReflectionInfo") {
    std::string response;
    return RawCall(channel, method, std::string("\x3a\x01*", 3), authorization, &response);
  }

  std::unique_ptr<bus::InProcessBus> bus_;
  std::unique_ptr<broker::Broker> broker_;
  std::unique_ptr<ApiServer> server_;
};

// HealthCheckResponse{status: SERVING}: field 1, varint 1.
const std::string kServing("\x08\x01", 2);

TEST_F(ApiAuthTest, BearerTokens) {
  Start({.tokens = Tokens({kTokenA, kTokenB})});
  auto channel = Plain();
  auto missing = Stats(channel);
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(missing.error_message(), "missing bearer token");
  auto wrong = Stats(channel, Bearer("token-C-not-configured-000"));
  EXPECT_EQ(wrong.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(wrong.error_message(), "invalid bearer token");
  auto other_scheme = Stats(channel, absl::StrCat("Basic ", kTokenA));
  EXPECT_EQ(other_scheme.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(other_scheme.error_message(), "missing bearer token");
  EXPECT_EQ(Stats(channel, "Bearer ").error_message(), "invalid bearer token");
  EXPECT_EQ(Stats(channel, absl::StrCat("Bearer ", kTokenA, "x")).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // Both tokens of a rotation work; the scheme is case-insensitive.
  auto a = Stats(channel, Bearer(kTokenA));
  EXPECT_TRUE(a.ok()) << a.error_message();
  auto b = Stats(channel, Bearer(kTokenB));
  EXPECT_TRUE(b.ok()) << b.error_message();
  auto lower = Stats(channel, absl::StrCat("bearer ", kTokenB));
  EXPECT_TRUE(lower.ok()) << lower.error_message();
}

// Records whether calls reach the server's interceptors, and with which metadata keys.
class MetadataSpy : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  struct Seen {
    std::mutex mu;
    int calls = 0;
    bool authorization = false;
  };
  explicit MetadataSpy(std::shared_ptr<Seen> seen) : seen_(std::move(seen)) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* /*info*/) override {
    return new Spy(seen_);
  }

 private:
  class Spy : public grpc::experimental::Interceptor {
   public:
    explicit Spy(std::shared_ptr<Seen> seen) : seen_(std::move(seen)) {}
    void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
      if (methods->QueryInterceptionHookPoint(
              grpc::experimental::InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
        std::lock_guard lock(seen_->mu);
        ++seen_->calls;
        for (const auto& [key, value] : *methods->GetRecvInitialMetadata()) {
          if (key == "authorization") seen_->authorization = true;
        }
      }
      methods->Proceed();
    }

   private:
    std::shared_ptr<Seen> seen_;
  };
  std::shared_ptr<Seen> seen_;
};

// The check runs before any handler (and interceptor) and consumes the token.
TEST_F(ApiAuthTest, HandlersNeverSeeTheToken) {
  auto seen = std::make_shared<MetadataSpy::Seen>();
  ApiServerOptions options{.host = "127.0.0.1", .port = 0};
  options.security.tokens = Tokens({kTokenA});
  options.make_interceptors = [seen] {
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> v;
    v.push_back(std::make_unique<MetadataSpy>(seen));
    return v;
  };
  auto server = ApiServer::Start(*broker_, options);
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = *std::move(server);
  EXPECT_EQ(Stats(Plain()).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Stats(Plain(), Bearer("token-C-not-configured-000")).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  {
    std::lock_guard lock(seen->mu);
    EXPECT_EQ(seen->calls, 0);  // rejected calls never reach the server's call path
  }
  EXPECT_TRUE(Stats(Plain(), Bearer(kTokenA)).ok());
  std::lock_guard lock(seen->mu);
  EXPECT_EQ(seen->calls, 1);
  EXPECT_FALSE(seen->authorization);
}

TEST_F(ApiAuthTest, EveryMethodNeedsTheToken) {
  Start({.tokens = Tokens({kTokenA})});
  auto stub = pb::Switchboard::NewStub(Plain());
  {  // Publish runs on the callback API
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    pb::PublishRequest request;
    request.set_event("news");
    pb::PublishResponse response;
    EXPECT_EQ(stub->Publish(&ctx, request, &response).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  {  // a server stream
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    auto reader = stub->WatchEvents(&ctx, {});
    pb::WatchEventsResponse event;
    EXPECT_FALSE(reader->Read(&event));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    pb::ListSocketsResponse response;
    EXPECT_EQ(stub->ListSockets(&ctx, {}, &response).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  // Unknown methods too: no probing without a token.
  EXPECT_EQ(RawCall(Plain(), "/no.such.Service/Method", "", "", nullptr).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(RawCall(Plain(), "/no.such.Service/Method", "", Bearer(kTokenA), nullptr).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(ApiAuthTest, HealthNeedsNoTokenReflectionDoes) {
  Start({.tokens = Tokens({kTokenA})});
  auto channel = Plain();
  std::string health;
  auto status = Health(channel, &health);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(health, kServing);

  auto reflection = ListServices(channel, "");
  EXPECT_EQ(reflection.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(reflection.error_message(), "missing bearer token");
  EXPECT_EQ(ListServices(channel, "", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
#ifdef SB_HAVE_GRPC_REFLECTION
  auto with_token = ListServices(channel, Bearer(kTokenA));
  EXPECT_TRUE(with_token.ok()) << with_token.error_message();
#endif
}

TEST_F(ApiAuthTest, OpenOnLoopbackWithoutTokens) {
  Start({});
  auto status = Stats(Plain());
  EXPECT_TRUE(status.ok()) << status.error_message();
  // A token nobody asked for is ignored.
  EXPECT_TRUE(Stats(Plain(), Bearer("whatever-token-0123456789")).ok());
}

TEST_F(ApiAuthTest, Tls) {
  Start({.tls = ServerTls(false)});
  auto plain = Stats(Plain());
  EXPECT_EQ(plain.error_code(), grpc::StatusCode::UNAVAILABLE) << plain.error_message();
  auto tls = Stats(Tls());
  EXPECT_TRUE(tls.ok()) << tls.error_message();
  auto untrusted = Stats(Tls(nullptr, pki().other_ca.CertPem()));
  EXPECT_EQ(untrusted.error_code(), grpc::StatusCode::UNAVAILABLE) << untrusted.error_message();
}

TEST_F(ApiAuthTest, TlsWithTokens) {
  Start({.tokens = Tokens({kTokenA}), .tls = ServerTls(false)});
  EXPECT_EQ(Stats(Tls()).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  // A client certificate means nothing without mutual TLS.
  EXPECT_EQ(Stats(Tls(&pki().client)).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  auto ok = Stats(Tls(), Bearer(kTokenA));
  EXPECT_TRUE(ok.ok()) << ok.error_message();
  std::string health;
  EXPECT_TRUE(Health(Tls(), &health).ok());
}

TEST_F(ApiAuthTest, MutualTls) {
  Start({.tls = ServerTls(true)});
  auto no_cert = Stats(Tls());
  EXPECT_EQ(no_cert.error_code(), grpc::StatusCode::UNAVAILABLE) << no_cert.error_message();
  auto foreign = Stats(Tls(&pki().other_client));
  EXPECT_EQ(foreign.error_code(), grpc::StatusCode::UNAVAILABLE) << foreign.error_message();
  auto ok = Stats(Tls(&pki().client));
  EXPECT_TRUE(ok.ok()) << ok.error_message();
  auto reflection = ListServices(Tls(&pki().client), "");
#ifdef SB_HAVE_GRPC_REFLECTION
  EXPECT_TRUE(reflection.ok()) << reflection.error_message();
#endif
  EXPECT_EQ(Stats(Plain()).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(ApiAuthTest, MutualTlsOrTokens) {
  Start({.tokens = Tokens({kTokenA}), .tls = ServerTls(true)});
  auto cert = Stats(Tls(&pki().client));
  EXPECT_TRUE(cert.ok()) << cert.error_message();
  auto token = Stats(Tls(), Bearer(kTokenA));
  EXPECT_TRUE(token.ok()) << token.error_message();
  auto neither = Stats(Tls());
  EXPECT_EQ(neither.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(neither.error_message(), "missing bearer token");
  // A presented certificate must still verify.
  EXPECT_EQ(Stats(Tls(&pki().other_client), Bearer(kTokenA)).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

// ---- sbctl against a TLS + token server ---------------------------------------------------------

#ifdef SBCTL_BIN
std::string SbctlBin() {
  const char* env = std::getenv("SBCTL_BIN");
  return env != nullptr ? env : SBCTL_BIN;
}

TEST_F(ApiAuthTest, SbctlWithTlsAndToken) {
  Start({.tokens = Tokens({kTokenA}), .tls = ServerTls(false)});
  TempDir dir;
  std::string ca = dir.Write("ca.pem", pki().ca.CertPem());
  const std::vector<std::string> tls = {"--server", Address(), "--timeout", "5", "--tls-ca", ca,
                                        "--tls-server-name", kServerName};
  auto with = [](std::vector<std::string> args, const std::vector<std::string>& more) {
    args.insert(args.end(), more.begin(), more.end());
    return args;
  };
  auto ok = RunProgram(SbctlBin(), with(tls, {"--token", kTokenA, "--json", "stats"}));
  EXPECT_EQ(ok.rc, 0) << ok.err;
  EXPECT_THAT(ok.out, HasSubstr("\"totals\""));
  auto from_env = RunProgram(SbctlBin(), with(tls, {"stats"}),
                             {absl::StrCat("SWITCHBOARD_TOKEN=", kTokenA)});
  EXPECT_EQ(from_env.rc, 0) << from_env.err;
  auto no_token = RunProgram(SbctlBin(), with(tls, {"stats"}));
  EXPECT_EQ(no_token.rc, 1);
  EXPECT_THAT(no_token.err, HasSubstr("sbctl: UNAUTHENTICATED: missing bearer token"));
  auto wrong = RunProgram(SbctlBin(), with(tls, {"--token", kTokenB, "stats"}));
  EXPECT_EQ(wrong.rc, 1);
  EXPECT_THAT(wrong.err, HasSubstr("sbctl: UNAUTHENTICATED: invalid bearer token"));
  auto plaintext = RunProgram(SbctlBin(), {"--server", Address(), "--timeout", "5", "--token",
                                           kTokenA, "stats"});
  EXPECT_EQ(plaintext.rc, 1);
  EXPECT_THAT(plaintext.err, HasSubstr("sbctl: UNAVAILABLE"));
}

TEST_F(ApiAuthTest, SbctlWithClientCertificate) {
  Start({.tls = ServerTls(true)});
  TempDir dir;
  std::string ca = dir.Write("ca.pem", pki().ca.CertPem());
  std::string cert = dir.Write("client.pem", pki().client.CertPem());
  std::string key = dir.Write("client.key", pki().client.KeyPem());
  auto ok = RunProgram(SbctlBin(), {"--server", Address(), "--timeout", "5", "--tls-ca", ca,
                                    "--tls-cert", cert, "--tls-key", key, "--tls-server-name",
                                    kServerName, "stats"});
  EXPECT_EQ(ok.rc, 0) << ok.err;
  auto no_cert = RunProgram(SbctlBin(), {"--server", Address(), "--timeout", "5", "--tls-ca", ca,
                                         "--tls-server-name", kServerName, "stats"});
  EXPECT_EQ(no_cert.rc, 1);
  EXPECT_THAT(no_cert.err, HasSubstr("sbctl: UNAVAILABLE"));
  auto half = RunProgram(SbctlBin(), {"--server", Address(), "--tls-cert", cert, "stats"});
  EXPECT_EQ(half.rc, 2);
  EXPECT_THAT(half.err, HasSubstr("--tls-cert and --tls-key go together"));
}
#endif

// ---- the switchboard binary ---------------------------------------------------------------------

#ifdef SWITCHBOARD_BIN
std::string SwitchboardBin() {
  const char* env = std::getenv("SWITCHBOARD_BIN");
  return env != nullptr ? env : SWITCHBOARD_BIN;
}

// The broker checks the API's security before it connects to NATS (nothing listens on port 1:
// a broker that tried would retry for 30 s).
TEST(SwitchboardBinaryTest, RefusesAnOpenApiOnTheNetwork) {
  auto started = std::chrono::steady_clock::now();
  auto broker = RunProgram(SwitchboardBin(), {"broker", "--nats", "nats://127.0.0.1:1",
                                              "--grpc-listen", "0.0.0.0:0"});
  EXPECT_EQ(broker.rc, 1);
  EXPECT_THAT(broker.err, HasSubstr("refusing to start"));
  EXPECT_THAT(broker.err, HasSubstr("0.0.0.0 is not a loopback address"));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);

  auto standalone = RunProgram(SwitchboardBin(), {"standalone", "--listen", "127.0.0.1:0",
                                                  "--grpc-listen", "0.0.0.0:0"});
  EXPECT_EQ(standalone.rc, 1);
  EXPECT_THAT(standalone.err, HasSubstr("refusing to start"));
}

TEST(SwitchboardBinaryTest, RefusesBadTokens) {
  TempDir dir;
  std::string file = dir.Write("tokens", absl::StrCat(kTokenA, "\nsecret-short\n"));
  auto started = std::chrono::steady_clock::now();
  auto run = RunProgram(SwitchboardBin(), {"broker", "--nats", "nats://127.0.0.1:1",
                                           "--grpc-listen", "0.0.0.0:0", "--api-token-file",
                                           file});
  EXPECT_EQ(run.rc, 1);
  EXPECT_THAT(run.err, HasSubstr(file + ":2: token shorter than 16 characters"));
  EXPECT_THAT(run.err, Not(HasSubstr("secret-short")));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);

  auto unset = RunProgram(SwitchboardBin(), {"broker", "--nats", "nats://127.0.0.1:1",
                                             "--api-token-env", "SB_API_AUTH_TEST_NOT_SET"});
  EXPECT_EQ(unset.rc, 1);
  EXPECT_THAT(unset.err, HasSubstr("SB_API_AUTH_TEST_NOT_SET is not set"));

  auto edge = RunProgram(SwitchboardBin(), {"edge", "--nats", "nats://127.0.0.1:1",
                                            "--api-token-file", file});
  EXPECT_EQ(edge.rc, 2);
}

// `switchboard standalone` with tokens from the environment, end to end.
TEST(SwitchboardBinaryTest, StandaloneWithTokens) {
  TempDir dir;
  std::string out_path = dir.Write("out", "");
  std::string err_path = dir.Write("err", "");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(), O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(), O_WRONLY, 0);
  std::vector<std::string> args = {SwitchboardBin(), "standalone", "--listen", "127.0.0.1:0",
                                   "--grpc-listen", "127.0.0.1:0", "--api-token-env",
                                   "SB_API_AUTH_TEST_STANDALONE"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  for (char** e = environ; *e != nullptr; ++e) env_s.emplace_back(*e);
  env_s.push_back(absl::StrCat("SB_API_AUTH_TEST_STANDALONE=", kTokenA, ",", kTokenB));
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = -1;
  ASSERT_EQ(posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data()), 0);
  posix_spawn_file_actions_destroy(&actions);

  // "switchboard standalone serving gRPC on 127.0.0.1:PORT"
  std::string port;
  const std::regex serving("serving gRPC on 127\\.0\\.0\\.1:([0-9]+)");
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (port.empty() && std::chrono::steady_clock::now() < deadline) {
    std::smatch m;
    std::string out = testing_support::Slurp(out_path);
    if (std::regex_search(out, m, serving)) {
      port = m[1];
    } else {
      std::this_thread::sleep_for(20ms);
    }
  }
  if (!port.empty()) {
    auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                       grpc::InsecureChannelCredentials());
    auto stub = pb::Switchboard::NewStub(channel);
    auto stats = [&](const std::string& token) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + 5s);
      if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
      pb::GetStatsResponse response;
      return stub->GetStats(&ctx, {}, &response);
    };
    EXPECT_EQ(stats("").error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(stats("token-C-not-configured-000").error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_TRUE(stats(kTokenA).ok());
    EXPECT_TRUE(stats(kTokenB).ok());
  }
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  std::string err = testing_support::Slurp(err_path);
  ASSERT_FALSE(port.empty()) << "no 'serving gRPC' line; stderr:\n" << err;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << err;
  EXPECT_THAT(err, HasSubstr("bearer tokens (2)"));
  EXPECT_THAT(err, Not(HasSubstr(kTokenA)));
  EXPECT_THAT(err, Not(HasSubstr(kTokenB)));
}
#endif

}  // namespace
}  // namespace switchboard::services
