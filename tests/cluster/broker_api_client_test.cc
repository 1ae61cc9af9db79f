// The brokers' bus API from an edge: a real Socket.IO server with its
// EdgeLink, a real broker with its BusApi, and the edge's BrokerApiClient, on
// the in-process bus and on a real nats-server. What a client connected to the
// edge does is what the API lists; the API's actions reach it.
#include "cluster/broker_api_client.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "broker/broker.h"
#include "broker/bus_api.h"
#include "bus/inproc_bus.h"
#include "bus/nats_bus.h"
#include "bus/routing.h"
#include "cluster/edge_link.h"
#include "switchboard/v1/bus.pb.h"
#include "tests/bus/nats_server.h"
#include "tests/support/edge_test.h"
#include "tests/support/eventually.h"

namespace switchboard {
namespace {

using cluster::BrokerApiClient;
using testing_support::BlockingClient;
using testing_support::EdgeTest;
using testing_support::Eventually;
using testing_support::JoinRoom;
using testing_support::NamedEdge;
using namespace std::chrono_literals;

constexpr char kEdge[] = "edge-api";

// Calls a client method and waits for its callback.
template <typename Request, typename Response>
absl::StatusOr<Response> Sync(const BrokerApiClient& client,
                              void (BrokerApiClient::*method)(const Request&,
                                                              BrokerApiClient::Done<Response>,
                                                              bus::Executor) const,
                              const Request& request) {
  auto promise = std::make_shared<std::promise<absl::StatusOr<Response>>>();
  auto future = promise->get_future();
  (client.*method)(
      request,
      [promise](absl::StatusOr<Response> result) { promise->set_value(std::move(result)); }, {});
  if (future.wait_for(10s) != std::future_status::ready) {
    return absl::InternalError("test: the callback never ran");
  }
  return future.get();
}

// Once this returns, the server has every subscription `bus` made before (a
// round trip on the same connection).
void RoundTrip(bus::Bus& bus) {
  std::promise<void> seen;
  auto sub = bus.Subscribe("test.roundtrip", [&](bus::Message) { seen.set_value(); });
  ASSERT_TRUE(sub.ok()) << sub.status();
  ASSERT_TRUE(bus.Publish("test.roundtrip", "").ok());
  ASSERT_EQ(seen.get_future().wait_for(5s), std::future_status::ready);
}

std::unique_ptr<bus::Bus> ConnectNats(const bus::testing::NatsServer& server,
                                      const std::string& name) {
  bus::NatsBus::Options options;
  options.urls = {server.url()};
  options.name = name;
  auto connected = bus::NatsBus::Connect(options);
  EXPECT_TRUE(connected.ok()) << connected.status();
  return connected.ok() ? std::move(*connected) : nullptr;
}

broker::BrokerOptions BrokerOptions(std::string id) {
  broker::BrokerOptions options;
  options.broker_id = std::move(id);
  options.tick = 20ms;
  options.snapshot_timeout = 500ms;
  return options;
}

// A broker and its bus API.
struct ApiBroker {
  std::unique_ptr<broker::Broker> broker;
  std::unique_ptr<broker::BusApi> api;

  static std::unique_ptr<ApiBroker> Start(bus::Bus& bus, std::string id) {
    auto out = std::make_unique<ApiBroker>();
    auto started = broker::Broker::Start(bus, BrokerOptions(std::move(id)));
    EXPECT_TRUE(started.ok()) << started.status();
    if (!started.ok()) return nullptr;
    out->broker = std::move(*started);
    auto api = broker::BusApi::Start(bus, *out->broker);
    EXPECT_TRUE(api.ok()) << api.status();
    if (!api.ok()) return nullptr;
    out->api = std::move(*api);
    return out;
  }
};

// GetParam(): true on a real nats-server (separate connections for the edge
// and the broker), false on one in-process bus.
class BrokerApiClientTest : public EdgeTest, public ::testing::WithParamInterface<bool> {
 protected:
  BrokerApiClientTest() : EdgeTest({}, NamedEdge(kEdge)) {}

  void SetUp() override {
    if (GetParam()) {
      ASSERT_TRUE(nats_.Start());
      edge_bus_owned_ = ConnectNats(nats_, "edge");
      broker_bus_owned_ = ConnectNats(nats_, "broker");
      ASSERT_NE(edge_bus_owned_, nullptr);
      ASSERT_NE(broker_bus_owned_, nullptr);
      edge_bus_ = edge_bus_owned_.get();
      broker_bus_ = broker_bus_owned_.get();
    } else {
      edge_bus_owned_ = std::make_unique<bus::InProcessBus>();
      edge_bus_ = broker_bus_ = edge_bus_owned_.get();
    }
    broker_ = ApiBroker::Start(*broker_bus_, "b1");
    ASSERT_NE(broker_, nullptr);
    RoundTrip(*broker_bus_);
    cluster::EdgeLink::Options options;
    options.edge_id = kEdge;
    options.heartbeat_interval = 100ms;
    auto link = cluster::EdgeLink::Start(*edge_bus_, server_.io(), options);
    ASSERT_TRUE(link.ok()) << link.status();
    link_ = std::move(*link);
    server_.Start();
    client_ = std::make_unique<BrokerApiClient>(*edge_bus_, 2s);
  }
  void TearDown() override {
    EdgeTest::TearDown();
    link_.reset();
    broker_.reset();
    broker_bus_owned_.reset();
    edge_bus_owned_.reset();
  }

  // The ids ListSockets returns through the bus API (empty on an error).
  std::vector<std::string> ListedIds(v1::ListSocketsRequest request = {}) {
    auto listed = Sync(*client_, &BrokerApiClient::ListSockets, request);
    EXPECT_TRUE(listed.ok()) << listed.status();
    std::vector<std::string> ids;
    if (listed.ok()) {
      for (const auto& socket : listed->sockets()) ids.push_back(socket.id());
    }
    return ids;
  }
  // A client connected to the edge, in room "r", listed by the brokers.
  std::string ConnectListed(BlockingClient& client) {
    std::string id = JoinRoom(client, "r");
    v1::ListSocketsRequest in_r;
    in_r.set_namespace_("/");
    in_r.set_room("r");
    EXPECT_TRUE(Eventually([&] { return ListedIds(in_r) == std::vector<std::string>{id}; }));
    return id;
  }

  bus::testing::NatsServer nats_;
  std::unique_ptr<bus::Bus> edge_bus_owned_, broker_bus_owned_;
  bus::Bus* edge_bus_ = nullptr;
  bus::Bus* broker_bus_ = nullptr;
  std::unique_ptr<ApiBroker> broker_;
  std::unique_ptr<cluster::EdgeLink> link_;
  std::unique_ptr<BrokerApiClient> client_;
};

TEST_P(BrokerApiClientTest, ListsASocketConnectedThroughTheEdge) {
  BlockingClient client(server_.port());
  std::string id = ConnectListed(client);
  auto listed = Sync(*client_, &BrokerApiClient::ListSockets, v1::ListSocketsRequest{});
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->sockets_size(), 1);
  const v1::SocketInfo& socket = listed->sockets(0);
  EXPECT_EQ(socket.id(), id);
  EXPECT_EQ(socket.edge_id(), kEdge);
  EXPECT_EQ(socket.namespace_(), "/");
  EXPECT_EQ(std::vector<std::string>(socket.rooms().begin(), socket.rooms().end()),
            std::vector<std::string>{"r"});
}

TEST_P(BrokerApiClientTest, JoinRoomsMakesTheSocketJoin) {
  BlockingClient client(server_.port());
  std::string id = ConnectListed(client);
  v1::JoinRoomsRequest join;
  join.mutable_selector()->add_socket_ids(id);
  join.add_rooms("lobby");
  auto joined = Sync(*client_, &BrokerApiClient::JoinRooms, join);
  ASSERT_TRUE(joined.ok()) << joined.status();
  EXPECT_EQ(joined->matched_sockets(), 1u);
  // The edge made it join: its membership stream says so to the broker.
  v1::ListSocketsRequest in_lobby;
  in_lobby.set_namespace_("/");
  in_lobby.set_room("lobby");
  EXPECT_TRUE(Eventually([&] { return ListedIds(in_lobby) == std::vector<std::string>{id}; }));
}

TEST_P(BrokerApiClientTest, PublishReachesTheSocket) {
  BlockingClient client(server_.port());
  ConnectListed(client);
  v1::PublishRequest publish;
  publish.mutable_target()->add_rooms("r");
  publish.set_event("news");
  publish.add_args()->set_json(R"({"n":1})");
  auto published = Sync(*client_, &BrokerApiClient::Publish, publish);
  ASSERT_TRUE(published.ok()) << published.status();
  EXPECT_EQ(published->recipients(), 1u);
  EXPECT_EQ(client.Read(), R"(42["news",{"n":1}])");
}

TEST_P(BrokerApiClientTest, PublishWithAcksWaitsForTheClientsAck) {
  BlockingClient client(server_.port());
  std::string id = ConnectListed(client);
  v1::PublishRequest publish;
  publish.mutable_target()->add_socket_ids(id);
  publish.set_event("ask");
  publish.set_ack_timeout_ms(3000);
  // The client's own timeout is shorter than the acks': Publish waits longer.
  BrokerApiClient impatient(*edge_bus_, 200ms);
  auto promise = std::make_shared<std::promise<absl::StatusOr<v1::PublishResponse>>>();
  impatient.Publish(publish, [promise](absl::StatusOr<v1::PublishResponse> result) {
    promise->set_value(std::move(result));
  });
  std::string asked = client.Read();  // 42<ack id>["ask"]
  ASSERT_EQ(asked.substr(0, 2), "42") << asked;
  std::string ack_id = asked.substr(2, asked.find('[') - 2);
  std::this_thread::sleep_for(400ms);  // past the client's own timeout
  client.Send("43" + ack_id + R"(["done"])");
  auto future = promise->get_future();
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  auto published = future.get();
  ASSERT_TRUE(published.ok()) << published.status();
  ASSERT_EQ(published->acks_size(), 1);
  EXPECT_EQ(published->acks(0).socket_id(), id);
  ASSERT_EQ(published->acks(0).args_size(), 1);
  EXPECT_EQ(published->acks(0).args(0).json(), R"("done")");
}

TEST_P(BrokerApiClientTest, TheOtherMethodsAreServed) {
  BlockingClient client(server_.port());
  std::string id = ConnectListed(client);

  auto stats = Sync(*client_, &BrokerApiClient::GetStats, v1::GetStatsRequest{});
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->totals().sockets(), 1u);

  auto edges = Sync(*client_, &BrokerApiClient::ListEdges, v1::ListEdgesRequest{});
  ASSERT_TRUE(edges.ok()) << edges.status();
  ASSERT_EQ(edges->edges_size(), 1);
  EXPECT_EQ(edges->edges(0).edge_id(), kEdge);

  v1::LeaveRoomsRequest leave;
  leave.mutable_selector()->add_socket_ids(id);
  leave.add_rooms("r");
  auto left = Sync(*client_, &BrokerApiClient::LeaveRooms, leave);
  ASSERT_TRUE(left.ok()) << left.status();
  EXPECT_EQ(left->matched_sockets(), 1u);
  v1::ListSocketsRequest in_r;
  in_r.set_namespace_("/");
  in_r.set_room("r");
  EXPECT_TRUE(Eventually([&] { return ListedIds(in_r).empty(); }));

  v1::DisconnectSocketsRequest disconnect;
  disconnect.mutable_selector()->add_socket_ids(id);
  auto disconnected = Sync(*client_, &BrokerApiClient::DisconnectSockets, disconnect);
  ASSERT_TRUE(disconnected.ok()) << disconnected.status();
  EXPECT_EQ(disconnected->matched_sockets(), 1u);
  EXPECT_EQ(client.Read(), "41");  // the server's DISCONNECT
  EXPECT_TRUE(Eventually([&] { return ListedIds().empty(); }));
}

TEST_P(BrokerApiClientTest, TheBrokersErrorsKeepTheirCode) {
  v1::ListSocketsRequest request;
  request.set_page_token("not a token");
  auto listed = Sync(*client_, &BrokerApiClient::ListSockets, request);
  EXPECT_EQ(listed.status().code(), absl::StatusCode::kInvalidArgument) << listed.status();
}

TEST_P(BrokerApiClientTest, AnUnknownMethodIsUnimplemented) {
  auto promise = std::make_shared<std::promise<absl::StatusOr<v1::GetStatsResponse>>>();
  client_->Typed<v1::GetStatsResponse>("GetStatz", v1::GetStatsRequest{},
                                       [promise](absl::StatusOr<v1::GetStatsResponse> result) {
                                         promise->set_value(std::move(result));
                                       });
  auto result = promise->get_future().get();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnimplemented) << result.status();
  EXPECT_NE(result.status().message().find("GetStatz"), std::string::npos) << result.status();
}

// Without a broker on the bus: Unavailable at once, not a time-out.
TEST_P(BrokerApiClientTest, NoBrokerIsUnavailable) {
  broker_.reset();
  RoundTrip(*broker_bus_);  // the server saw the unsubscription
  auto start = std::chrono::steady_clock::now();
  auto stats = Sync(*client_, &BrokerApiClient::GetStats, v1::GetStatsRequest{});
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kUnavailable) << stats.status();
  EXPECT_NE(stats.status().message().find("no broker"), std::string::npos) << stats.status();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
}

INSTANTIATE_TEST_SUITE_P(Buses, BrokerApiClientTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Nats" : "InProcess";
                         });

// Two brokers on one nats-server: each request is answered once (the queue
// group `sb-brokers`), whichever broker takes it.
TEST(BrokerApiNatsTest, OneOfTwoBrokersAnswersEachRequest) {
  bus::testing::NatsServer nats;
  ASSERT_TRUE(nats.Start());
  auto bus_1 = ConnectNats(nats, "broker-1");
  auto bus_2 = ConnectNats(nats, "broker-2");
  auto caller = ConnectNats(nats, "caller");
  ASSERT_TRUE(bus_1 && bus_2 && caller);
  auto broker_1 = ApiBroker::Start(*bus_1, "b1");
  auto broker_2 = ApiBroker::Start(*bus_2, "b2");
  ASSERT_TRUE(broker_1 && broker_2);
  RoundTrip(*bus_1);
  RoundTrip(*bus_2);

  std::atomic<int> replies{0};
  auto inbox = caller->Subscribe("test.inbox", [&](bus::Message message) {
    v1::ApiReply reply;
    EXPECT_TRUE(reply.ParseFromString(message.payload));
    EXPECT_EQ(reply.code(), 0) << reply.message();
    replies.fetch_add(1);
  });
  ASSERT_TRUE(inbox.ok()) << inbox.status();
  RoundTrip(*caller);
  constexpr int kRequests = 20;
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(caller->Publish(bus::ApiSubject("GetStats"), "", "test.inbox").ok());
  }
  ASSERT_TRUE(Eventually([&] { return replies.load() >= kRequests; }));
  std::this_thread::sleep_for(300ms);  // a second answer would be here by now
  EXPECT_EQ(replies.load(), kRequests);

  // Through the client too, while either broker is there.
  BrokerApiClient client(*caller, 2s);
  EXPECT_TRUE(Sync(client, &BrokerApiClient::GetStats, v1::GetStatsRequest{}).ok());
  broker_1.reset();
  RoundTrip(*bus_1);
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(Sync(client, &BrokerApiClient::GetStats, v1::GetStatsRequest{}).ok());
  }
}

}  // namespace
}  // namespace switchboard
