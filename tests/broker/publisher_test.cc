// Publish and the commands: one message on every subject the target needs,
// recipients from the index, validation, the bus down.
#include "tests/broker/broker_fixture.h"

namespace switchboard::broker {
namespace {

TEST(BrokerPublishTest, OneDeliveryOnEverySubjectTheTargetNeeds) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);
  Cluster cluster(bus);
  ASSERT_TRUE(Eventually([&] { return cluster.Indexed(*broker); }));
  TargetTap tap(bus);

  v1::PublishRequest request;
  v1::Target* target = request.mutable_target();
  target->add_rooms("r1");
  target->add_rooms("r2");
  target->add_rooms("r1");
  target->add_user_ids("u1");
  target->add_socket_ids(cluster.b);
  target->add_socket_ids("e2.unknown");
  target->add_socket_ids(cluster.a);
  target->add_except_rooms("r2");
  request.set_event("hello");
  *request.add_args() = Json(R"({"a":1})");
  request.add_args()->set_binary(std::string("\0\x01", 2));
  auto response = PublishNow(*broker, request);
  ASSERT_TRUE(response.ok()) << response.status();
  // a (r1, u1, id), b (id); c is in except room r2; d is in /chat.
  EXPECT_EQ(response->recipients(), 2u);
  EXPECT_EQ(response->acks_size(), 0);

  Flush(bus);
  std::vector<bus::Message> sent = tap.Take();
  std::set<std::string> subjects;
  for (const auto& m : sent) subjects.insert(m.subject);
  EXPECT_EQ(sent.size(), 6u);
  EXPECT_EQ(subjects, (std::set<std::string>{
                          bus::RoomSubject("/", "r1"), bus::RoomSubject("/", "r2"),
                          bus::UserSubject("/", "u1"), bus::SocketSubject(cluster.a),
                          bus::SocketSubject(cluster.b), bus::SocketSubject("e2.unknown")}));
  ASSERT_FALSE(sent.empty());
  for (const auto& m : sent) EXPECT_EQ(m.payload, sent[0].payload) << m.subject;
  v1::EdgeMessage message;
  ASSERT_TRUE(message.ParseFromString(sent[0].payload));
  ASSERT_TRUE(message.has_delivery());
  const v1::Delivery& delivery = message.delivery();
  EXPECT_EQ(delivery.id(), "b1:1");
  EXPECT_EQ(delivery.target().namespace_(), "/");  // "" means "/"
  EXPECT_EQ(delivery.target().rooms_size(), 3);
  EXPECT_EQ(delivery.target().except_rooms(0), "r2");
  EXPECT_EQ(delivery.target().socket_ids_size(), 3);
  EXPECT_EQ(delivery.event(), "hello");
  ASSERT_EQ(delivery.args_size(), 2);
  EXPECT_EQ(delivery.args(0).json(), R"({"a":1})");
  EXPECT_EQ(delivery.args(1).binary(), std::string("\0\x01", 2));
  EXPECT_EQ(delivery.ack_timeout_ms(), 0u);
  EXPECT_TRUE(delivery.ack_subject().empty());
  EXPECT_FALSE(delivery.volatile_());

  // No room, user or socket: the namespace subject only.
  v1::PublishRequest whole;
  whole.mutable_target()->set_namespace_("/chat");
  whole.set_event("news");
  whole.set_volatile_(true);
  response = PublishNow(*broker, whole);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->recipients(), 1u);
  Flush(bus);
  sent = tap.Take();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].subject, bus::NamespaceSubject("/chat"));
  ASSERT_TRUE(message.ParseFromString(sent[0].payload));
  EXPECT_EQ(message.delivery().id(), "b1:2");
  EXPECT_TRUE(message.delivery().volatile_());
}

// Socket.IO's to(socket.id): a socket is a room of its own. The index counts
// it, so its edge must get the delivery (and, with acks, is waited for).
TEST(BrokerPublishTest, ARoomNamedBySocketIdReachesThatSocket) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);
  Cluster cluster(bus);
  ASSERT_TRUE(Eventually([&] { return cluster.Indexed(*broker); }));
  TargetTap tap(bus);

  v1::PublishRequest request;
  request.mutable_target()->add_rooms(cluster.c);
  request.set_event("hello");
  auto response = PublishNow(*broker, request);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->recipients(), 1u);
  Flush(bus);
  std::set<std::string> subjects;
  for (const auto& m : tap.Take()) subjects.insert(m.subject);
  EXPECT_EQ(subjects, (std::set<std::string>{bus::RoomSubject("/", cluster.c),
                                             bus::SocketSubject(cluster.c)}));
}

TEST(BrokerPublishTest, RecipientsAreTheIndexMatches) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);
  Cluster cluster(bus);
  ASSERT_TRUE(Eventually([&] { return cluster.Indexed(*broker); }));

  auto count = [&](std::function<void(v1::Target&)> fill) -> uint64_t {
    v1::PublishRequest request;
    request.set_event("e");
    fill(*request.mutable_target());
    auto response = PublishNow(*broker, request);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? response->recipients() : 999;
  };
  EXPECT_EQ(count([](v1::Target&) {}), 3u);  // "/": a, b, c
  EXPECT_EQ(count([](v1::Target& t) { t.set_namespace_("/chat"); }), 1u);
  EXPECT_EQ(count([](v1::Target& t) { t.set_namespace_("/nope"); }), 0u);
  EXPECT_EQ(count([](v1::Target& t) { t.add_rooms("r1"); }), 2u);
  EXPECT_EQ(count([](v1::Target& t) {
              t.add_rooms("r1");
              t.add_rooms("r2");
            }),
            2u);
  EXPECT_EQ(count([](v1::Target& t) { t.add_user_ids("u1"); }), 2u);     // d is in /chat
  EXPECT_EQ(count([&](v1::Target& t) { t.add_rooms(cluster.b); }), 1u);  // own-id room
  EXPECT_EQ(count([&](v1::Target& t) {
              t.add_user_ids("u1");
              t.add_socket_ids(cluster.b);
            }),
            3u);
  EXPECT_EQ(count([&](v1::Target& t) { t.add_except_rooms("r1"); }), 1u);  // b
  EXPECT_EQ(count([&](v1::Target& t) {
              t.add_except_rooms("r2");
              t.add_except_socket_ids(cluster.b);
            }),
            1u);                                                              // a
  EXPECT_EQ(count([&](v1::Target& t) { t.add_socket_ids(cluster.d); }), 0u);  // wrong nsp
}

TEST(BrokerPublishTest, InvalidRequestsAreRejected) {
  bus::InProcessBus bus;
  BrokerOptions options = Options();
  options.max_ack_timeout_ms = 1000;
  auto broker = StartBroker(bus, options);
  TargetTap tap(bus);

  auto status_of = [&](std::function<void(v1::PublishRequest&)> edit) {
    v1::PublishRequest request;
    request.set_event("ok");
    *request.add_args() = Json("[1,2]");
    edit(request);
    auto response = PublishNow(*broker, request);
    return response.status();
  };
  EXPECT_TRUE(status_of([](v1::PublishRequest&) {}).ok());
  EXPECT_TRUE(status_of([](v1::PublishRequest& r) { r.set_ack_timeout_ms(1000); }).ok());

  struct Case {
    const char* what;
    std::function<void(v1::PublishRequest&)> edit;
    const char* message_part;
  };
  std::vector<Case> cases = {
      {"empty event", [](auto& r) { r.clear_event(); }, "empty"},
      {"connect", [](auto& r) { r.set_event("connect"); }, "reserved"},
      {"connect_error", [](auto& r) { r.set_event("connect_error"); }, "reserved"},
      {"disconnect", [](auto& r) { r.set_event("disconnect"); }, "reserved"},
      {"disconnecting", [](auto& r) { r.set_event("disconnecting"); }, "reserved"},
      {"newListener", [](auto& r) { r.set_event("newListener"); }, "reserved"},
      {"removeListener", [](auto& r) { r.set_event("removeListener"); }, "reserved"},
      {"unset argument", [](auto& r) { r.add_args(); }, "args[1]"},
      {"bad json", [](auto& r) { *r.add_args() = Json("{a:1}"); }, "args[1].json"},
      {"truncated json", [](auto& r) { *r.add_args() = Json("[1,"); }, "JSON"},
      {"empty json", [](auto& r) { *r.add_args() = Json(""); }, "JSON"},
      {"socket id without edge", [](auto& r) { r.mutable_target()->add_socket_ids("nodot"); },
       "malformed socket id"},
      {"socket id with two dots", [](auto& r) { r.mutable_target()->add_socket_ids("e1.a.b"); },
       "malformed socket id"},
      {"socket id with a bad edge", [](auto& r) { r.mutable_target()->add_socket_ids("e 1.a"); },
       "malformed socket id"},
      {"except socket id", [](auto& r) { r.mutable_target()->add_except_socket_ids(".a"); },
       "except_socket_ids"},
      {"ack timeout above max", [](auto& r) { r.set_ack_timeout_ms(1001); }, "maximum"},
      {"ack with volatile",
       [](auto& r) {
         r.set_ack_timeout_ms(10);
         r.set_volatile_(true);
       },
       "volatile"},
  };
  for (const Case& c : cases) {
    absl::Status status = status_of(c.edit);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.what << ": " << status;
    EXPECT_NE(status.message().find(c.message_part), std::string::npos) << c.what << ": " << status;
  }
  Flush(bus);
  EXPECT_EQ(tap.Take().size(), 2u);  // the two valid ones only
}

TEST(BrokerPublishTest, BusDownIsUnavailable) {
  FlakyBus bus;
  auto broker = StartBroker(bus);
  v1::PublishRequest request;
  request.set_event("e");
  request.mutable_target()->add_rooms("r");

  bus.down = true;
  EXPECT_FALSE(broker->bus_connected());
  EXPECT_EQ(PublishNow(*broker, request).status().code(), absl::StatusCode::kUnavailable);
  v1::JoinRoomsRequest join;
  join.mutable_selector()->set_all_sockets(true);
  join.add_rooms("x");
  EXPECT_EQ(broker->JoinRooms(join).status().code(), absl::StatusCode::kUnavailable);
  // Validation comes first.
  request.clear_event();
  EXPECT_EQ(PublishNow(*broker, request).status().code(), absl::StatusCode::kInvalidArgument);
  request.set_event("e");

  // Connected, but the publish itself fails.
  bus.down = false;
  bus.fail_publish = true;
  EXPECT_EQ(PublishNow(*broker, request).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(broker->JoinRooms(join).status().code(), absl::StatusCode::kUnavailable);
  PublishWaiter waiter;
  request.set_ack_timeout_ms(5000);
  broker->Publish(request, waiter.Done());
  ASSERT_TRUE(waiter.Wait(1s));
  EXPECT_EQ(waiter.result->status().code(), absl::StatusCode::kUnavailable);

  bus.fail_publish = false;
  request.set_ack_timeout_ms(0);
  EXPECT_TRUE(PublishNow(*broker, request).ok());
}

// Answers deliveries on room "r1" with one AckReport per listed edge.

TEST(BrokerPublishTest, DeliveriesCarryThePublishTime) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);
  FakeEdge e1(bus, "e1");
  e1.Connect("a");
  ASSERT_TRUE(Eventually([&] { return ListedIds(*broker).size() == 1; }));
  TargetTap tap(bus);
  auto unix_nanos = [] {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  v1::PublishRequest request;
  request.set_event("hello");
  const int64_t before = unix_nanos();
  ASSERT_TRUE(PublishNow(*broker, request).ok());
  const int64_t after = unix_nanos();
  Flush(bus);
  std::vector<bus::Message> sent = tap.Take();
  ASSERT_EQ(sent.size(), 1u);
  v1::EdgeMessage message;
  ASSERT_TRUE(message.ParseFromString(sent[0].payload));
  EXPECT_GE(message.delivery().published_unix_nanos(), before);
  EXPECT_LE(message.delivery().published_unix_nanos(), after);
}

TEST(BrokerCommandTest, CommandsGoToTheSelectorsSubjects) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);
  Cluster cluster(bus);
  ASSERT_TRUE(Eventually([&] { return cluster.Indexed(*broker); }));
  TargetTap tap(bus);

  v1::JoinRoomsRequest join;
  join.mutable_selector()->add_rooms("r2");
  join.mutable_selector()->add_user_ids("u2");
  join.mutable_selector()->add_socket_ids(cluster.a);
  join.add_rooms("x");
  join.add_rooms("y");
  auto joined = broker->JoinRooms(join);
  ASSERT_TRUE(joined.ok()) << joined.status();
  EXPECT_EQ(joined->matched_sockets(), 3u);  // c (r2), b (u2), a
  Flush(bus);
  std::vector<bus::Message> sent = tap.Take();
  std::set<std::string> subjects;
  for (const auto& m : sent) {
    subjects.insert(m.subject);
    EXPECT_EQ(m.payload, sent[0].payload);
  }
  EXPECT_EQ(sent.size(), 3u);
  EXPECT_EQ(subjects,
            (std::set<std::string>{bus::RoomSubject("/", "r2"), bus::UserSubject("/", "u2"),
                                   bus::SocketSubject(cluster.a)}));
  v1::EdgeMessage message;
  ASSERT_TRUE(message.ParseFromString(sent.at(0).payload));
  ASSERT_TRUE(message.has_command());
  EXPECT_EQ(message.command().id(), "b1:1");
  EXPECT_EQ(message.command().selector().namespace_(), "/");
  EXPECT_EQ(message.command().selector().rooms(0), "r2");
  ASSERT_TRUE(message.command().has_join());
  EXPECT_EQ(message.command().join().rooms_size(), 2);
  EXPECT_EQ(message.command().join().rooms(1), "y");

  v1::LeaveRoomsRequest leave;
  leave.mutable_selector()->set_namespace_("/chat");
  leave.mutable_selector()->set_all_sockets(true);
  leave.add_rooms("r1");
  auto left = broker->LeaveRooms(leave);
  ASSERT_TRUE(left.ok()) << left.status();
  EXPECT_EQ(left->matched_sockets(), 1u);
  Flush(bus);
  sent = tap.Take();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].subject, bus::NamespaceSubject("/chat"));
  ASSERT_TRUE(message.ParseFromString(sent[0].payload));
  EXPECT_EQ(message.command().id(), "b1:2");
  EXPECT_TRUE(message.command().selector().all_sockets());
  ASSERT_TRUE(message.command().has_leave());
  EXPECT_EQ(message.command().leave().rooms(0), "r1");

  v1::DisconnectSocketsRequest disconnect;
  disconnect.mutable_selector()->add_socket_ids(cluster.c);
  disconnect.mutable_selector()->add_socket_ids("e2.gone");
  disconnect.set_close(true);
  auto disconnected = broker->DisconnectSockets(disconnect);
  ASSERT_TRUE(disconnected.ok()) << disconnected.status();
  EXPECT_EQ(disconnected->matched_sockets(), 1u);
  Flush(bus);
  sent = tap.Take();
  // One message per socket subject (a socket may have moved off its id's edge).
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ((std::set<std::string>{sent[0].subject, sent[1].subject}),
            (std::set<std::string>{bus::SocketSubject(cluster.c), bus::SocketSubject("e2.gone")}));
  ASSERT_TRUE(message.ParseFromString(sent[0].payload));
  EXPECT_EQ(message.command().action_case(), v1::Command::kDisconnectClose);
  EXPECT_TRUE(message.command().disconnect_close());

  v1::DisconnectSocketsRequest everyone;
  everyone.mutable_selector()->set_all_sockets(true);
  auto all = broker->DisconnectSockets(everyone);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->matched_sockets(), 3u);  // "/" only
  Flush(bus);
  sent = tap.Take();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].subject, bus::NamespaceSubject("/"));
  ASSERT_TRUE(message.ParseFromString(sent[0].payload));
  EXPECT_EQ(message.command().action_case(), v1::Command::kDisconnectClose);
  EXPECT_FALSE(message.command().disconnect_close());
}

TEST(BrokerCommandTest, InvalidSelectorsAreRejected) {
  bus::InProcessBus bus;
  auto broker = StartBroker(bus);
  TargetTap tap(bus);
  auto join_status = [&](std::function<void(v1::JoinRoomsRequest&)> edit) {
    v1::JoinRoomsRequest request;
    request.mutable_selector()->add_rooms("r");
    request.add_rooms("x");
    edit(request);
    return broker->JoinRooms(request).status();
  };
  EXPECT_TRUE(join_status([](auto&) {}).ok());
  EXPECT_EQ(join_status([](auto& r) { r.mutable_selector()->clear_rooms(); }).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(join_status([](auto& r) { r.mutable_selector()->set_all_sockets(true); }).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(join_status([](auto& r) { r.clear_rooms(); }).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(join_status([](auto& r) { r.mutable_selector()->add_socket_ids("x"); }).code(),
            absl::StatusCode::kInvalidArgument);

  v1::LeaveRoomsRequest leave;
  leave.mutable_selector()->set_all_sockets(true);
  EXPECT_EQ(broker->LeaveRooms(leave).status().code(), absl::StatusCode::kInvalidArgument);
  leave.add_rooms("x");
  leave.mutable_selector()->add_user_ids("u");
  EXPECT_EQ(broker->LeaveRooms(leave).status().code(), absl::StatusCode::kInvalidArgument);

  v1::DisconnectSocketsRequest disconnect;
  EXPECT_EQ(broker->DisconnectSockets(disconnect).status().code(),
            absl::StatusCode::kInvalidArgument);
  disconnect.mutable_selector()->add_socket_ids("e1.a.");
  EXPECT_EQ(broker->DisconnectSockets(disconnect).status().code(),
            absl::StatusCode::kInvalidArgument);
  Flush(bus);
  EXPECT_EQ(tap.Take().size(), 1u);  // the one valid join
}

// ---------------------------------------------------------------------------
// Watching.

// Records what a watcher gets, in Describe form.

}  // namespace
}  // namespace switchboard::broker
