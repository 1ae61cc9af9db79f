// The gRPC API server against a real Broker on an in-process bus, over real gRPC on 127.0.0.1.
// A fake edge in the test announces sockets on the membership stream (and answers snapshot
// requests), records every EdgeMessage the broker publishes, and answers deliveries that ask for
// acks with AckReports.

#include "services/api_server.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/unknown_field_set.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <google/protobuf/util/time_util.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <functional>
#include <future>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "broker/broker.h"
#include "bus/inproc_bus.h"
#include "bus/routing.h"
#include "switchboard/v1/bus.pb.h"
#include "switchboard/v1/switchboard.grpc.pb.h"
#include "tests/sbctl/run_program.h"

extern char** environ;

namespace switchboard::services {
namespace {

namespace pb = ::switchboard::v1;
using google::protobuf::util::MessageDifferencer;
using google::protobuf::util::TimeUtil;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;
using namespace std::chrono_literals;

constexpr char kBrokerId[] = "brokerA";
constexpr char kEdgeId[] = "edgeA";
constexpr uint32_t kMaxAckTimeoutMs = 5'000;

// Polls `pred` until it holds or `timeout` passes.
bool WaitUntil(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 5s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

// ---- the fake edge ----------------------------------------------------------------------------

struct Recorded {
  std::string subject;
  pb::EdgeMessage message;
};

class FakeEdge {
 public:
  FakeEdge(bus::Bus& bus, std::string edge_id)
      : bus_(bus), edge_id_(std::move(edge_id)), incarnation_(bus::RandomNodeId()) {}
  ~FakeEdge() {
    snapshot_sub_.reset();
    all_sub_.reset();
  }

  void Start() {
    auto snap = bus_.Subscribe(bus::SnapshotSubject(edge_id_),
                               [this](bus::Message m) { OnSnapshotRequest(std::move(m)); });
    ASSERT_TRUE(snap.ok()) << snap.status();
    snapshot_sub_ = *std::move(snap);
    auto all = bus_.Subscribe("sb.v1.>", [this](bus::Message m) { OnMessage(std::move(m)); });
    ASSERT_TRUE(all.ok()) << all.status();
    all_sub_ = *std::move(all);
    Heartbeat();
  }

  const std::string& id() const { return edge_id_; }

  // Connects socket "<edge>.<local>" to `nsp` and makes it join `rooms`.
  std::string Connect(const std::string& nsp, const std::string& local, const std::string& user,
                      const std::vector<std::string>& rooms = {},
                      const std::string& remote_address = "10.0.0.1:5000") {
    std::lock_guard lock(mu_);
    pb::SocketInfo info;
    info.set_id(bus::MakeSocketId(edge_id_, local));
    info.set_edge_id(edge_id_);
    info.set_user_id(user);
    info.set_namespace_(nsp);
    info.set_transport(pb::TRANSPORT_WEBSOCKET);
    info.set_remote_address(remote_address);
    *info.mutable_connected_at() = TimeUtil::GetCurrentTime();
    sockets_[info.id()] = info;
    pb::MembershipEvent event;
    *event.mutable_connected()->mutable_socket() = info;
    PublishLocked(std::move(event));
    for (const auto& room : rooms) JoinLocked(info.id(), room);
    return info.id();
  }

  void Join(const std::string& socket_id, const std::string& room) {
    std::lock_guard lock(mu_);
    JoinLocked(socket_id, room);
  }

  void Disconnect(const std::string& socket_id) {
    std::lock_guard lock(mu_);
    auto it = sockets_.find(socket_id);
    ASSERT_NE(it, sockets_.end());
    pb::MembershipEvent event;
    auto* d = event.mutable_disconnected();
    d->set_socket_id(socket_id);
    d->set_namespace_(it->second.namespace_());
    d->set_user_id(it->second.user_id());
    d->set_reason("transport close");
    sockets_.erase(it);
    PublishLocked(std::move(event));
  }

  // Counters reported in heartbeats (and snapshots).
  void SetMessageCounts(uint64_t in, uint64_t out) {
    std::lock_guard lock(mu_);
    messages_in_ = in;
    messages_out_ = out;
  }
  void Heartbeat() {
    std::lock_guard lock(mu_);
    auto hb = HeartbeatLocked();
    ASSERT_TRUE(bus_.Publish(bus::HeartbeatSubject(edge_id_), hb.SerializeAsString()).ok());
  }

  // false: deliveries that ask for acks are never answered.
  void set_answer_acks(bool answer) {
    std::lock_guard lock(mu_);
    answer_acks_ = answer;
  }

  std::vector<Recorded> messages() {
    std::lock_guard lock(mu_);
    return messages_;
  }
  // Waits until at least `n` EdgeMessages were seen.
  bool WaitForMessages(size_t n, std::chrono::milliseconds timeout = 5s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return messages_.size() >= n; });
  }
  void ClearMessages() {
    std::lock_guard lock(mu_);
    messages_.clear();
  }
  int snapshot_requests() {
    std::lock_guard lock(mu_);
    return snapshot_requests_;
  }

 private:
  void JoinLocked(const std::string& socket_id, const std::string& room) {
    auto& info = sockets_.at(socket_id);
    info.add_rooms(room);
    std::sort(info.mutable_rooms()->begin(), info.mutable_rooms()->end());
    pb::MembershipEvent event;
    auto* j = event.mutable_joined();
    j->set_socket_id(socket_id);
    j->set_namespace_(info.namespace_());
    j->set_user_id(info.user_id());
    j->set_room(room);
    PublishLocked(std::move(event));
  }

  void PublishLocked(pb::MembershipEvent event) {
    event.set_edge_id(edge_id_);
    event.set_incarnation(incarnation_);
    event.set_seq(++seq_);
    *event.mutable_time() = TimeUtil::GetCurrentTime();
    auto status = bus_.Publish(bus::MembershipSubject(edge_id_), event.SerializeAsString());
    EXPECT_TRUE(status.ok()) << status;
  }

  pb::Heartbeat HeartbeatLocked() const {
    pb::Heartbeat hb;
    hb.set_edge_id(edge_id_);
    hb.set_incarnation(incarnation_);
    hb.set_last_seq(seq_);
    std::set<std::string> users;
    std::set<std::pair<std::string, std::string>> rooms;
    std::map<std::string, pb::Counts> per_ns;
    for (const auto& [id, s] : sockets_) {
      if (!s.user_id().empty()) users.insert(s.user_id());
      for (const auto& r : s.rooms()) rooms.emplace(s.namespace_(), r);
      per_ns[s.namespace_()].set_sockets(per_ns[s.namespace_()].sockets() + 1);
    }
    hb.mutable_totals()->set_sockets(sockets_.size());
    hb.mutable_totals()->set_users(users.size());
    hb.mutable_totals()->set_rooms(rooms.size());
    hb.mutable_totals()->set_messages_in(messages_in_);
    hb.mutable_totals()->set_messages_out(messages_out_);
    for (const auto& [nsp, counts] : per_ns) {
      auto* n = hb.add_namespaces();
      n->set_namespace_(nsp);
      *n->mutable_counts() = counts;
    }
    *hb.mutable_time() = TimeUtil::GetCurrentTime();
    hb.set_interval_ms(2000);
    return hb;
  }

  void OnSnapshotRequest(bus::Message m) {
    std::lock_guard lock(mu_);
    ++snapshot_requests_;
    pb::Snapshot snap;
    snap.set_edge_id(edge_id_);
    snap.set_incarnation(incarnation_);
    snap.set_seq(seq_);
    for (const auto& [id, s] : sockets_) *snap.add_sockets()->mutable_socket() = s;
    *snap.mutable_heartbeat() = HeartbeatLocked();
    if (!m.reply_to.empty()) {
      EXPECT_TRUE(bus_.Publish(m.reply_to, snap.SerializeAsString()).ok());
    }
  }

  static bool IsTargetSubject(const std::string& subject) {
    for (const char* prefix : {"sb.v1.room.", "sb.v1.ns.", "sb.v1.user.", "sb.v1.sock."}) {
      if (subject.rfind(prefix, 0) == 0) return true;
    }
    return false;
  }

  bool Targets(const pb::Target& t, const pb::SocketInfo& s) const {
    std::string nsp = t.namespace_().empty() ? "/" : t.namespace_();
    if (s.namespace_() != nsp) return false;
    auto in_room = [&](const std::string& room) {
      return room == s.id() ||
             std::find(s.rooms().begin(), s.rooms().end(), room) != s.rooms().end();
    };
    bool match = t.rooms().empty() && t.socket_ids().empty() && t.user_ids().empty();
    for (const auto& r : t.rooms()) match = match || in_room(r);
    for (const auto& id : t.socket_ids()) match = match || id == s.id();
    for (const auto& u : t.user_ids()) match = match || (!s.user_id().empty() && u == s.user_id());
    if (!match) return false;
    for (const auto& r : t.except_rooms()) {
      if (in_room(r)) return false;
    }
    for (const auto& id : t.except_socket_ids()) {
      if (id == s.id()) return false;
    }
    return true;
  }

  void OnMessage(bus::Message m) {
    if (!IsTargetSubject(m.subject)) return;
    pb::EdgeMessage message;
    ASSERT_TRUE(message.ParseFromString(m.payload)) << m.subject;
    std::lock_guard lock(mu_);
    messages_.push_back({m.subject, message});
    cv_.notify_all();
    if (!message.has_delivery()) return;
    const auto& d = message.delivery();
    if (d.ack_timeout_ms() == 0 || !answer_acks_) return;
    constexpr std::string_view kSock = "sb.v1.sock.";
    if (m.subject.rfind(kSock, 0) == 0 &&
        bus::EdgeOfSocketId(std::string_view(m.subject).substr(kSock.size())) != edge_id_) {
      return;
    }
    if (!acked_.insert(d.id()).second) return;  // one report per delivery
    pb::AckReport report;
    report.set_delivery_id(d.id());
    report.set_edge_id(edge_id_);
    for (const auto& [id, s] : sockets_) {
      if (!Targets(d.target(), s)) continue;
      auto* ack = report.add_acks();
      ack->set_socket_id(id);
      ack->add_args()->set_json("\"ack:" + id + "\"");
    }
    report.set_recipients(report.acks_size());
    if (report.recipients() == 0) return;
    EXPECT_TRUE(bus_.Publish(d.ack_subject(), report.SerializeAsString()).ok());
  }

  bus::Bus& bus_;
  const std::string edge_id_;
  const std::string incarnation_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t seq_ = 0;
  std::map<std::string, pb::SocketInfo> sockets_;
  uint64_t messages_in_ = 0;
  uint64_t messages_out_ = 0;
  bool answer_acks_ = true;
  int snapshot_requests_ = 0;
  std::set<std::string> acked_;
  std::vector<Recorded> messages_;
  bus::SubscriptionPtr snapshot_sub_;
  bus::SubscriptionPtr all_sub_;
};

// ---- raw gRPC helpers (no generated code for health / reflection on Debian) ---------------------

grpc::ByteBuffer ToByteBuffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

std::string FromByteBuffer(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  std::string out;
  for (const auto& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// A protobuf length-delimited field, encoded by hand.
std::string StringField(int field, const std::string& value) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.WriteTag(static_cast<uint32_t>(field) << 3 | 2);
    coded.WriteVarint32(static_cast<uint32_t>(value.size()));
    coded.WriteString(value);
  }
  return out;
}

std::unique_ptr<google::protobuf::UnknownFieldSet> ParseFields(const std::string& bytes) {
  auto fields = std::make_unique<google::protobuf::UnknownFieldSet>();
  EXPECT_TRUE(fields->ParseFromString(bytes));
  return fields;
}

// grpc.health.v1.Health/Check: the ServingStatus (1 SERVING, 2 NOT_SERVING), or the error.
absl::StatusOr<int> HealthCheck(const std::shared_ptr<grpc::Channel>& channel,
                                const std::string& service) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 5s);
  grpc::ByteBuffer request = ToByteBuffer(StringField(1, service));
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  grpc::Status status = done.get_future().get();
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  }
  auto fields = ParseFields(FromByteBuffer(response));
  for (int i = 0; i < fields->field_count(); ++i) {
    if (fields->field(i).number() == 1) return static_cast<int>(fields->field(i).varint());
  }
  return 0;  // UNKNOWN (proto3 default, not encoded)
}

// One request / one response on grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo.
absl::StatusOr<std::string> ReflectionCall(const std::shared_ptr<grpc::Channel>& channel,
                                           const std::string& request) {
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 5s);
  auto call =
      stub.PrepareCall(&ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  auto wait = [&cq](intptr_t want) {
    void* tag = nullptr;
    bool ok = false;
    EXPECT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(reinterpret_cast<intptr_t>(tag), want);
    return ok;
  };
  call->StartCall(reinterpret_cast<void*>(1));
  bool ok = wait(1);
  grpc::ByteBuffer out = ToByteBuffer(request);
  if (ok) {
    call->Write(out, reinterpret_cast<void*>(2));
    ok = wait(2);
  }
  grpc::ByteBuffer in;
  bool got = false;
  if (ok) {
    call->WritesDone(reinterpret_cast<void*>(3));
    wait(3);
    call->Read(&in, reinterpret_cast<void*>(4));
    got = wait(4);
  }
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  wait(5);
  cq.Shutdown();
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  }
  if (!got) return absl::InternalError("no reflection response");
  return FromByteBuffer(in);
}

// ---- sbctl ---------------------------------------------------------------------------------

using testing_support::RunProgram;

// ---- fixture ---------------------------------------------------------------------------------

class ApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    bus_ = std::make_unique<bus::InProcessBus>();
    broker::BrokerOptions options;
    options.broker_id = kBrokerId;
    options.edge_timeout = 60s;  // the fake edge does not heartbeat on a timer
    options.tick = 50ms;
    options.snapshot_timeout = 1s;
    options.max_ack_timeout_ms = kMaxAckTimeoutMs;
    options.ack_grace = 200ms;
    auto broker = broker::Broker::Start(*bus_, options);
    ASSERT_TRUE(broker.ok()) << broker.status();
    broker_ = *std::move(broker);
    edge_ = std::make_unique<FakeEdge>(*bus_, kEdgeId);
    edge_->Start();
    StartServer({});
  }

  void TearDown() override {
    stub_.reset();
    channel_.reset();
    server_.reset();
    broker_.reset();
    edge_.reset();
    bus_.reset();
  }

  void StartServer(ApiServerOptions options) {
    options.host = "127.0.0.1";
    options.port = 0;
    auto server = ApiServer::Start(*broker_, std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_NE(server_->port(), 0);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = pb::Switchboard::NewStub(channel_);
  }

  std::unique_ptr<grpc::ClientContext> Ctx(std::chrono::milliseconds timeout = 5s) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + timeout);
    return ctx;
  }

  uint64_t IndexedSockets() {
    auto stats = broker_->GetStats({});
    return stats.ok() ? stats->totals().sockets() : 0;
  }

  // "/":     s1 (alice; lobby, vip), s2 (bob; lobby), s3 (anonymous)
  // "/chat": s4 (alice; general)
  void Populate() {
    s1_ = edge_->Connect("/", "s1", "alice", {"lobby", "vip"}, "10.0.0.1:1001");
    s2_ = edge_->Connect("/", "s2", "bob", {"lobby"}, "10.0.0.2:1002");
    s3_ = edge_->Connect("/", "s3", "", {}, "10.0.0.3:1003");
    s4_ = edge_->Connect("/chat", "s4", "alice", {"general"}, "10.0.0.1:1004");
    edge_->SetMessageCounts(7, 9);
    edge_->Heartbeat();
    ASSERT_TRUE(WaitUntil([&] {
      auto rooms = broker_->ListRooms({});
      return IndexedSockets() == 4 && rooms.ok() && rooms->rooms_size() == 3;
    })) << "the broker's index never saw the fake edge's sockets";
  }

  // Publish straight to the broker (no acks: completes inline).
  absl::Status BrokerPublish(const pb::PublishRequest& req) {
    std::promise<absl::Status> done;
    broker_->Publish(
        req, [&done](absl::StatusOr<pb::PublishResponse> r) { done.set_value(r.status()); });
    return done.get_future().get();
  }

  // Expects INVALID_ARGUMENT from the API, with the broker's own code and message.
  void ExpectPublishInvalid(const pb::PublishRequest& req) {
    SCOPED_TRACE(req.ShortDebugString());
    pb::PublishResponse resp;
    auto ctx = Ctx();
    grpc::Status status = stub_->Publish(ctx.get(), req, &resp);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_FALSE(status.error_message().empty());
    absl::Status direct = BrokerPublish(req);
    EXPECT_EQ(static_cast<int>(direct.code()), static_cast<int>(status.error_code()));
    EXPECT_EQ(std::string(direct.message()), status.error_message());
  }

  std::unique_ptr<bus::InProcessBus> bus_;
  std::unique_ptr<broker::Broker> broker_;
  std::unique_ptr<FakeEdge> edge_;
  std::unique_ptr<ApiServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::Switchboard::Stub> stub_;
  std::string s1_, s2_, s3_, s4_;
};

pb::PublishRequest MakePublish(const std::string& nsp, const std::string& event) {
  pb::PublishRequest req;
  req.mutable_target()->set_namespace_(nsp);
  req.set_event(event);
  req.add_args()->set_json(R"({"a":1})");
  return req;
}

std::vector<std::string> Subjects(const std::vector<Recorded>& messages) {
  std::vector<std::string> out;
  for (const auto& m : messages) out.push_back(m.subject);
  return out;
}

// ---- start / stop ----------------------------------------------------------------------------

TEST(ApiServerStartTest, RejectsBadHosts) {
  bus::InProcessBus bus;
  auto broker = broker::Broker::Start(bus, {});
  ASSERT_TRUE(broker.ok()) << broker.status();
  for (const char* host : {"", "bad host", "999.1.1.1", "1.2.3", "::zz", "-x.example", "a..b"}) {
    SCOPED_TRACE(host);
    ApiServerOptions options;
    options.host = host;
    options.port = 0;
    auto server = ApiServer::Start(**broker, std::move(options));
    ASSERT_FALSE(server.ok());
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument) << server.status();
  }
}

TEST(ApiServerStartTest, PortInUseIsUnavailable) {
  bus::InProcessBus bus;
  auto broker = broker::Broker::Start(bus, {});
  ASSERT_TRUE(broker.ok()) << broker.status();
  auto first = ApiServer::Start(**broker, {.host = "127.0.0.1", .port = 0});
  ASSERT_TRUE(first.ok()) << first.status();
  uint16_t port = (*first)->port();
  ASSERT_NE(port, 0);
  EXPECT_EQ((*first)->address(), absl::StrCat("127.0.0.1:", port));
  auto second = ApiServer::Start(**broker, {.host = "127.0.0.1", .port = port});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(second.status().message()),
              HasSubstr(absl::StrCat("cannot listen on 127.0.0.1:", port)));
}

TEST(ApiServerStartTest, BindsIpv6AndHostNames) {
  bus::InProcessBus bus;
  auto broker = broker::Broker::Start(bus, {});
  ASSERT_TRUE(broker.ok()) << broker.status();
  auto v6 = ApiServer::Start(**broker, {.host = "::1", .port = 0});
  if (v6.ok()) {  // IPv6 may be off in the sandbox
    EXPECT_EQ((*v6)->address(), absl::StrCat("[::1]:", (*v6)->port()));
  } else {
    EXPECT_EQ(v6.status().code(), absl::StatusCode::kUnavailable) << v6.status();
  }
  auto named = ApiServer::Start(**broker, {.host = "localhost", .port = 0});
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_NE((*named)->port(), 0);
}

TEST_F(ApiServerTest, ShutdownIsIdempotentAndRefusesCalls) {
  server_->Shutdown(100ms);
  server_->Shutdown(100ms);
  pb::GetStatsResponse resp;
  auto ctx = Ctx(1s);
  EXPECT_EQ(stub_->GetStats(ctx.get(), {}, &resp).error_code(), grpc::StatusCode::UNAVAILABLE);
}

// ---- Publish -----------------------------------------------------------------------------------

TEST_F(ApiServerTest, PublishRejectsBadInputWithBrokerStatus) {
  Populate();
  {
    auto req = MakePublish("/", "");
    ExpectPublishInvalid(req);
  }
  {
    auto req = MakePublish("/", "connect");  // reserved
    ExpectPublishInvalid(req);
  }
  {
    auto req = MakePublish("/", "news");
    req.add_args()->set_json("{not json");
    ExpectPublishInvalid(req);
  }
  {
    auto req = MakePublish("/", "news");
    req.add_args();  // neither json nor binary
    ExpectPublishInvalid(req);
  }
  {
    auto req = MakePublish("/", "news");
    req.mutable_target()->add_socket_ids("no-dot-here");
    ExpectPublishInvalid(req);
  }
  {
    auto req = MakePublish("/", "news");
    req.mutable_target()->add_except_socket_ids("a.b.c");
    ExpectPublishInvalid(req);
  }
  {
    auto req = MakePublish("/", "news");
    req.set_volatile_(true);
    req.set_ack_timeout_ms(100);
    ExpectPublishInvalid(req);
  }
  {
    auto req = MakePublish("/", "news");
    req.set_ack_timeout_ms(kMaxAckTimeoutMs + 1);
    ExpectPublishInvalid(req);
  }
  // Nothing reached the bus.
  std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(edge_->messages().empty());
}

TEST_F(ApiServerTest, PublishSendsOneEdgeMessagePerSubject) {
  Populate();
  auto req = MakePublish("/", "news");
  req.mutable_target()->add_rooms("lobby");
  req.mutable_target()->add_rooms("vip");
  req.mutable_target()->add_user_ids("alice");
  req.mutable_target()->add_socket_ids(s3_);
  req.add_args()->set_binary(std::string("\0\1\2", 3));
  pb::PublishResponse resp;
  auto ctx = Ctx();
  grpc::Status status = stub_->Publish(ctx.get(), req, &resp);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(resp.recipients(), 3u);  // s1, s2, s3
  EXPECT_EQ(resp.acks_size(), 0);

  ASSERT_TRUE(edge_->WaitForMessages(4));
  std::this_thread::sleep_for(100ms);  // and no more
  auto messages = edge_->messages();
  EXPECT_THAT(Subjects(messages),
              UnorderedElementsAre(bus::RoomSubject("/", "lobby"), bus::RoomSubject("/", "vip"),
                                   bus::UserSubject("/", "alice"), bus::SocketSubject(s3_)));
  ASSERT_FALSE(messages.empty());
  ASSERT_TRUE(messages[0].message.has_delivery());
  const auto& d = messages[0].message.delivery();
  EXPECT_THAT(d.id(), ::testing::StartsWith(std::string(kBrokerId) + ":"));
  EXPECT_EQ(d.event(), "news");
  ASSERT_EQ(d.args_size(), 2);
  EXPECT_EQ(d.args(0).json(), R"({"a":1})");
  EXPECT_EQ(d.args(1).binary(), std::string("\0\1\2", 3));
  EXPECT_EQ(d.ack_timeout_ms(), 0u);
  EXPECT_EQ(d.target().rooms_size(), 2);
  for (const auto& m : messages) {
    ASSERT_TRUE(m.message.has_delivery()) << m.subject;
    EXPECT_TRUE(MessageDifferencer::Equals(m.message.delivery(), d)) << m.subject;
  }
}

TEST_F(ApiServerTest, PublishToNamespaceAndSockets) {
  Populate();
  {
    auto req = MakePublish("/chat", "hello");
    pb::PublishResponse resp;
    auto ctx = Ctx();
    ASSERT_TRUE(stub_->Publish(ctx.get(), req, &resp).ok());
    EXPECT_EQ(resp.recipients(), 1u);
    ASSERT_TRUE(edge_->WaitForMessages(1));
  }
  {
    // Two sockets: one message on each socket's subject (either may have moved
    // off the edge its id names). Empty namespace is "/".
    auto req = MakePublish("", "hello");
    req.mutable_target()->add_socket_ids(s1_);
    req.mutable_target()->add_socket_ids(s2_);
    req.mutable_target()->add_except_socket_ids(s2_);
    pb::PublishResponse resp;
    auto ctx = Ctx();
    ASSERT_TRUE(stub_->Publish(ctx.get(), req, &resp).ok());
    EXPECT_EQ(resp.recipients(), 1u);
    ASSERT_TRUE(edge_->WaitForMessages(3));
  }
  std::this_thread::sleep_for(100ms);
  std::vector<std::string> sockets = {bus::SocketSubject(s1_), bus::SocketSubject(s2_)};
  std::sort(sockets.begin(), sockets.end());
  EXPECT_THAT(Subjects(edge_->messages()),
              ElementsAre(bus::NamespaceSubject("/chat"), sockets[0], sockets[1]));
}

TEST_F(ApiServerTest, PublishWithAcksReturnsTheEdgesAcks) {
  Populate();
  auto req = MakePublish("/", "question");
  req.mutable_target()->add_rooms("lobby");
  req.set_ack_timeout_ms(3000);
  pb::PublishResponse resp;
  auto ctx = Ctx();
  auto start = std::chrono::steady_clock::now();
  grpc::Status status = stub_->Publish(ctx.get(), req, &resp);
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_LT(elapsed, 2500ms) << "the broker should answer once every edge reported";
  EXPECT_EQ(resp.recipients(), 2u);
  std::vector<std::string> acked;
  for (const auto& ack : resp.acks()) {
    EXPECT_TRUE(ack.error().empty()) << ack.error();
    ASSERT_EQ(ack.args_size(), 1);
    EXPECT_EQ(ack.args(0).json(), "\"ack:" + ack.socket_id() + "\"");
    acked.push_back(ack.socket_id());
  }
  EXPECT_THAT(acked, UnorderedElementsAre(s1_, s2_));
  auto messages = edge_->messages();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].message.delivery().ack_timeout_ms(), 3000u);
  EXPECT_EQ(messages[0].message.delivery().ack_subject(), bus::AckSubject(kBrokerId));
}

TEST_F(ApiServerTest, PublishWithAcksHonoursTheClientDeadline) {
  Populate();
  edge_->set_answer_acks(false);
  auto req = MakePublish("/", "question");
  req.mutable_target()->add_rooms("lobby");
  req.set_ack_timeout_ms(kMaxAckTimeoutMs);
  pb::PublishResponse resp;
  auto ctx = Ctx(300ms);
  auto start = std::chrono::steady_clock::now();
  grpc::Status status = stub_->Publish(ctx.get(), req, &resp);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  // The server is still fine (the broker's late answer goes nowhere).
  pb::GetStatsResponse stats;
  auto ctx2 = Ctx();
  EXPECT_TRUE(stub_->GetStats(ctx2.get(), {}, &stats).ok());
}

TEST_F(ApiServerTest, ShutdownCutsPublishesWaitingForAcks) {
  Populate();
  edge_->set_answer_acks(false);
  auto req = MakePublish("/", "question");
  req.mutable_target()->add_rooms("lobby");
  req.set_ack_timeout_ms(kMaxAckTimeoutMs);
  std::promise<grpc::Status> result;
  pb::PublishResponse resp;
  auto ctx = Ctx(10s);
  std::thread caller([&] { result.set_value(stub_->Publish(ctx.get(), req, &resp)); });
  ASSERT_TRUE(edge_->WaitForMessages(1));
  auto start = std::chrono::steady_clock::now();
  server_->Shutdown(200ms);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  caller.join();
  EXPECT_FALSE(result.get_future().get().ok());
}

// ---- PublishStream -----------------------------------------------------------------------------

TEST_F(ApiServerTest, PublishStreamCountsInOrder) {
  Populate();
  pb::PublishStreamResponse resp;
  auto ctx = Ctx();
  auto writer = stub_->PublishStream(ctx.get(), &resp);
  auto a = MakePublish("/", "one");
  a.mutable_target()->add_rooms("lobby");  // 2
  auto b = MakePublish("/", "two");        // whole "/": 3
  auto c = MakePublish("/", "three");
  c.mutable_target()->add_socket_ids(s3_);  // 1
  ASSERT_TRUE(writer->Write(a));
  ASSERT_TRUE(writer->Write(b));
  ASSERT_TRUE(writer->Write(c));
  ASSERT_TRUE(writer->WritesDone());
  grpc::Status status = writer->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(resp.accepted(), 3u);
  EXPECT_EQ(resp.recipients(), 6u);
  ASSERT_TRUE(edge_->WaitForMessages(3));
  auto messages = edge_->messages();
  EXPECT_THAT(Subjects(messages), ElementsAre(bus::RoomSubject("/", "lobby"),
                                              bus::NamespaceSubject("/"), bus::SocketSubject(s3_)));
  std::vector<std::string> events;
  for (const auto& m : messages) events.push_back(m.message.delivery().event());
  EXPECT_THAT(events, ElementsAre("one", "two", "three"));
}

// While the deliveries are behind, the stream takes no further publish (the
// client is held back by flow control), and once they catch up it takes the
// rest, all of them, in order.
TEST_F(ApiServerTest, PublishStreamWaitsWhileDeliveriesAreBehind) {
  auto behind = std::make_shared<std::atomic<bool>>(true);
  server_.reset();
  StartServer({.deliveries_behind = [behind] { return behind->load(); }});
  Populate();
  constexpr int kCount = 1500;
  pb::PublishStreamResponse resp;
  auto ctx = Ctx(20s);
  auto writer = stub_->PublishStream(ctx.get(), &resp);
  std::atomic<int> written{0};
  // 10 KB each, 15 MB in all: more than flow control lets through unread
  // (gRPC grows the window to a few MB).
  const std::string padding = absl::StrCat("\"", std::string(10000, 'x'), "\"");
  std::thread publisher([&] {
    for (int i = 0; i < kCount; ++i) {
      auto req = MakePublish("/", absl::StrCat("e", i));
      req.add_args()->set_json(padding);
      if (!writer->Write(req)) return;
      written.fetch_add(1);
    }
    writer->WritesDone();
  });
  ASSERT_TRUE(edge_->WaitForMessages(1));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(edge_->messages().size(), 1u) << "publishes taken while the deliveries were behind";
  EXPECT_LT(written.load(), kCount) << "the publisher was not held back";

  behind->store(false);
  publisher.join();
  grpc::Status status = writer->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(written.load(), kCount);
  EXPECT_EQ(resp.accepted(), static_cast<uint64_t>(kCount));
  ASSERT_TRUE(edge_->WaitForMessages(kCount));
  auto messages = edge_->messages();
  ASSERT_EQ(messages.size(), static_cast<size_t>(kCount));
  for (int i = 0; i < kCount; ++i) {
    ASSERT_EQ(messages[i].message.delivery().event(), absl::StrCat("e", i));
  }
}

// A stream waiting for the deliveries ends when its client gives up, and
// the server still shuts down at once.
TEST_F(ApiServerTest, PublishStreamWaitingForDeliveriesEndsOnCancel) {
  server_.reset();
  StartServer({.deliveries_behind = [] { return true; }});
  Populate();
  pb::PublishStreamResponse resp;
  auto ctx = Ctx();
  auto writer = stub_->PublishStream(ctx.get(), &resp);
  ASSERT_TRUE(writer->Write(MakePublish("/", "first")));
  writer->Write(MakePublish("/", "second"));
  ASSERT_TRUE(edge_->WaitForMessages(1));
  ctx->TryCancel();
  EXPECT_EQ(writer->Finish().error_code(), grpc::StatusCode::CANCELLED);
  auto started = std::chrono::steady_clock::now();
  server_->Shutdown(5s);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 4s) << "the waiting call held the shutdown";
  EXPECT_EQ(edge_->messages().size(), 1u);
}

// A unary Publish has no stream to hold back: while the deliveries are behind
// it is refused with RESOURCE_EXHAUSTED (nothing reaches the bus), and taken
// again once they have caught up.
TEST_F(ApiServerTest, UnaryPublishIsRefusedWhileDeliveriesAreBehind) {
  auto behind = std::make_shared<std::atomic<bool>>(true);
  server_.reset();
  StartServer({.deliveries_behind = [behind] { return behind->load(); }});
  Populate();
  pb::PublishResponse resp;
  {
    auto ctx = Ctx();
    grpc::Status status = stub_->Publish(ctx.get(), MakePublish("/", "held"), &resp);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
    EXPECT_NE(status.error_message().find("behind"), std::string::npos) << status.error_message();
  }
  std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(edge_->messages().empty()) << "a refused publish reached the bus";

  behind->store(false);
  auto ctx = Ctx();
  grpc::Status status = stub_->Publish(ctx.get(), MakePublish("/", "taken"), &resp);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_TRUE(edge_->WaitForMessages(1));
  EXPECT_EQ(edge_->messages()[0].message.delivery().event(), "taken");
}

TEST_F(ApiServerTest, PublishStreamEmpty) {
  pb::PublishStreamResponse resp;
  auto ctx = Ctx();
  auto writer = stub_->PublishStream(ctx.get(), &resp);
  ASSERT_TRUE(writer->WritesDone());
  ASSERT_TRUE(writer->Finish().ok());
  EXPECT_EQ(resp.accepted(), 0u);
  EXPECT_EQ(resp.recipients(), 0u);
}

TEST_F(ApiServerTest, PublishStreamRejectsAcks) {
  Populate();
  pb::PublishStreamResponse resp;
  auto ctx = Ctx();
  auto writer = stub_->PublishStream(ctx.get(), &resp);
  auto req = MakePublish("/", "question");
  req.set_ack_timeout_ms(1000);
  writer->Write(req);
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("ack_timeout_ms"));
  std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(edge_->messages().empty());
}

TEST_F(ApiServerTest, PublishStreamEndsAtTheFirstFailure) {
  Populate();
  pb::PublishStreamResponse resp;
  auto ctx = Ctx();
  auto writer = stub_->PublishStream(ctx.get(), &resp);
  auto good = MakePublish("/", "first");
  auto bad = MakePublish("/", "second");
  bad.add_args()->set_json("{oops");
  auto never = MakePublish("/", "third");
  writer->Write(good);
  writer->Write(bad);
  writer->Write(never);  // may fail: the server may have ended the call already
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), BrokerPublish(bad).message());
  std::this_thread::sleep_for(100ms);
  auto messages = edge_->messages();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].message.delivery().event(), "first");
}

// ---- commands ----------------------------------------------------------------------------------

TEST_F(ApiServerTest, JoinLeaveDisconnectReportMatchedSockets) {
  Populate();
  {
    pb::JoinRoomsRequest req;
    req.mutable_selector()->set_namespace_("/");
    req.mutable_selector()->add_rooms("lobby");
    req.add_rooms("newroom");
    pb::JoinRoomsResponse resp;
    auto ctx = Ctx();
    grpc::Status status = stub_->JoinRooms(ctx.get(), req, &resp);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(resp.matched_sockets(), 2u);
    ASSERT_TRUE(edge_->WaitForMessages(1));
    auto m = edge_->messages().back();
    EXPECT_EQ(m.subject, bus::RoomSubject("/", "lobby"));
    ASSERT_TRUE(m.message.has_command());
    EXPECT_THAT(m.message.command().join().rooms(), ElementsAre("newroom"));
  }
  edge_->ClearMessages();
  {
    pb::LeaveRoomsRequest req;
    req.mutable_selector()->add_user_ids("alice");  // namespace "" = "/": s1 only
    req.add_rooms("vip");
    pb::LeaveRoomsResponse resp;
    auto ctx = Ctx();
    grpc::Status status = stub_->LeaveRooms(ctx.get(), req, &resp);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(resp.matched_sockets(), 1u);
    ASSERT_TRUE(edge_->WaitForMessages(1));
    auto m = edge_->messages().back();
    ASSERT_TRUE(m.message.has_command());
    EXPECT_THAT(m.message.command().leave().rooms(), ElementsAre("vip"));
  }
  edge_->ClearMessages();
  {
    pb::DisconnectSocketsRequest req;
    req.mutable_selector()->set_namespace_("/");
    req.mutable_selector()->add_socket_ids(s3_);
    req.set_close(true);
    pb::DisconnectSocketsResponse resp;
    auto ctx = Ctx();
    grpc::Status status = stub_->DisconnectSockets(ctx.get(), req, &resp);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(resp.matched_sockets(), 1u);
    ASSERT_TRUE(edge_->WaitForMessages(1));
    auto m = edge_->messages().back();
    EXPECT_EQ(m.subject, bus::SocketSubject(s3_));
    ASSERT_TRUE(m.message.has_command());
    EXPECT_TRUE(m.message.command().disconnect_close());
  }
  edge_->ClearMessages();
  {
    pb::DisconnectSocketsRequest req;
    req.mutable_selector()->set_namespace_("/chat");
    req.mutable_selector()->set_all_sockets(true);
    pb::DisconnectSocketsResponse resp;
    auto ctx = Ctx();
    grpc::Status status = stub_->DisconnectSockets(ctx.get(), req, &resp);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(resp.matched_sockets(), 1u);
    ASSERT_TRUE(edge_->WaitForMessages(1));
    EXPECT_EQ(edge_->messages().back().subject, bus::NamespaceSubject("/chat"));
  }
}

TEST_F(ApiServerTest, CommandsRejectBadSelectors) {
  Populate();
  auto expect_invalid = [](const grpc::Status& status, const absl::Status& direct) {
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_EQ(static_cast<int>(direct.code()), static_cast<int>(status.error_code()));
    EXPECT_EQ(status.error_message(), std::string(direct.message()));
  };
  {
    pb::JoinRoomsRequest req;  // empty selector
    req.add_rooms("r");
    pb::JoinRoomsResponse resp;
    auto ctx = Ctx();
    expect_invalid(stub_->JoinRooms(ctx.get(), req, &resp), broker_->JoinRooms(req).status());
  }
  {
    pb::JoinRoomsRequest req;  // no rooms
    req.mutable_selector()->add_rooms("lobby");
    pb::JoinRoomsResponse resp;
    auto ctx = Ctx();
    expect_invalid(stub_->JoinRooms(ctx.get(), req, &resp), broker_->JoinRooms(req).status());
  }
  {
    pb::LeaveRoomsRequest req;  // all_sockets with another criterion
    req.mutable_selector()->set_all_sockets(true);
    req.mutable_selector()->add_rooms("lobby");
    req.add_rooms("r");
    pb::LeaveRoomsResponse resp;
    auto ctx = Ctx();
    expect_invalid(stub_->LeaveRooms(ctx.get(), req, &resp), broker_->LeaveRooms(req).status());
  }
  {
    pb::DisconnectSocketsRequest req;  // empty selector
    pb::DisconnectSocketsResponse resp;
    auto ctx = Ctx();
    expect_invalid(stub_->DisconnectSockets(ctx.get(), req, &resp),
                   broker_->DisconnectSockets(req).status());
  }
  {
    pb::DisconnectSocketsRequest req;  // malformed socket id
    req.mutable_selector()->add_socket_ids("nodot");
    pb::DisconnectSocketsResponse resp;
    auto ctx = Ctx();
    expect_invalid(stub_->DisconnectSockets(ctx.get(), req, &resp),
                   broker_->DisconnectSockets(req).status());
  }
  std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(edge_->messages().empty());
}

// ---- reads -----------------------------------------------------------------------------------

TEST_F(ApiServerTest, GetStats) {
  Populate();
  pb::GetStatsResponse resp;
  auto ctx = Ctx();
  grpc::Status status = stub_->GetStats(ctx.get(), {}, &resp);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(resp.broker_id(), kBrokerId);
  EXPECT_EQ(resp.totals().sockets(), 4u);
  EXPECT_EQ(resp.totals().users(), 2u);
  EXPECT_EQ(resp.totals().rooms(), 3u);
  ASSERT_EQ(resp.edges_size(), 1);
  EXPECT_EQ(resp.edges(0).edge_id(), kEdgeId);
  EXPECT_EQ(resp.edges(0).counts().sockets(), 4u);
  EXPECT_EQ(resp.edges(0).counts().messages_in(), 7u);
  EXPECT_EQ(resp.edges(0).counts().messages_out(), 9u);
  EXPECT_EQ(resp.edges(0).last_seq(), 8u);  // 4 connects + 4 joins
  ASSERT_EQ(resp.namespaces_size(), 2);
  EXPECT_EQ(resp.namespaces(0).namespace_(), "/");
  EXPECT_EQ(resp.namespaces(0).counts().sockets(), 3u);
  EXPECT_EQ(resp.namespaces(0).counts().users(), 2u);
  EXPECT_EQ(resp.namespaces(0).counts().rooms(), 2u);
  EXPECT_EQ(resp.namespaces(1).namespace_(), "/chat");
  EXPECT_EQ(resp.namespaces(1).counts().sockets(), 1u);
  auto direct = broker_->GetStats({});
  ASSERT_TRUE(direct.ok());
  EXPECT_TRUE(MessageDifferencer::Equals(resp, *direct));
}

// A second edge, beating by hand: version, start time and drain flag.
void PublishEdgeBHeartbeat(bus::Bus& bus, bool draining) {
  pb::Heartbeat hb;
  hb.set_edge_id("edgeB");
  hb.set_incarnation("incB");
  hb.set_version("9.8.7");
  hb.mutable_started_at()->set_seconds(1'700'000'000);
  hb.set_draining(draining);
  ASSERT_TRUE(bus.Publish(bus::HeartbeatSubject("edgeB"), hb.SerializeAsString()).ok());
}

TEST_F(ApiServerTest, ListEdges) {
  Populate();
  PublishEdgeBHeartbeat(*bus_, /*draining=*/true);
  ASSERT_TRUE(WaitUntil([&] {
    auto edges = broker_->ListEdges({});
    return edges.ok() && edges->edges_size() == 2;
  }));
  pb::ListEdgesResponse resp;
  auto ctx = Ctx();
  grpc::Status status = stub_->ListEdges(ctx.get(), {}, &resp);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(resp.broker_id(), kBrokerId);
  ASSERT_EQ(resp.edges_size(), 2);
  EXPECT_EQ(resp.edges(0).edge_id(), kEdgeId);
  EXPECT_EQ(resp.edges(0).state(), pb::EDGE_STATE_READY);
  EXPECT_EQ(resp.edges(0).sockets(), 4u);
  EXPECT_EQ(resp.edges(1).edge_id(), "edgeB");
  EXPECT_EQ(resp.edges(1).state(), pb::EDGE_STATE_DRAINING);
  EXPECT_EQ(resp.edges(1).version(), "9.8.7");
  EXPECT_EQ(resp.edges(1).started_at().seconds(), 1'700'000'000);
  EXPECT_EQ(resp.edges(1).incarnation(), "incB");
  EXPECT_EQ(resp.edges(1).sockets(), 0u);
  auto direct = broker_->ListEdges({});
  ASSERT_TRUE(direct.ok());
  EXPECT_TRUE(MessageDifferencer::Equals(resp, *direct));
}

TEST_F(ApiServerTest, ListSockets) {
  Populate();
  pb::ListSocketsRequest req;
  req.set_namespace_("/");
  pb::ListSocketsResponse resp;
  auto ctx = Ctx();
  ASSERT_TRUE(stub_->ListSockets(ctx.get(), req, &resp).ok());
  ASSERT_EQ(resp.sockets_size(), 3);
  EXPECT_TRUE(resp.next_page_token().empty());
  const auto& s1 = resp.sockets(0);
  EXPECT_EQ(s1.id(), s1_);
  EXPECT_EQ(s1.edge_id(), kEdgeId);
  EXPECT_EQ(s1.user_id(), "alice");
  EXPECT_EQ(s1.namespace_(), "/");
  EXPECT_THAT(s1.rooms(), ElementsAre("lobby", "vip"));
  EXPECT_EQ(s1.transport(), pb::TRANSPORT_WEBSOCKET);
  EXPECT_EQ(s1.remote_address(), "10.0.0.1:1001");
  EXPECT_GT(s1.connected_at().seconds(), 0);
  EXPECT_EQ(resp.sockets(1).id(), s2_);
  EXPECT_EQ(resp.sockets(2).id(), s3_);
  EXPECT_EQ(resp.sockets(2).user_id(), "");

  // Pages.
  req.set_page_size(2);
  pb::ListSocketsResponse page1, page2;
  auto ctx1 = Ctx();
  ASSERT_TRUE(stub_->ListSockets(ctx1.get(), req, &page1).ok());
  ASSERT_EQ(page1.sockets_size(), 2);
  ASSERT_FALSE(page1.next_page_token().empty());
  req.set_page_token(page1.next_page_token());
  auto ctx2 = Ctx();
  ASSERT_TRUE(stub_->ListSockets(ctx2.get(), req, &page2).ok());
  ASSERT_EQ(page2.sockets_size(), 1);
  EXPECT_EQ(page2.sockets(0).id(), s3_);
  EXPECT_TRUE(page2.next_page_token().empty());

  // Filters.
  pb::ListSocketsRequest by_room;
  by_room.set_namespace_("/");
  by_room.set_room("lobby");
  pb::ListSocketsResponse room_resp;
  auto ctx3 = Ctx();
  ASSERT_TRUE(stub_->ListSockets(ctx3.get(), by_room, &room_resp).ok());
  ASSERT_EQ(room_resp.sockets_size(), 2);
  EXPECT_EQ(room_resp.sockets(0).id(), s1_);
  EXPECT_EQ(room_resp.sockets(1).id(), s2_);

  pb::ListSocketsRequest all;
  pb::ListSocketsResponse all_resp;
  auto ctx4 = Ctx();
  ASSERT_TRUE(stub_->ListSockets(ctx4.get(), all, &all_resp).ok());
  EXPECT_EQ(all_resp.sockets_size(), 4);

  pb::ListSocketsRequest bad;
  bad.set_page_token("not-a-token-we-issued");
  pb::ListSocketsResponse bad_resp;
  auto ctx5 = Ctx();
  grpc::Status status = stub_->ListSockets(ctx5.get(), bad, &bad_resp);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), std::string(broker_->ListSockets(bad).status().message()));
}

TEST_F(ApiServerTest, ListRooms) {
  Populate();
  pb::ListRoomsResponse resp;
  auto ctx = Ctx();
  ASSERT_TRUE(stub_->ListRooms(ctx.get(), {}, &resp).ok());
  ASSERT_EQ(resp.rooms_size(), 3);
  EXPECT_EQ(resp.rooms(0).namespace_(), "/");
  EXPECT_EQ(resp.rooms(0).name(), "lobby");
  EXPECT_EQ(resp.rooms(0).members(), 2u);
  EXPECT_EQ(resp.rooms(1).name(), "vip");
  EXPECT_EQ(resp.rooms(1).members(), 1u);
  EXPECT_EQ(resp.rooms(2).namespace_(), "/chat");
  EXPECT_EQ(resp.rooms(2).name(), "general");

  pb::ListRoomsRequest req;
  req.set_namespace_("/");
  req.set_prefix("l");
  pb::ListRoomsResponse filtered;
  auto ctx2 = Ctx();
  ASSERT_TRUE(stub_->ListRooms(ctx2.get(), req, &filtered).ok());
  ASSERT_EQ(filtered.rooms_size(), 1);
  EXPECT_EQ(filtered.rooms(0).name(), "lobby");
}

TEST_F(ApiServerTest, GetPresence) {
  Populate();
  pb::GetPresenceRequest req;
  req.set_user_id("alice");
  pb::GetPresenceResponse resp;
  auto ctx = Ctx();
  ASSERT_TRUE(stub_->GetPresence(ctx.get(), req, &resp).ok());
  EXPECT_TRUE(resp.online());
  ASSERT_EQ(resp.sockets_size(), 2);
  EXPECT_EQ(resp.sockets(0).id(), s1_);  // "/" before "/chat"
  EXPECT_EQ(resp.sockets(1).id(), s4_);

  req.set_namespace_("/chat");
  pb::GetPresenceResponse chat;
  auto ctx2 = Ctx();
  ASSERT_TRUE(stub_->GetPresence(ctx2.get(), req, &chat).ok());
  ASSERT_EQ(chat.sockets_size(), 1);
  EXPECT_EQ(chat.sockets(0).id(), s4_);

  pb::GetPresenceRequest nobody;
  nobody.set_user_id("zed");
  pb::GetPresenceResponse off;
  auto ctx3 = Ctx();
  ASSERT_TRUE(stub_->GetPresence(ctx3.get(), nobody, &off).ok());
  EXPECT_FALSE(off.online());
  EXPECT_EQ(off.sockets_size(), 0);

  pb::GetPresenceRequest empty;
  pb::GetPresenceResponse empty_resp;
  auto ctx4 = Ctx();
  EXPECT_EQ(stub_->GetPresence(ctx4.get(), empty, &empty_resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

// ---- WatchEvents -------------------------------------------------------------------------------

TEST_F(ApiServerTest, WatchEventsStreamsLaterChanges) {
  Populate();
  auto ctx = Ctx(10s);
  auto reader = stub_->WatchEvents(ctx.get(), {});
  reader->WaitForInitialMetadata();  // the watch is live
  std::string s5 = edge_->Connect("/", "s5", "carol", {}, "10.0.0.5:1005");
  edge_->Join(s5, "lobby");
  edge_->Disconnect(s5);

  pb::WatchEventsResponse ev;
  ASSERT_TRUE(reader->Read(&ev));
  ASSERT_TRUE(ev.has_connected()) << ev.ShortDebugString();
  EXPECT_EQ(ev.edge_id(), kEdgeId);
  EXPECT_EQ(ev.connected().socket().id(), s5);
  EXPECT_EQ(ev.connected().socket().user_id(), "carol");
  EXPECT_EQ(ev.connected().socket().namespace_(), "/");
  EXPECT_EQ(ev.connected().socket().remote_address(), "10.0.0.5:1005");
  ASSERT_TRUE(reader->Read(&ev));
  ASSERT_TRUE(ev.has_joined()) << ev.ShortDebugString();
  EXPECT_EQ(ev.joined().socket_id(), s5);
  EXPECT_EQ(ev.joined().room(), "lobby");
  ASSERT_TRUE(reader->Read(&ev));
  ASSERT_TRUE(ev.has_disconnected()) << ev.ShortDebugString();
  EXPECT_EQ(ev.disconnected().socket_id(), s5);

  ctx->TryCancel();
  while (reader->Read(&ev)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(ApiServerTest, WatchEventsFilters) {
  Populate();
  pb::WatchEventsRequest req;
  req.set_namespace_("/chat");
  req.add_kinds(pb::EVENT_KIND_CONNECTED);
  auto ctx = Ctx(10s);
  auto reader = stub_->WatchEvents(ctx.get(), req);
  reader->WaitForInitialMetadata();
  std::string other = edge_->Connect("/", "s6", "dave");
  std::string joiner = edge_->Connect("/chat", "s7", "erin", {"general"});
  std::string last = edge_->Connect("/chat", "s8", "frank");
  pb::WatchEventsResponse ev;
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.connected().socket().id(), joiner);
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.connected().socket().id(), last);
  ctx->TryCancel();
  while (reader->Read(&ev)) {
  }
  reader->Finish();
}

TEST_F(ApiServerTest, WatchEventsEndsUnavailableAtShutdown) {
  auto ctx = Ctx(10s);
  auto reader = stub_->WatchEvents(ctx.get(), {});
  reader->WaitForInitialMetadata();
  auto start = std::chrono::steady_clock::now();
  server_->Shutdown(5s);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s) << "the watch should end at once";
  pb::WatchEventsResponse ev;
  while (reader->Read(&ev)) {
  }
  grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
}

TEST_F(ApiServerTest, SlowWatcherIsCutOff) {
  server_.reset();
  ApiServerOptions options;
  options.max_watch_queue = 4;
  StartServer(std::move(options));
  auto ctx = Ctx(20s);
  auto reader = stub_->WatchEvents(ctx.get(), {});
  reader->WaitForInitialMetadata();
  // Big events, not read: gRPC flow control stops the writes, the queue fills up.
  const std::string big(128 * 1024, 'x');
  for (int i = 0; i < 100; ++i) {
    edge_->Connect("/", absl::StrCat("slow", i), absl::StrCat("u", i), {}, big);
  }
  ASSERT_TRUE(WaitUntil([&] { return IndexedSockets() == 100; }, 10s));
  pb::WatchEventsResponse ev;
  int read = 0;
  while (reader->Read(&ev)) ++read;
  grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_EQ(status.error_message(), "watcher too slow");
  EXPECT_LT(read, 100);
}

// The queue is bounded in bytes (forwarded events can be large): far fewer
// than max_watch_queue events fill it. Every event the slow group watcher did
// not get is counted (GetStats, counters()), and the client of each one its
// stream dropped gets an error ack at once.
TEST_F(ApiServerTest, SlowWatcherIsBoundedInBytesAndItsDropsCountedAndAcked) {
  server_.reset();
  ApiServerOptions options;
  options.max_watch_queue_bytes = 256 * 1024;  // max_watch_queue stays 10000
  StartServer(std::move(options));
  constexpr char kForwardEdge[] = "edgeW";
  std::mutex mu;
  std::map<std::string, std::string> failed;  // ack_ref -> error
  auto acks = bus_->Subscribe(bus::ForwardAckSubject(kForwardEdge), [&](bus::Message message) {
    pb::ForwardAck request;
    ASSERT_TRUE(request.ParseFromString(message.payload));
    {
      std::lock_guard lock(mu);
      failed[request.ack_ref()] = request.reply().error();
    }
    pb::ForwardAckResult result;
    result.set_delivered(true);
    ASSERT_TRUE(bus_->Publish(message.reply_to, result.SerializeAsString()).ok());
  });
  ASSERT_TRUE(acks.ok());

  pb::WatchEventsRequest req;
  req.add_kinds(pb::EVENT_KIND_CLIENT_EVENT);
  req.set_queue_group("workers");
  auto ctx = Ctx(20s);
  auto reader = stub_->WatchEvents(ctx.get(), req);
  reader->WaitForInitialMetadata();
  // 64 KiB events with acks, not read: gRPC flow control stops the writes.
  constexpr int kEvents = 200;
  const std::string big = "\"" + std::string(64 * 1024, 'x') + "\"";
  for (int i = 0; i < kEvents; ++i) {
    pb::ForwardedEvent forwarded;
    forwarded.set_edge_id(kForwardEdge);
    pb::ClientEvent* event = forwarded.mutable_event();
    event->set_socket_id(absl::StrCat(kForwardEdge, ".s1"));
    event->set_namespace_("/");
    event->set_event("upload");
    event->add_args()->set_json(big);
    event->set_wants_ack(true);
    event->set_ack_ref(absl::StrCat(kForwardEdge, ".n0nce.", i));
    ASSERT_TRUE(
        bus_->Publish(bus::ForwardSubject("/", "upload"), forwarded.SerializeAsString()).ok());
  }
  pb::WatchEventsResponse ev;
  std::set<std::string> read;
  while (reader->Read(&ev)) read.insert(ev.client_event().ack_ref());
  grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_EQ(status.error_message(), "watcher too slow");
  EXPECT_LT(read.size(), static_cast<size_t>(kEvents));

  // What the client did not read was dropped: counted, and each ack failed.
  auto stats = [&] {
    pb::GetStatsResponse response;
    auto sctx = Ctx();
    EXPECT_TRUE(stub_->GetStats(sctx.get(), {}, &response).ok());
    return response;
  };
  ASSERT_TRUE(WaitUntil([&] {
    pb::GetStatsResponse r = stats();
    std::lock_guard lock(mu);
    return r.watch().dropped() > 0 && failed.size() == r.watch().acks_failed();
  })) << stats().ShortDebugString();
  pb::GetStatsResponse response = stats();
  // Events that came after the watcher left (its group's subscription lasts
  // until a tick) are counted but their acks left alone.
  EXPECT_GT(response.watch().acks_failed(), 0u);
  EXPECT_LE(response.watch().acks_failed(), response.watch().dropped());
  EXPECT_EQ(response.forward().watch_dropped(), response.watch().dropped());
  EXPECT_LE(read.size() + response.watch().dropped(), static_cast<size_t>(kEvents));
  EXPECT_EQ(broker_->counters().watch_dropped, response.watch().dropped());
  EXPECT_EQ(broker_->counters().watch_acks_failed, response.watch().acks_failed());
  std::lock_guard lock(mu);
  int too_slow = 0;
  for (const auto& [ref, error] : failed) {
    EXPECT_EQ(read.count(ref), 0u) << ref << " was read and failed";
    EXPECT_THAT(error, ::testing::AnyOf("watcher too slow", "watcher gone"));
    too_slow += error == "watcher too slow";
  }
  EXPECT_GT(too_slow, 0);
}

// ---- health, reflection ------------------------------------------------------------------------

TEST_F(ApiServerTest, HealthFollowsSetServing) {
  auto overall = HealthCheck(channel_, "");
  ASSERT_TRUE(overall.ok()) << overall.status();
  EXPECT_EQ(*overall, 1);  // SERVING
  auto service = HealthCheck(channel_, "switchboard.v1.Switchboard");
  ASSERT_TRUE(service.ok()) << service.status();
  EXPECT_EQ(*service, 1);

  server_->SetServing(false);
  EXPECT_EQ(*HealthCheck(channel_, ""), 2);  // NOT_SERVING
  EXPECT_EQ(*HealthCheck(channel_, "switchboard.v1.Switchboard"), 2);

  server_->SetServing(true);
  EXPECT_EQ(*HealthCheck(channel_, "switchboard.v1.Switchboard"), 1);

  auto unknown = HealthCheck(channel_, "no.such.Service");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
}

#ifdef SB_HAVE_GRPC_REFLECTION
TEST_F(ApiServerTest, ReflectionListsTheService) {
  // ServerReflectionRequest{list_services = "*"} (field 7).
  auto listed = ReflectionCall(channel_, StringField(7, "*"));
  ASSERT_TRUE(listed.ok()) << listed.status();
  std::vector<std::string> services;
  auto fields = ParseFields(*listed);
  for (int i = 0; i < fields->field_count(); ++i) {
    if (fields->field(i).number() != 6) continue;  // list_services_response
    auto list = ParseFields(fields->field(i).length_delimited());
    for (int j = 0; j < list->field_count(); ++j) {
      if (list->field(j).number() != 1) continue;  // service
      auto svc = ParseFields(list->field(j).length_delimited());
      for (int k = 0; k < svc->field_count(); ++k) {
        if (svc->field(k).number() == 1) services.push_back(svc->field(k).length_delimited());
      }
    }
  }
  EXPECT_THAT(services, ::testing::Contains("switchboard.v1.Switchboard"));
  EXPECT_THAT(services, ::testing::Contains("grpc.health.v1.Health"));

  // ServerReflectionRequest{file_containing_symbol} (field 4) → file_descriptor_response (4).
  auto file = ReflectionCall(channel_, StringField(4, "switchboard.v1.Switchboard"));
  ASSERT_TRUE(file.ok()) << file.status();
  std::vector<std::string> names;
  auto file_fields = ParseFields(*file);
  for (int i = 0; i < file_fields->field_count(); ++i) {
    if (file_fields->field(i).number() != 4) continue;
    auto fdr = ParseFields(file_fields->field(i).length_delimited());
    for (int j = 0; j < fdr->field_count(); ++j) {
      google::protobuf::FileDescriptorProto proto;
      ASSERT_TRUE(proto.ParseFromString(fdr->field(j).length_delimited()));
      names.push_back(proto.name());
    }
  }
  EXPECT_THAT(names, ::testing::Contains("switchboard/v1/switchboard.proto"));
}
#endif

// ---- sbctl against the real server -------------------------------------------------------------

#ifdef SBCTL_BIN
TEST_F(ApiServerTest, SbctlStatsJson) {
  Populate();
  const char* env = std::getenv("SBCTL_BIN");
  std::string bin = env != nullptr ? env : SBCTL_BIN;
  auto run =
      RunProgram(bin, {"--server", absl::StrCat("127.0.0.1:", server_->port()), "--json", "stats"});
  ASSERT_EQ(run.rc, 0) << run.err;
  pb::GetStatsResponse printed;
  auto status = google::protobuf::util::JsonStringToMessage(run.out, &printed);
  ASSERT_TRUE(status.ok()) << status.ToString() << "\n" << run.out;
  auto direct = broker_->GetStats({});
  ASSERT_TRUE(direct.ok());
  EXPECT_TRUE(MessageDifferencer::Equals(printed, *direct)) << printed.DebugString() << "\nvs\n"
                                                            << direct->DebugString();
  EXPECT_EQ(printed.totals().sockets(), 4u);
}

TEST_F(ApiServerTest, SbctlEdges) {
  Populate();
  PublishEdgeBHeartbeat(*bus_, /*draining=*/true);
  ASSERT_TRUE(WaitUntil([&] {
    auto edges = broker_->ListEdges({});
    return edges.ok() && edges->edges_size() == 2;
  }));
  const char* env = std::getenv("SBCTL_BIN");
  std::string bin = env != nullptr ? env : SBCTL_BIN;
  const std::string server = absl::StrCat("127.0.0.1:", server_->port());

  auto table = RunProgram(bin, {"--server", server, "edges"});
  ASSERT_EQ(table.rc, 0) << table.err;
  std::vector<std::vector<std::string>> rows;
  std::istringstream lines(table.out);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    rows.emplace_back(std::istream_iterator<std::string>(words),
                      std::istream_iterator<std::string>());
  }
  ASSERT_EQ(rows.size(), 3u) << table.out;
  EXPECT_THAT(rows[0], ElementsAre("EDGE", "STATE", "VERSION", "UPTIME", "SOCKETS", "STARTED",
                                   "LAST_HEARTBEAT"));
  ASSERT_EQ(rows[1].size(), 7u) << table.out;
  EXPECT_EQ(rows[1][0], kEdgeId);
  EXPECT_EQ(rows[1][1], "ready");
  EXPECT_EQ(rows[1][2], "-");  // the fake edge reports no version
  EXPECT_EQ(rows[1][4], "4");
  ASSERT_EQ(rows[2].size(), 7u) << table.out;
  EXPECT_EQ(rows[2][0], "edgeB");
  EXPECT_EQ(rows[2][1], "draining");
  EXPECT_EQ(rows[2][2], "9.8.7");
  EXPECT_THAT(rows[2][3], ::testing::MatchesRegex("[0-9]+d[0-9][0-9]h"));  // since 2023
  EXPECT_EQ(rows[2][5], "2023-11-14T22:13:20Z");

  auto json = RunProgram(bin, {"--server", server, "--json", "edges"});
  ASSERT_EQ(json.rc, 0) << json.err;
  pb::ListEdgesResponse printed;
  auto status = google::protobuf::util::JsonStringToMessage(json.out, &printed);
  ASSERT_TRUE(status.ok()) << status.ToString() << "\n" << json.out;
  auto direct = broker_->ListEdges({});
  ASSERT_TRUE(direct.ok());
  EXPECT_TRUE(MessageDifferencer::Equals(printed, *direct)) << printed.DebugString() << "\nvs\n"
                                                            << direct->DebugString();
}
#endif

}  // namespace
}  // namespace switchboard::services

namespace switchboard::services {
namespace {

// Ack of a forwarded event's client ack, over real gRPC: the edge the ref
// names confirms once; then NOT_FOUND; malformed refs are INVALID_ARGUMENT.
TEST_F(ApiServerTest, AckIsConfirmedByTheEdgeOnce) {
  std::mutex mu;
  int confirmed = 0;
  auto sub = bus_->Subscribe(bus::ForwardAckSubject(kEdgeId), [&](bus::Message message) {
    pb::ForwardAck request;
    ASSERT_TRUE(request.ParseFromString(message.payload));
    pb::ForwardAckResult result;
    {
      std::lock_guard lock(mu);
      result.set_delivered(confirmed++ == 0 && request.reply().args(0).json() == "42");
    }
    ASSERT_TRUE(bus_->Publish(message.reply_to, result.SerializeAsString()).ok());
  });
  ASSERT_TRUE(sub.ok());
  pb::AckRequest request;
  request.set_ack_ref(absl::StrCat(kEdgeId, ".n0nce.7"));
  request.add_args()->set_json("42");
  pb::AckResponse response;
  auto ctx = Ctx();
  grpc::Status status = stub_->Ack(ctx.get(), request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  auto ctx2 = Ctx();
  status = stub_->Ack(ctx2.get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();

  request.set_ack_ref("nonsense");
  auto ctx3 = Ctx();
  EXPECT_EQ(stub_->Ack(ctx3.get(), request, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // The fake edge records every sb.v1.> message and never answers for
  // another edge: the broker gives up after forward_ack_timeout.
  request.set_ack_ref("gone-edge.n0nce.1");
  auto ctx4 = Ctx();
  EXPECT_EQ(stub_->Ack(ctx4.get(), request, &response).error_code(), grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace switchboard::services
