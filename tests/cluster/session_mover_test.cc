// Session moves between two edges (cluster/session_mover.h): real Socket.IO
// servers on one in-process bus, a client that opens its session by polling
// on edge A and its upgrade WebSocket on edge B (a balancer without
// affinity). The session moves to B with its socket id, rooms and data;
// publishes reach it exactly once and in order before, during and after the
// move; acks in flight either way are answered; and once moved it no longer
// needs A at all.
#include "cluster/session_mover.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bus/inproc_bus.h"
#include "bus/routing.h"
#include "cluster/edge_link.h"
#include "edge/http/server.h"
#include "edge/runtime.h"
#include "edge/socketio/socket.h"
#include "switchboard/v1/bus.pb.h"
#include "tests/edge/protocol_fixture.h"
#include "tests/support/eventually.h"

namespace switchboard {
namespace {

using protocol_test::HttpExchange;
using protocol_test::WsClient;
using protocol_test::WsMessage;
using sio::Json;
using testing_support::Eventually;
using namespace std::chrono_literals;
namespace http = boost::beast::http;

constexpr std::chrono::milliseconds kQuiet{300};

// One edge: a Socket.IO server at /socket.io/ on a free port, its link to the
// bus and its mover.
class Edge {
 public:
  Edge(bus::Bus& bus, std::string id) : id_(std::move(id)), runtime_(2) {
    eio::Options engine;
    engine.node_id = id_;
    engine.ping_interval = 60s;  // no heartbeat in the way of the test's reads
    sio::ServerOptions options;
    options.edge_id = id_;
    io_ = std::make_unique<sio::Server>(runtime_, engine, options);
    http_ = std::make_unique<edge::HttpServer>(runtime_, edge::HttpOptions{"127.0.0.1", 0});
    http_->Mount("/socket.io/", io_->engine());
    AddHandlers(io_->Of("/"));
    cluster::EdgeLink::Options link_options;
    link_options.edge_id = id_;
    link_options.heartbeat_interval = 1s;
    link_ = *cluster::EdgeLink::Start(bus, *io_, link_options);
    mover_ = *cluster::SessionMover::Start(bus, *io_, *link_, {.edge_id = id_});
    io_->engine().OnForeignUpgrade(
        [mover = mover_.get()](const std::shared_ptr<edge::HttpSession>& http,
                               std::string_view owner,
                               std::string_view sid) { mover->ArriveFrom(http, owner, sid); });
    EXPECT_TRUE(http_->Listen().ok());
    runtime_.Start();
  }
  ~Edge() { Stop(); }

  // Everything of this edge stops (its sessions closed first, so that
  // nothing of them is left holding itself).
  void Stop() {
    if (stopped_) return;
    stopped_ = true;
    io_->engine().CloseAll();
    std::this_thread::sleep_for(100ms);
    runtime_.Stop();
    runtime_.Join();
    mover_.reset();
    link_.reset();
  }

  uint16_t port() const { return http_->port(); }
  cluster::SessionMover& mover() { return *mover_; }
  sio::Server& io() { return *io_; }

 private:
  static void AddHandlers(sio::Namespace& nsp) {
    nsp.On("join", [](const sio::SocketPtr& socket, std::string_view, Json& args, sio::Ack ack) {
      socket->Join(args.at(0).get<std::string>());
      socket->data()["joined"] = args.at(0);
      if (ack) ack(Json::array({socket->id()}));
    });
    nsp.On("whoami", [](const sio::SocketPtr& socket, std::string_view, Json&, sio::Ack ack) {
      Json rooms = Json::array();
      for (const auto& room : socket->joined_rooms()) rooms.push_back(room);
      if (ack) ack(Json::array({socket->id(), rooms, socket->data()}));
    });
    // Acks after `ms` milliseconds: an answer in flight across a move.
    nsp.On("slow", [](const sio::SocketPtr& socket, std::string_view, Json& args, sio::Ack ack) {
      auto timer = std::make_shared<boost::asio::steady_timer>(
          socket->nsp().server().runtime().context(socket->client().shard()),
          std::chrono::milliseconds(args.at(0).get<int>()));
      timer->async_wait(
          [timer, ack](boost::system::error_code) mutable { ack(Json::array({"slow done"})); });
    });
    // Asks the client (an ack the client answers after the move), then
    // tells it what it answered.
    nsp.On("ask", [](const sio::SocketPtr& socket, std::string_view, Json&, sio::Ack) {
      std::weak_ptr<sio::Socket> weak = socket;
      socket->EmitWithAck("question", Json::array(), 10s, [weak](absl::StatusOr<Json> answer) {
        if (auto self = weak.lock()) {
          self->Emit("answered", answer.ok() ? *answer : Json::array({"no answer"}));
        }
      });
    });
  }

  std::string id_;
  edge::Runtime runtime_;
  std::unique_ptr<sio::Server> io_;
  std::unique_ptr<edge::HttpServer> http_;
  std::unique_ptr<cluster::EdgeLink> link_;
  std::unique_ptr<cluster::SessionMover> mover_;
  bool stopped_ = false;
};

// A client on the wire: polling on one edge, then its WebSocket on another.
class MovingClient {
 public:
  explicit MovingClient(uint16_t polling_port) : port_(polling_port) {}

  // Handshake and CONNECT to "/" by polling; returns the socket id.
  std::string Connect() {
    auto open = HttpExchange(port_, http::verb::get, "/socket.io/?EIO=4&transport=polling");
    EXPECT_EQ(open.status, 200);
    EXPECT_EQ(open.body.substr(0, 1), "0");
    sid_ = Json::parse(open.body.substr(1)).at("sid").get<std::string>();
    Post("40");
    std::string connect = NextPolled();
    EXPECT_EQ(connect.substr(0, 2), "40") << connect;
    return Json::parse(connect.substr(2)).at("sid").get<std::string>();
  }
  const std::string& sid() const { return sid_; }

  void Post(const std::string& packet) {
    auto result = HttpExchange(port_, http::verb::post, Url(), packet);
    EXPECT_EQ(result.status, 200) << result.body;
  }
  // The next packet from a GET (a payload may hold several: split on \x1e).
  std::string NextPolled() {
    while (polled_.empty()) {
      auto result = HttpExchange(port_, http::verb::get, Url());
      EXPECT_EQ(result.status, 200) << result.body;
      if (result.status != 200) return {};
      size_t start = 0;
      for (;;) {
        size_t end = result.body.find('\x1e', start);
        std::string packet = result.body.substr(start, end - start);
        if (packet != "6") polled_.push_back(packet);  // noops
        if (end == std::string::npos) break;
        start = end + 1;
      }
    }
    std::string packet = polled_.front();
    polled_.erase(polled_.begin());
    return packet;
  }

  // The upgrade on `port`: probe, then the upgrade packet.
  void Upgrade(uint16_t port, const std::function<void()>& between = nullptr) {
    ASSERT_EQ(ws_.Connect(port, "/socket.io/?EIO=4&transport=websocket&sid=" + sid_), 101);
    ws_.Send("2probe");
    ASSERT_EQ(ws_.Read(), WsMessage::Text("3probe"));
    if (between) between();
    ws_.Send("5");
  }
  WsClient& ws() { return ws_; }

  // Text frames until none arrives for kQuiet.
  std::vector<std::string> ReadAll() {
    std::vector<std::string> out;
    for (;;) {
      WsMessage message = ws_.Read(kQuiet);
      if (message.kind != WsMessage::Kind::kText) return out;
      out.push_back(message.data);
    }
  }

 private:
  std::string Url() const { return "/socket.io/?EIO=4&transport=polling&sid=" + sid_; }

  uint16_t port_;
  std::string sid_;
  std::vector<std::string> polled_;
  WsClient ws_;
};

class SessionMoverTest : public ::testing::Test {
 protected:
  // A numbered event "n" to `subject`, pre-encoded as a relaying edge sends it.
  void Publish(const std::string& subject, const std::string& room_or_socket, bool socket, int n) {
    v1::EdgeMessage message;
    v1::Delivery* delivery = message.mutable_delivery();
    delivery->set_id("test:" + std::to_string(n));
    delivery->set_origin_edge("publisher");
    delivery->mutable_target()->set_namespace_("/");
    if (socket) {
      delivery->mutable_target()->add_socket_ids(room_or_socket);
    } else {
      delivery->mutable_target()->add_rooms(room_or_socket);
    }
    delivery->add_frames("42[\"n\"," + std::to_string(n) + "]");
    ASSERT_TRUE(bus_.Publish(subject, message.SerializeAsString()).ok());
  }
  void ToRoom(const std::string& room, int n) {
    Publish(bus::RoomSubject("/", room), room, false, n);
  }
  void ToSocket(const std::string& id, int n) { Publish(bus::SocketSubject(id), id, true, n); }

  static std::string Event(int n) { return "42[\"n\"," + std::to_string(n) + "]"; }

  bus::InProcessBus bus_;
  Edge a_{bus_, "edge-a"};
  Edge b_{bus_, "edge-b"};
};

TEST_F(SessionMoverTest, AnUpgradeOnAnotherEdgeMovesTheSessionWithItsRoomsAndData) {
  MovingClient client(a_.port());
  const std::string socket_id = client.Connect();
  EXPECT_EQ(client.sid().substr(0, 7), "edge-a.");
  EXPECT_EQ(socket_id.substr(0, 7), "edge-a.");
  client.Post(R"(421["join","lobby"])");
  EXPECT_EQ(client.NextPolled(), "431[\"" + socket_id + "\"]");
  ToRoom("lobby", 1);
  EXPECT_EQ(client.NextPolled(), Event(1));

  // Published while the probe is answered (the session paused on A, B
  // already listening) and right after the upgrade packet.
  client.Upgrade(b_.port(), [&] { ToRoom("lobby", 2); });
  ToRoom("lobby", 3);
  EXPECT_EQ(client.ReadAll(), (std::vector<std::string>{Event(2), Event(3)}));

  // The same socket on B: id, rooms, data.
  client.ws().Send(R"(422["whoami"])");
  EXPECT_EQ(client.ws().Read(),
            WsMessage::Text("432[\"" + socket_id + "\",[\"lobby\"],{\"joined\":\"lobby\"}]"));
  EXPECT_EQ(b_.io().SocketCount(), 1u);
  EXPECT_EQ(a_.io().SocketCount(), 0u);
  EXPECT_EQ(a_.io().engine().SessionCount(), 0u);
  EXPECT_EQ(b_.mover().stats().moved_in, 1u);
  EXPECT_EQ(a_.mover().stats().moved_out, 1u);

  ToSocket(socket_id, 4);
  EXPECT_EQ(client.ReadAll(), (std::vector<std::string>{Event(4)}));

  // A dies: the session lives on B alone.
  a_.Stop();
  ToRoom("lobby", 5);
  ToSocket(socket_id, 6);
  EXPECT_EQ(client.ReadAll(), (std::vector<std::string>{Event(5), Event(6)}));
  client.ws().Send(R"(423["join","second"])");
  EXPECT_EQ(client.ws().Read(), WsMessage::Text("433[\"" + socket_id + "\"]"));
}

TEST_F(SessionMoverTest, EveryPublishDuringManyMovesArrivesOnceInOrder) {
  constexpr int kClients = 20;
  std::vector<std::unique_ptr<MovingClient>> clients;
  std::vector<std::string> ids;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<MovingClient>(a_.port()));
    ids.push_back(clients.back()->Connect());
    clients.back()->Post(R"(421["join","all"])");
    EXPECT_EQ(clients.back()->NextPolled().substr(0, 3), "431");
  }
  // A publisher keeps going while the clients move one after the other.
  std::atomic<bool> stop{false};
  std::atomic<int> sent{0};
  std::thread publisher([&] {
    for (int n = 1; n <= 2000 && !stop; ++n) {
      ToRoom("all", n);
      sent = n;
      std::this_thread::sleep_for(1ms);
    }
  });
  std::vector<std::vector<int>> received(kClients);
  for (int i = 0; i < kClients; ++i) {
    // What arrived by polling before the move (the GETs answered so far).
    clients[i]->Upgrade(b_.port());
  }
  stop = true;
  publisher.join();
  const int last = sent;
  for (int i = 0; i < kClients; ++i) {
    // Until the last one (or nothing for a while: then something is missing).
    while (received[i].empty() || received[i].back() < last) {
      WsMessage message = clients[i]->ws().Read();
      if (message.kind != WsMessage::Kind::kText) break;
      if (message.data.rfind("42[\"n\",", 0) == 0) {
        received[i].push_back(std::stoi(message.data.substr(7)));
      }
    }
    for (const std::string& text : clients[i]->ReadAll()) {  // and nothing after it
      if (text.rfind("42[\"n\",", 0) == 0) received[i].push_back(std::stoi(text.substr(7)));
    }
  }
  // Each client polled nothing after its CONNECT, so everything since its
  // join came over the WebSocket: 1..last, each once, in order.
  std::vector<int> expected;
  for (int n = 1; n <= last; ++n) expected.push_back(n);
  for (int i = 0; i < kClients; ++i) {
    auto [got, want] =
        std::mismatch(received[i].begin(), received[i].end(), expected.begin(), expected.end());
    EXPECT_EQ(received[i], expected)
        << "client " << i << ": " << received[i].size() << " received, first difference at "
        << (got - received[i].begin()) << ": got "
        << (got == received[i].end() ? std::string("nothing") : std::to_string(*got)) << ", want "
        << (want == expected.end() ? std::string("nothing") : std::to_string(*want));
  }
  EXPECT_EQ(b_.mover().stats().moved_in, static_cast<uint64_t>(kClients));
}

// The bus may bring one message to the two edges at different times: the
// new edge may get, after the move, what the old edge gave the socket long
// before (here: the same delivery published again once the move is done).
TEST_F(SessionMoverTest, WhatTheOldEdgeDeliveredIsNotDeliveredAgainWhenItReachesTheNewEdgeLate) {
  MovingClient client(a_.port());
  const std::string socket_id = client.Connect();
  client.Post(R"(421["join","lobby"])");
  EXPECT_EQ(client.NextPolled(), "431[\"" + socket_id + "\"]");
  ToRoom("lobby", 1);
  EXPECT_EQ(client.NextPolled(), Event(1));
  ToRoom("lobby", 2);  // queued on A: goes along with the session
  std::this_thread::sleep_for(kQuiet);

  client.Upgrade(b_.port());
  ToRoom("lobby", 1);  // late arrivals on B of what A delivered
  ToRoom("lobby", 2);
  ToRoom("lobby", 3);
  EXPECT_EQ(client.ReadAll(), (std::vector<std::string>{Event(2), Event(3)}));
}

TEST_F(SessionMoverTest, ARoomJoinedWhileTheSessionIsOnItsWayIsListenedToOnTheNewEdge) {
  MovingClient client(a_.port());
  const std::string socket_id = client.Connect();
  // Joined after the prepare step (B listens on what the sockets had then):
  // the take makes B listen on the new room first.
  client.Upgrade(b_.port(), [&] {
    client.Post(R"(421["join","late"])");
    ToRoom("late", 1);
  });
  ToRoom("late", 2);
  EXPECT_EQ(client.ReadAll(),
            (std::vector<std::string>{"431[\"" + socket_id + "\"]", Event(1), Event(2)}));
  a_.Stop();
  ToRoom("late", 3);
  EXPECT_EQ(client.ReadAll(), (std::vector<std::string>{Event(3)}));
}

TEST_F(SessionMoverTest, AcksInFlightAcrossTheMoveAreAnsweredBothWays) {
  MovingClient client(a_.port());
  client.Connect();
  // Client -> server: the handler on A answers after the move.
  client.Post(R"(425["slow",400])");
  // Server -> client: A asks; the client answers on B.
  client.Post(R"(42["ask"])");
  EXPECT_EQ(client.NextPolled(), "420[\"question\"]");
  client.Upgrade(b_.port());
  client.ws().Send("430[\"yes\"]");
  std::vector<std::string> got;
  for (int i = 0; i < 2; ++i) got.push_back(client.ws().Read().data);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{"42[\"answered\",\"yes\"]", "435[\"slow done\"]"}));
}

TEST_F(SessionMoverTest, AnUpgradeForAnUnknownSessionIsClosed) {
  WsClient ws;
  ASSERT_EQ(ws.Connect(b_.port(),
                       "/socket.io/?EIO=4&transport=websocket&sid=edge-a.AAAAAAAAAAAAAAAAAAAA"),
            101);
  ws.Send("2probe");
  WsMessage message = ws.Read();
  EXPECT_EQ(message.kind, WsMessage::Kind::kClosed);
  EXPECT_EQ(b_.mover().stats().failed, 1u);
}

TEST_F(SessionMoverTest, AProbeThatNeverUpgradesLeavesTheSessionPollingOnItsEdge) {
  MovingClient client(a_.port());
  client.Connect();
  client.Post(R"(421["join","lobby"])");
  EXPECT_EQ(client.NextPolled().substr(0, 3), "431");
  ASSERT_EQ(
      client.ws().Connect(b_.port(), "/socket.io/?EIO=4&transport=websocket&sid=" + client.sid()),
      101);
  client.ws().Send("2probe");
  ASSERT_EQ(client.ws().Read(), WsMessage::Text("3probe"));
  client.ws().Close();
  // Polling goes on at A.
  ToRoom("lobby", 7);
  EXPECT_EQ(client.NextPolled(), Event(7));
  EXPECT_EQ(a_.io().SocketCount(), 1u);
}

}  // namespace
}  // namespace switchboard
