// The connect hook against a real backend gRPC service (in this process, on a
// loopback port) and a real Socket.IO server: allow (user id, rooms, data),
// reject (CONNECT_ERROR with message and data), time-out and unreachable
// backend (the configured verdict).
#include "policy/connect_hook.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "switchboard/v1/hooks.grpc.pb.h"
#include "tests/bus/nats_server.h"
#include "tests/edge/test_server.h"

namespace switchboard::policy {
namespace {

namespace pb = ::switchboard::v1;
using sio::Json;
using testing_support::BlockingClient;
using testing_support::TestServer;
using namespace std::chrono_literals;

// auth {"name": "mallory"} is rejected, {"name": "sloth"} answered after 1 s,
// anyone else allowed as "user-<name>" in rooms vip and team-<x-team header>.
class Backend final : public pb::ConnectHook::Service {
 public:
  grpc::Status OnConnect(grpc::ServerContext*, const pb::ConnectRequest* request,
                         pb::ConnectResponse* response) override {
    {
      std::lock_guard lock(mu);
      requests.push_back(*request);
    }
    Json auth = Json::parse(request->auth());
    std::string name = auth.value("name", "");
    if (name == "mallory") {
      response->mutable_reject()->set_message("go away");
      response->mutable_reject()->set_data(R"({"reason":"banned"})");
      return grpc::Status::OK;
    }
    if (name == "sloth") std::this_thread::sleep_for(1s);
    if (name == "broken") return grpc::Status(grpc::StatusCode::INTERNAL, "oops");
    pb::ConnectAllow* allow = response->mutable_allow();
    allow->set_user_id("user-" + name);
    allow->add_rooms("vip");
    auto team = request->handshake().headers().find("host");
    allow->add_rooms(team == request->handshake().headers().end() ? "no-host" : "has-host");
    allow->set_data(R"({"tier":"gold"})");
    return grpc::Status::OK;
  }

  std::mutex mu;
  std::vector<pb::ConnectRequest> requests;
};

class ConnectHookTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&backend_);
    grpc_ = builder.BuildAndStart();
    ASSERT_NE(grpc_, nullptr);
    Install("/hooked", absl::StrCat("127.0.0.1:", port), /*allow_on_failure=*/false);
    Install("/open",
            absl::StrCat("127.0.0.1:", bus::testing::NatsServer::FreePort()),  // nobody there
            /*allow_on_failure=*/true);
    server_.Start();
  }
  void TearDown() override {
    server_.Stop();
    for (const auto& hook : hooks_) hook->Stop();
    grpc_->Shutdown(std::chrono::system_clock::now() + 1s);
  }

  void Install(const std::string& name, const std::string& address, bool allow_on_failure) {
    ConnectHookSpec spec;
    spec.address = address;
    spec.timeout = 300ms;
    spec.allow_on_failure = allow_on_failure;
    spec.headers = {"host"};
    auto hook = ConnectHook::Create(spec, "edge-h");
    ASSERT_TRUE(hook.ok()) << hook.status();
    sio::Namespace& nsp = server_.io().Of(name);
    (*hook)->Install(nsp);
    hooks_.push_back(*hook);
    // "whoami": acks [user id, rooms, data].
    nsp.On("whoami", [](const sio::SocketPtr& socket, std::string_view, Json&, sio::Ack ack) {
      Json rooms = Json::array();
      for (const auto& room : socket->rooms()) {
        if (room != socket->id()) rooms.push_back(room);
      }
      ack(Json::array({socket->user_id(), rooms, socket->data()}));
    });
  }

  Backend backend_;
  std::unique_ptr<grpc::Server> grpc_;
  TestServer server_;
  std::vector<std::shared_ptr<ConnectHook>> hooks_;
};

// Joins `nsp` over a connection to "/" and returns the server's answer.
std::string JoinNamespace(BlockingClient& client, const std::string& nsp, const std::string& auth) {
  client.Send("40" + nsp + "," + auth);
  for (;;) {
    std::string message = client.Read();
    if (message.rfind("40" + nsp, 0) == 0 || message.rfind("44" + nsp, 0) == 0) return message;
  }
}

TEST_F(ConnectHookTest, AllowSetsUserRoomsAndData) {
  BlockingClient client(server_.port());
  std::string answer = JoinNamespace(client, "/hooked", R"({"name":"ann"})");
  ASSERT_EQ(answer.rfind("40/hooked,", 0), 0u) << answer;
  client.Send(R"(42/hooked,1["whoami"])");
  std::string ack;
  do {
    ack = client.Read();
  } while (ack.rfind("43/hooked,1", 0) != 0);
  EXPECT_EQ(ack, R"(43/hooked,1["user-ann",["vip","has-host"],{"tier":"gold"}])");
  EXPECT_EQ(hooks_[0]->allowed(), 1u);
  std::lock_guard lock(backend_.mu);
  ASSERT_EQ(backend_.requests.size(), 1u);
  const pb::ConnectRequest& request = backend_.requests[0];
  EXPECT_EQ(request.namespace_(), "/hooked");
  EXPECT_EQ(request.edge_id(), "edge-h");
  EXPECT_FALSE(request.socket_id().empty());
  EXPECT_EQ(request.handshake().address(), "127.0.0.1");
  EXPECT_EQ(Json::parse(request.auth()), Json({{"name", "ann"}}));
}

TEST_F(ConnectHookTest, RejectIsAConnectErrorWithMessageAndData) {
  BlockingClient client(server_.port());
  EXPECT_EQ(JoinNamespace(client, "/hooked", R"({"name":"mallory"})"),
            R"(44/hooked,{"message":"go away","data":{"reason":"banned"}})");
  EXPECT_EQ(hooks_[0]->rejected(), 1u);
}

TEST_F(ConnectHookTest, TimeoutAndErrorsGetTheConfiguredVerdict) {
  BlockingClient client(server_.port());
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(
      JoinNamespace(client, "/hooked", R"({"name":"sloth"})"),
      R"(44/hooked,{"message":"Connection hook unavailable","data":{"code":"hook_unavailable"}})");
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 1000ms);
  EXPECT_EQ(
      JoinNamespace(client, "/hooked", R"({"name":"broken"})"),
      R"(44/hooked,{"message":"Connection hook unavailable","data":{"code":"hook_unavailable"}})");
  EXPECT_EQ(hooks_[0]->failures(), 2u);
}

TEST_F(ConnectHookTest, AnUnreachableBackendGetsTheConfiguredVerdict) {
  BlockingClient client(server_.port());
  std::string answer = JoinNamespace(client, "/open", "{}");
  EXPECT_EQ(answer.rfind("40/open,", 0), 0u) << answer;
  EXPECT_EQ(hooks_[1]->failures(), 1u);
}

}  // namespace
}  // namespace switchboard::policy
