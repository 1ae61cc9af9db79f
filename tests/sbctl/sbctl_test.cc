// sbctl against a fake Switchboard service: checks that each verb maps the command line onto the
// right request (and metadata), and how responses and errors are printed and reflected in the exit
// status. The fake only records requests and returns canned answers: it tests the CLI, not the
// broker.

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <google/protobuf/util/time_util.h>
#include <grpcpp/grpcpp.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/sbctl/run_program.h"
#include "switchboard/v1/switchboard.grpc.pb.h"

extern char** environ;

namespace {

namespace pb = switchboard::v1;
using google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;
using switchboard::testing_support::Result;
using switchboard::testing_support::RunProgram;

// Records every request and the authorization metadata; answers with canned responses, or with
// `fail` when set.
class FakeSwitchboard final : public pb::Switchboard::Service {
 public:
  std::mutex mu;
  std::vector<std::string> calls;
  std::optional<std::string> authorization;
  std::optional<grpc::Status> fail;

  pb::PublishRequest publish_req;
  pb::PublishResponse publish_resp;
  pb::JoinRoomsRequest join_req;
  pb::LeaveRoomsRequest leave_req;
  pb::DisconnectSocketsRequest disconnect_req;
  pb::GetStatsResponse stats_resp;
  // Each GetStats after the first adds 10 packets in and 20 out to the first edge and the first
  // namespace of stats_resp (a live cluster, for `top`).
  bool stats_grow = false;
  std::vector<pb::ListSocketsRequest> sockets_reqs;
  std::vector<pb::ListSocketsResponse> sockets_pages;  // served in order of page token "", "1"...
  pb::ListRoomsRequest rooms_req;
  pb::ListRoomsResponse rooms_resp;
  pb::GetPresenceRequest presence_req;
  pb::GetPresenceResponse presence_resp;
  pb::ListEdgesResponse edges_resp;

  grpc::Status ListEdges(grpc::ServerContext* ctx, const pb::ListEdgesRequest*,
                         pb::ListEdgesResponse* resp) override {
    return Handle(ctx, "ListEdges", [&] { *resp = edges_resp; });
  }

  grpc::Status Publish(grpc::ServerContext* ctx, const pb::PublishRequest* req,
                       pb::PublishResponse* resp) override {
    return Handle(ctx, "Publish", [&] {
      publish_req = *req;
      *resp = publish_resp;
    });
  }
  grpc::Status JoinRooms(grpc::ServerContext* ctx, const pb::JoinRoomsRequest* req,
                         pb::JoinRoomsResponse* resp) override {
    return Handle(ctx, "JoinRooms", [&] {
      join_req = *req;
      resp->set_matched_sockets(3);
    });
  }
  grpc::Status LeaveRooms(grpc::ServerContext* ctx, const pb::LeaveRoomsRequest* req,
                          pb::LeaveRoomsResponse* resp) override {
    return Handle(ctx, "LeaveRooms", [&] {
      leave_req = *req;
      resp->set_matched_sockets(4);
    });
  }
  grpc::Status DisconnectSockets(grpc::ServerContext* ctx, const pb::DisconnectSocketsRequest* req,
                                 pb::DisconnectSocketsResponse* resp) override {
    return Handle(ctx, "DisconnectSockets", [&] {
      disconnect_req = *req;
      resp->set_matched_sockets(5);
    });
  }
  grpc::Status GetStats(grpc::ServerContext* ctx, const pb::GetStatsRequest*,
                        pb::GetStatsResponse* resp) override {
    return Handle(ctx, "GetStats", [&] {
      if (stats_grow && calls.size() > 1) {
        for (pb::Counts* c : {stats_resp.mutable_edges(0)->mutable_counts(),
                              stats_resp.mutable_namespaces(0)->mutable_counts()}) {
          c->set_messages_in(c->messages_in() + 10);
          c->set_messages_out(c->messages_out() + 20);
        }
      }
      *resp = stats_resp;
    });
  }
  grpc::Status ListSockets(grpc::ServerContext* ctx, const pb::ListSocketsRequest* req,
                           pb::ListSocketsResponse* resp) override {
    return Handle(ctx, "ListSockets", [&] {
      sockets_reqs.push_back(*req);
      size_t page = req->page_token().empty() ? 0 : std::stoul(req->page_token());
      if (page < sockets_pages.size()) *resp = sockets_pages[page];
    });
  }
  grpc::Status ListRooms(grpc::ServerContext* ctx, const pb::ListRoomsRequest* req,
                         pb::ListRoomsResponse* resp) override {
    return Handle(ctx, "ListRooms", [&] {
      rooms_req = *req;
      *resp = rooms_resp;
    });
  }
  grpc::Status GetPresence(grpc::ServerContext* ctx, const pb::GetPresenceRequest* req,
                           pb::GetPresenceResponse* resp) override {
    return Handle(ctx, "GetPresence", [&] {
      presence_req = *req;
      *resp = presence_resp;
    });
  }

 private:
  template <typename F>
  grpc::Status Handle(grpc::ServerContext* ctx, const char* name, F&& body) {
    std::lock_guard lock(mu);
    calls.push_back(name);
    auto it = ctx->client_metadata().find("authorization");
    if (it != ctx->client_metadata().end()) {
      authorization = std::string(it->second.data(), it->second.size());
    } else {
      authorization.reset();
    }
    if (fail) return *fail;
    body();
    return grpc::Status::OK;
  }
};

std::string SbctlPath() {
  if (const char* env = std::getenv("SBCTL_BIN")) return env;
  return SBCTL_BIN;
}

Result RunSbctl(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
  return RunProgram(SbctlPath(), args, env);
}

template <typename M>
M ParseJson(const std::string& text) {
  M message;
  auto status = google::protobuf::util::JsonStringToMessage(text, &message);
  EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << text;
  return message;
}

pb::SocketInfo MakeSocket(const std::string& id, const std::string& user) {
  pb::SocketInfo s;
  s.set_id(id);
  s.set_edge_id("edge-a");
  s.set_user_id(user);
  s.set_namespace_("/chat");
  s.add_rooms("lobby");
  s.add_rooms("r2");
  s.set_transport(pb::TRANSPORT_WEBSOCKET);
  s.set_remote_address("10.0.0.1:5555");
  *s.mutable_connected_at() = google::protobuf::util::TimeUtil::SecondsToTimestamp(1700000000);
  return s;
}

class SbctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&fake_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  // sbctl with --server pointing at the fake, then `args`.
  Result Run(std::vector<std::string> args, const std::vector<std::string>& env = {}) {
    args.insert(args.begin(), {"--server", "127.0.0.1:" + std::to_string(port_)});
    return RunSbctl(args, env);
  }

  std::vector<std::string> Calls() {
    std::lock_guard lock(fake_.mu);
    return fake_.calls;
  }

  FakeSwitchboard fake_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

// ---- stats ----

void FillStats(pb::GetStatsResponse* s) {
  s->set_broker_id("broker-1");
  s->mutable_totals()->set_sockets(7);
  s->mutable_totals()->set_users(3);
  s->mutable_totals()->set_rooms(2);
  s->mutable_totals()->set_messages_in(11);
  s->mutable_totals()->set_messages_out(22);
  auto* e = s->add_edges();
  e->set_edge_id("edge-a");
  e->mutable_counts()->set_sockets(4);
  e->set_last_seq(99);
  auto* e2 = s->add_edges();
  e2->set_edge_id("edge-b");
  e2->mutable_counts()->set_sockets(3);
  auto* n = s->add_namespaces();
  n->set_namespace_("/chat");
  n->mutable_counts()->set_sockets(7);
}

TEST_F(SbctlTest, StatsTableAndToken) {
  FillStats(&fake_.stats_resp);
  auto r = Run({"--token", "s3cret", "stats"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(Calls(), std::vector<std::string>{"GetStats"});
  EXPECT_EQ(fake_.authorization, "Bearer s3cret");
  EXPECT_THAT(r.out, HasSubstr("broker-1"));
  EXPECT_THAT(r.out, HasSubstr("TOTAL"));
  EXPECT_THAT(r.out, HasSubstr("edge-a"));
  EXPECT_THAT(r.out, HasSubstr("edge-b"));
  EXPECT_THAT(r.out, HasSubstr("/chat"));
  EXPECT_THAT(r.out, HasSubstr("99"));
  EXPECT_TRUE(r.err.empty()) << r.err;
}

TEST_F(SbctlTest, EdgesTableShowsStateVersionUptimeAndSockets) {
  const int64_t now = google::protobuf::util::TimeUtil::GetCurrentTime().seconds();
  pb::EdgeInfo* ready = fake_.edges_resp.add_edges();
  ready->set_edge_id("edge-a");
  ready->set_state(pb::EDGE_STATE_READY);
  ready->set_version("1.2.3");
  ready->mutable_started_at()->set_seconds(now - 3725);  // 1 h 2 min 5 s ago
  ready->set_sockets(42);
  pb::EdgeInfo* lost = fake_.edges_resp.add_edges();
  lost->set_edge_id("edge-b");
  lost->set_state(pb::EDGE_STATE_LOST);
  lost->set_version("1.2.2");
  lost->mutable_started_at()->set_seconds(now - 90);
  lost->set_sockets(7);
  auto r = Run({"edges"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(Calls(), std::vector<std::string>{"ListEdges"});
  std::istringstream lines(r.out);
  std::vector<std::vector<std::string>> rows;
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    rows.emplace_back(std::istream_iterator<std::string>(words),
                      std::istream_iterator<std::string>());
  }
  ASSERT_EQ(rows.size(), 3u) << r.out;
  EXPECT_EQ(rows[0], (std::vector<std::string>{"EDGE", "STATE", "VERSION", "UPTIME", "SOCKETS",
                                               "STARTED", "LAST_HEARTBEAT"}));
  ASSERT_EQ(rows[1].size(), 7u) << r.out;
  EXPECT_EQ(rows[1][0], "edge-a");
  EXPECT_EQ(rows[1][1], "ready");
  EXPECT_EQ(rows[1][2], "1.2.3");
  EXPECT_THAT(rows[1][3], ::testing::AnyOf("1h02m", "1h03m"));
  EXPECT_EQ(rows[1][4], "42");
  EXPECT_EQ(rows[1][6], "-");  // no heartbeat time given
  ASSERT_EQ(rows[2].size(), 7u) << r.out;
  EXPECT_EQ(rows[2][1], "lost");
  EXPECT_EQ(rows[2][3], "-");  // a lost edge has no uptime
  EXPECT_EQ(rows[2][4], "7");

  auto j = Run({"--json", "edges"});
  ASSERT_EQ(j.rc, 0) << j.err;
  auto parsed = ParseJson<pb::ListEdgesResponse>(j.out);
  EXPECT_TRUE(MessageDifferencer::Equals(parsed, fake_.edges_resp)) << j.out;
}

TEST(SbctlNoServer, VersionFlag) {
  auto r = RunSbctl({"--version"});
  EXPECT_EQ(r.rc, 0);
  EXPECT_THAT(r.out, ::testing::MatchesRegex("[0-9]+\\.[0-9]+\\.[0-9]+\n"));
}

TEST_F(SbctlTest, StatsJsonIsProtoJson) {
  FillStats(&fake_.stats_resp);
  auto r = Run({"--json", "stats"});
  ASSERT_EQ(r.rc, 0) << r.err;
  auto parsed = ParseJson<pb::GetStatsResponse>(r.out);
  EXPECT_TRUE(MessageDifferencer::Equals(parsed, fake_.stats_resp)) << r.out;
  EXPECT_THAT(r.out, HasSubstr("\"messages_out\""));  // proto field names
  // No token given and none in the environment: no authorization metadata.
  EXPECT_FALSE(fake_.authorization.has_value());
}

TEST_F(SbctlTest, JsonFlagAfterVerbAndTokenFromEnvironment) {
  FillStats(&fake_.stats_resp);
  auto r = Run({"stats", "--json"}, {"SWITCHBOARD_TOKEN=from-env"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(fake_.authorization, "Bearer from-env");
  ParseJson<pb::GetStatsResponse>(r.out);
  // --token wins over the environment.
  r = Run({"--token", "flag", "stats"}, {"SWITCHBOARD_TOKEN=from-env"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(fake_.authorization, "Bearer flag");
}

// ---- errors ----

TEST_F(SbctlTest, ServerErrorGivesCodeNameAndNonZeroExit) {
  fake_.fail = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad target");
  auto r = Run({"publish", "--event", "e"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.err, "sbctl: INVALID_ARGUMENT: bad target\n");
  EXPECT_TRUE(r.out.empty()) << r.out;

  fake_.fail = grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "bad token");
  r = Run({"--json", "stats"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.err, "sbctl: UNAUTHENTICATED: bad token\n");
}

// ---- top ----

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) {
    lines.push_back(text.substr(start, nl - start));
  }
  return lines;
}

TEST_F(SbctlTest, TopRefreshesTablesOfConnectionsAndRates) {
  FillStats(&fake_.stats_resp);
  fake_.stats_grow = true;
  auto r = Run({"top", "--interval-ms", "100", "--iterations", "2"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(Calls(), (std::vector<std::string>{"GetStats", "GetStats"}));
  EXPECT_THAT(r.out, HasSubstr("broker broker-1, 7 connection(s), 2 edge(s)"));
  EXPECT_THAT(r.out, HasSubstr("CONNECTIONS"));
  EXPECT_THAT(r.out, HasSubstr("IN/S"));
  EXPECT_THAT(r.out, HasSubstr("edge-a"));
  EXPECT_THAT(r.out, HasSubstr("/chat"));
  // Not a terminal: frames one after the other, no screen clearing.
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << r.out;
  size_t second = r.out.find("switchboard top:", 1);
  ASSERT_NE(second, std::string::npos) << r.out;
  // First frame: no rates yet; second: edge-b idle.
  EXPECT_THAT(r.out.substr(0, second), HasSubstr(" -"));
  EXPECT_THAT(r.out.substr(second), HasSubstr("0.0"));
  EXPECT_TRUE(r.err.empty()) << r.err;
}

TEST_F(SbctlTest, TopJsonFramesHaveRatesPerEdgeAndNamespace) {
  FillStats(&fake_.stats_resp);
  fake_.stats_grow = true;
  auto r = Run({"--json", "top", "--interval-ms", "100", "--iterations", "3"});
  ASSERT_EQ(r.rc, 0) << r.err;
  auto lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 3u) << r.out;
  auto first = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(first["broker_id"], "broker-1");
  EXPECT_EQ(first["sockets"], 7);
  ASSERT_EQ(first["edges"].size(), 2u);
  EXPECT_EQ(first["edges"][0]["edge_id"], "edge-a");
  EXPECT_EQ(first["edges"][0]["sockets"], 4);
  EXPECT_TRUE(first["edges"][0]["in_per_second"].is_null()) << lines[0];
  for (size_t i = 1; i < 3; ++i) {
    auto frame = nlohmann::json::parse(lines[i]);
    // 10 in, 20 out per ~100 ms on edge-a and /chat; nothing on edge-b.
    double in = frame["edges"][0]["in_per_second"].get<double>();
    double out = frame["edges"][0]["out_per_second"].get<double>();
    EXPECT_GT(in, 0) << lines[i];
    EXPECT_LE(in, 101) << lines[i];
    EXPECT_GT(out, in) << lines[i];
    EXPECT_EQ(frame["edges"][1]["in_per_second"].get<double>(), 0) << lines[i];
    EXPECT_EQ(frame["namespaces"][0]["namespace"], "/chat");
    EXPECT_GT(frame["namespaces"][0]["in_per_second"].get<double>(), 0) << lines[i];
  }
}

TEST_F(SbctlTest, TopFailsWhenTheFirstCallFails) {
  fake_.fail = grpc::Status(grpc::StatusCode::UNAVAILABLE, "no broker");
  auto r = Run({"top", "--iterations", "1"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.err, "sbctl: UNAVAILABLE: no broker\n");
}

TEST(SbctlNoServer, UnreachableServerIsUnavailable) {
  // Port 1 on loopback: nothing listens there.
  auto r = RunSbctl({"--server", "127.0.0.1:1", "--timeout", "5", "stats"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_THAT(r.err, HasSubstr("sbctl: UNAVAILABLE: "));
}

TEST(SbctlNoServer, UsageErrorsExitTwo) {
  EXPECT_EQ(RunSbctl({}).rc, 2);
  EXPECT_EQ(RunSbctl({"frobnicate"}).rc, 2);
  EXPECT_EQ(RunSbctl({"publish"}).rc, 2);            // --event is required
  EXPECT_EQ(RunSbctl({"presence"}).rc, 2);           // USER is required
  EXPECT_EQ(RunSbctl({"join", "--room", "a"}).rc, 2);  // ROOM is required
  EXPECT_EQ(RunSbctl({"--help"}).rc, 0);
}

// (sbctl against a real TLS / mutual TLS server: tests/services/api_auth_test.cc.)
TEST(SbctlNoServer, TlsUsageErrorsExitTwo) {
  auto half = RunSbctl({"--tls-key", "/dev/null", "stats"});
  EXPECT_EQ(half.rc, 2);
  EXPECT_THAT(half.err, HasSubstr("--tls-cert and --tls-key go together"));
  EXPECT_EQ(RunSbctl({"--tls-ca", "/nonexistent/ca.pem", "stats"}).rc, 2);
  EXPECT_EQ(RunSbctl({"--tls-cert", "/nonexistent/c.pem", "--tls-key", "/dev/null", "stats"}).rc,
            2);
}

// Any TLS option turns TLS on: against a plaintext server the handshake fails.
TEST_F(SbctlTest, TlsOptionsImplyTls) {
  auto r = Run({"--timeout", "5", "--tls-server-name", "switchboard.test", "stats"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_THAT(r.err, HasSubstr("sbctl: UNAVAILABLE"));
  EXPECT_TRUE(Calls().empty());
}

// ---- publish ----

TEST_F(SbctlTest, PublishMapsEveryOption) {
  fake_.publish_resp.set_recipients(2);
  auto* ack = fake_.publish_resp.add_acks();
  ack->set_socket_id("sock-1");
  ack->add_args()->set_json("{\"ok\":true}");
  ack->add_args()->set_binary(std::string("\x00\x01\x02", 3));
  auto* late = fake_.publish_resp.add_acks();
  late->set_socket_id("sock-2");
  late->set_error("timeout");

  auto r = Run({"publish", "--ns", "/chat", "--room", "r1", "--room", "r2", "--socket", "s1",
                "--user", "u1", "--user", "u2", "--except", "muted", "--except-socket", "s9",
                "--event", "news", "--arg", "{\"a\": [1, 2]}", "--arg", "\"text\"", "--arg",
                "42", "--volatile", "--ack-timeout", "1500"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(Calls(), std::vector<std::string>{"Publish"});

  pb::PublishRequest want;
  auto* t = want.mutable_target();
  t->set_namespace_("/chat");
  t->add_rooms("r1");
  t->add_rooms("r2");
  t->add_socket_ids("s1");
  t->add_user_ids("u1");
  t->add_user_ids("u2");
  t->add_except_rooms("muted");
  t->add_except_socket_ids("s9");
  want.set_event("news");
  want.add_args()->set_json("{\"a\": [1, 2]}");
  want.add_args()->set_json("\"text\"");
  want.add_args()->set_json("42");
  want.set_volatile_(true);
  want.set_ack_timeout_ms(1500);
  EXPECT_TRUE(MessageDifferencer::Equals(fake_.publish_req, want))
      << fake_.publish_req.DebugString();

  EXPECT_THAT(r.out, HasSubstr("recipients: 2"));
  EXPECT_THAT(r.out, HasSubstr("sock-1"));
  EXPECT_THAT(r.out, HasSubstr("{\"ok\":true}"));
  EXPECT_THAT(r.out, HasSubstr("<3 bytes>"));
  EXPECT_THAT(r.out, HasSubstr("error: timeout"));
}

TEST_F(SbctlTest, PublishMinimalUsesDefaults) {
  auto r = Run({"publish", "--event", "ping"});
  ASSERT_EQ(r.rc, 0) << r.err;
  pb::PublishRequest want;
  want.mutable_target();  // present, all empty: the whole "/" namespace
  want.set_event("ping");
  EXPECT_TRUE(MessageDifferencer::Equals(fake_.publish_req, want))
      << fake_.publish_req.DebugString();
  EXPECT_THAT(r.out, HasSubstr("recipients: 0"));
}

TEST_F(SbctlTest, PublishJson) {
  fake_.publish_resp.set_recipients(9);
  auto r = Run({"--json", "publish", "--event", "e", "--arg", "null"});
  ASSERT_EQ(r.rc, 0) << r.err;
  auto parsed = ParseJson<pb::PublishResponse>(r.out);
  EXPECT_EQ(parsed.recipients(), 9u);
}

TEST_F(SbctlTest, PublishBadArgIsRejectedLocally) {
  for (const char* bad : {"{oops", "text-without-quotes", "[1,", ""}) {
    auto r = Run({"publish", "--event", "e", "--arg", "1", "--arg", bad});
    EXPECT_EQ(r.rc, 2) << bad;
    EXPECT_THAT(r.err, HasSubstr("--arg #2 is not valid JSON")) << bad;
  }
  EXPECT_TRUE(Calls().empty());  // nothing was sent
}

// ---- join / leave / disconnect ----

TEST_F(SbctlTest, JoinMapsSelectorAndRooms) {
  auto r = Run({"join", "--ns", "/chat", "--room", "lobby", "--socket", "s1", "--user", "u1",
                "vip", "staff"});
  ASSERT_EQ(r.rc, 0) << r.err;
  pb::JoinRoomsRequest want;
  auto* sel = want.mutable_selector();
  sel->set_namespace_("/chat");
  sel->add_rooms("lobby");
  sel->add_socket_ids("s1");
  sel->add_user_ids("u1");
  want.add_rooms("vip");
  want.add_rooms("staff");
  EXPECT_TRUE(MessageDifferencer::Equals(fake_.join_req, want)) << fake_.join_req.DebugString();
  EXPECT_THAT(r.out, HasSubstr("matched sockets: 3"));
}

TEST_F(SbctlTest, LeaveJson) {
  auto r = Run({"--json", "leave", "--user", "u1", "vip"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(fake_.leave_req.selector().user_ids_size(), 1);
  EXPECT_EQ(fake_.leave_req.selector().user_ids(0), "u1");
  EXPECT_TRUE(fake_.leave_req.selector().namespace_().empty());
  ASSERT_EQ(fake_.leave_req.rooms_size(), 1);
  EXPECT_EQ(fake_.leave_req.rooms(0), "vip");
  EXPECT_EQ(ParseJson<pb::LeaveRoomsResponse>(r.out).matched_sockets(), 4u);
}

TEST_F(SbctlTest, JoinWithoutSelectorIsUsageError) {
  auto r = Run({"join", "vip"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_THAT(r.err, HasSubstr("at least one of --room, --socket, --user"));
  EXPECT_TRUE(Calls().empty());
}

TEST_F(SbctlTest, DisconnectClose) {
  auto r = Run({"disconnect", "--ns", "/admin", "--socket", "s1", "--socket", "s2", "--close"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(fake_.disconnect_req.selector().namespace_(), "/admin");
  ASSERT_EQ(fake_.disconnect_req.selector().socket_ids_size(), 2);
  EXPECT_EQ(fake_.disconnect_req.selector().socket_ids(1), "s2");
  EXPECT_TRUE(fake_.disconnect_req.close());
  EXPECT_THAT(r.out, HasSubstr("matched sockets: 5"));

  r = Run({"disconnect", "--room", "r"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_FALSE(fake_.disconnect_req.close());

  r = Run({"disconnect", "--close"});
  EXPECT_EQ(r.rc, 2);
}

// ---- sockets / rooms / presence ----

TEST_F(SbctlTest, SocketsFollowsPagesAndFilters) {
  pb::ListSocketsResponse p0;
  *p0.add_sockets() = MakeSocket("sock-1", "alice");
  p0.set_next_page_token("1");
  pb::ListSocketsResponse p1;
  *p1.add_sockets() = MakeSocket("sock-2", "bob");
  fake_.sockets_pages = {p0, p1};

  auto r = Run({"sockets", "--ns", "/chat", "--room", "lobby", "--user", "alice"});
  ASSERT_EQ(r.rc, 0) << r.err;
  ASSERT_EQ(fake_.sockets_reqs.size(), 2u);
  for (const auto& req : fake_.sockets_reqs) {
    EXPECT_EQ(req.namespace_(), "/chat");
    EXPECT_EQ(req.room(), "lobby");
    EXPECT_EQ(req.user_id(), "alice");
    EXPECT_GT(req.page_size(), 0u);
  }
  EXPECT_EQ(fake_.sockets_reqs[0].page_token(), "");
  EXPECT_EQ(fake_.sockets_reqs[1].page_token(), "1");
  EXPECT_THAT(r.out, HasSubstr("sock-1"));
  EXPECT_THAT(r.out, HasSubstr("sock-2"));
  EXPECT_THAT(r.out, HasSubstr("websocket"));
  EXPECT_THAT(r.out, HasSubstr("10.0.0.1:5555"));
  EXPECT_THAT(r.out, HasSubstr("lobby,r2"));
  EXPECT_THAT(r.out, HasSubstr("2023-11-14T22:13:20Z"));

  r = Run({"--json", "sockets"});
  ASSERT_EQ(r.rc, 0) << r.err;
  auto parsed = ParseJson<pb::ListSocketsResponse>(r.out);
  ASSERT_EQ(parsed.sockets_size(), 2);
  EXPECT_TRUE(MessageDifferencer::Equals(parsed.sockets(1), p1.sockets(0)));
  EXPECT_TRUE(parsed.next_page_token().empty());
}

TEST_F(SbctlTest, Rooms) {
  auto* room = fake_.rooms_resp.add_rooms();
  room->set_namespace_("/chat");
  room->set_name("game:42");
  room->set_members(17);
  auto r = Run({"rooms", "--ns", "/chat", "--prefix", "game:"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(fake_.rooms_req.namespace_(), "/chat");
  EXPECT_EQ(fake_.rooms_req.prefix(), "game:");
  EXPECT_THAT(r.out, HasSubstr("game:42"));
  EXPECT_THAT(r.out, HasSubstr("17"));

  r = Run({"rooms", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(fake_.rooms_req.namespace_().empty());
  EXPECT_EQ(ParseJson<pb::ListRoomsResponse>(r.out).rooms(0).members(), 17u);
}

TEST_F(SbctlTest, Presence) {
  auto r = Run({"presence", "alice"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(fake_.presence_req.user_id(), "alice");
  EXPECT_THAT(r.out, HasSubstr("user alice: offline"));

  fake_.presence_resp.set_online(true);
  *fake_.presence_resp.add_sockets() = MakeSocket("sock-1", "alice");
  r = Run({"presence", "alice"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("user alice: online, 1 socket"));
  EXPECT_THAT(r.out, HasSubstr("sock-1"));

  r = Run({"--json", "presence", "alice"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(ParseJson<pb::GetPresenceResponse>(r.out).online());
}

// ---- the proto itself ----

TEST(SwitchboardProto, ArgumentsRoundTripBinaryAndJson) {
  pb::PublishRequest req;
  req.mutable_target()->set_namespace_("/chat");
  req.mutable_target()->add_rooms("any string is legal. * > \xe2\x9c\x93");
  req.set_event("news");
  req.add_args()->set_json("{\"a\":[1,2,{\"b\":null}]}");
  req.add_args()->set_binary(std::string("\x00\xff\x10zz", 5));
  req.add_args()->set_json("\"s\"");
  req.set_volatile_(true);

  // Binary wire format.
  pb::PublishRequest wire;
  ASSERT_TRUE(wire.ParseFromString(req.SerializeAsString()));
  EXPECT_TRUE(MessageDifferencer::Equals(wire, req));
  ASSERT_EQ(wire.args_size(), 3);
  EXPECT_EQ(wire.args(0).value_case(), pb::Argument::kJson);
  EXPECT_EQ(wire.args(1).value_case(), pb::Argument::kBinary);
  EXPECT_EQ(wire.args(1).binary(), std::string("\x00\xff\x10zz", 5));

  // Proto JSON: the JSON argument is carried as text, the binary one as base64.
  std::string json;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(req, &json).ok());
  EXPECT_THAT(json, HasSubstr("\"namespace\":\"/chat\""));
  EXPECT_THAT(json, HasSubstr("\"volatile\":true"));
  EXPECT_THAT(json, HasSubstr("\"binary\":\"AP8Qeno=\""));
  EXPECT_THAT(json, HasSubstr(R"("json":"{\"a\":[1,2,{\"b\":null}]}")"));
  pb::PublishRequest back;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &back).ok());
  EXPECT_TRUE(MessageDifferencer::Equals(back, req)) << back.DebugString();
}

}  // namespace
