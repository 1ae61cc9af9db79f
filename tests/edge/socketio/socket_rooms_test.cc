// A socket's rooms as the application sees them (Socket::rooms(), like
// Socket.IO's socket.rooms: the own id first, then the rooms joined), and
// the own-id room reaching its socket, through joins, leaves and many
// connects and disconnects.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "edge/socketio/server.h"
#include "edge/socketio/socket.h"
#include "tests/support/edge_test.h"
#include "tests/support/eventually.h"

namespace switchboard {
namespace {

using sio::Json;
using testing_support::BlockingClient;
using testing_support::EdgeTest;
using testing_support::Eventually;
using testing_support::JoinRoom;

// Many handshakes from one address in a moment: no handshake rate.
eio::Options Unthrottled() {
  eio::Options options;
  options.handshake_rate.rate.per_second = 0;
  return options;
}

sio::ServerOptions WithRoomLimit(size_t max_rooms) {
  sio::ServerOptions options;
  options.limits.max_rooms_per_socket = max_rooms;
  return options;
}

class SocketRoomsTest : public EdgeTest {
 protected:
  SocketRoomsTest() : EdgeTest(Unthrottled(), WithRoomLimit(3)) {}

  void SetUp() override {
    sio::Namespace& nsp = server_.io().Of("/");
    // One client sends an event per socket: no event rate limit.
    sio::NamespaceLimits limits;
    limits.event_rate.rate.per_second = 0;
    nsp.SetLimits(limits);
    // "rooms": acks [socket.rooms, in own room, size()].
    nsp.On("rooms", [](const sio::SocketPtr& socket, std::string_view, Json&, sio::Ack ack) {
      Json rooms = Json::array();
      for (const std::string& room : socket->rooms()) rooms.push_back(room);
      ack(Json::array({rooms, socket->InRoom(socket->id()), socket->rooms().size()}));
    });
    // "try-join" ROOM: acks whether Join() took it.
    nsp.On("try-join",
           [](const sio::SocketPtr& socket, std::string_view, Json& args, sio::Ack ack) {
             ack(Json::array({socket->Join(args.at(0).get<std::string>())}));
           });
    // "to" ID: emits "direct" to the room ID (a socket id names its socket).
    nsp.On("to", [](const sio::SocketPtr& socket, std::string_view, Json& args, sio::Ack ack) {
      socket->nsp().To(args.at(0).get<std::string>()).Emit("direct", Json::array({args.at(0)}));
      ack(Json::array());
    });
    server_.Start();
  }

  // The acked arguments of event `json` (an array), sent with ack id 1.
  static Json Ask(BlockingClient& client, const std::string& json) {
    client.Send("421" + json);
    for (;;) {
      std::string message = client.Read();
      if (message.rfind("431", 0) == 0) return Json::parse(message.substr(3));
    }
  }
};

TEST_F(SocketRoomsTest, RoomsListTheOwnIdFirstThroughJoinsAndLeaves) {
  BlockingClient client(server_.port());
  std::string id = JoinRoom(client, "red");
  EXPECT_EQ(Ask(client, R"(["rooms"])"), Json::array({Json::array({id, "red"}), true, 2}));
  JoinRoom(client, "blue");
  JoinRoom(client, "red");  // already in: no change
  JoinRoom(client, id);     // its own room: no change
  EXPECT_EQ(Ask(client, R"(["rooms"])"), Json::array({Json::array({id, "red", "blue"}), true, 3}));
  client.Call(R"(["leave","red"])");
  EXPECT_EQ(Ask(client, R"(["rooms"])"), Json::array({Json::array({id, "blue"}), true, 2}));
  // Leaving its own room is allowed (as in Socket.IO) and can be undone.
  client.Call(R"(["leave",")" + id + R"("])");
  EXPECT_EQ(Ask(client, R"(["rooms"])"), Json::array({Json::array({"blue"}), false, 1}));
  JoinRoom(client, id);
  EXPECT_EQ(Ask(client, R"(["rooms"])"), Json::array({Json::array({id, "blue"}), true, 2}));
  client.Call(R"(["leave","blue"])");
  EXPECT_EQ(Ask(client, R"(["rooms"])"), Json::array({Json::array({id}), true, 1}));
  client.Close();
}

TEST_F(SocketRoomsTest, RoomLimitDoesNotCountTheOwnIdRoom) {
  BlockingClient client(server_.port());
  std::string id = JoinRoom(client, "a");
  EXPECT_EQ(Ask(client, R"(["try-join","b"])"), Json::array({true}));
  EXPECT_EQ(Ask(client, R"(["try-join","c"])"), Json::array({true}));
  // Three rooms besides its own: the limit.
  EXPECT_EQ(Ask(client, R"(["try-join","d"])"), Json::array({false}));
  EXPECT_EQ(Ask(client, R"(["try-join",")" + id + R"("])"), Json::array({true}));
  EXPECT_EQ(Ask(client, R"(["try-join","a"])"), Json::array({true}));  // in it already
  EXPECT_EQ(Ask(client, R"(["rooms"])"), Json::array({Json::array({id, "a", "b", "c"}), true, 4}));
  EXPECT_EQ(server_.io().limit_counters().room_limit, 1u);
  client.Call(R"(["leave","b"])");
  EXPECT_EQ(Ask(client, R"(["try-join","d"])"), Json::array({true}));
  client.Close();
}

TEST_F(SocketRoomsTest, SocketIdRoomFindsItsSocketAfterManyConnectsAndDisconnects) {
  // Enough sockets for each shard's socket table to grow several times, with
  // every other one gone again.
  constexpr int kSockets = 160;
  std::vector<std::unique_ptr<BlockingClient>> clients;
  std::vector<std::string> ids;
  for (int i = 0; i < kSockets; ++i) {
    clients.push_back(std::make_unique<BlockingClient>(server_.port()));
    ids.push_back(JoinRoom(*clients.back(), "all"));
  }
  for (int i = 0; i < kSockets; i += 2) {
    clients[i]->Close();
    clients[i].reset();
  }
  Eventually([&] { return server_.io().Of("/").SocketCount() == kSockets / 2; },
             std::chrono::seconds(10));
  ASSERT_EQ(server_.io().Of("/").SocketCount(), static_cast<size_t>(kSockets / 2));
  // Reconnects take the freed places.
  for (int i = 0; i < kSockets; i += 4) {
    clients[i] = std::make_unique<BlockingClient>(server_.port());
    ids[i] = JoinRoom(*clients[i], "all");
  }
  BlockingClient& sender = *clients[1];
  for (int i = 0; i < kSockets; ++i) {
    const std::string to = R"(["to",")" + ids[i] + R"("])";
    if (!clients[i]) {
      // A gone socket's id reaches nobody: the next message the sender gets
      // is its ack.
      EXPECT_EQ(Ask(sender, to), Json::array()) << i;
      continue;
    }
    sender.Send("421" + to);
    // The target gets the message (the sender too when it is the target,
    // then its ack).
    EXPECT_EQ(clients[i]->Read(), R"(42["direct",")" + ids[i] + R"("])") << i;
    for (;;) {
      std::string message = sender.Read();
      if (message.rfind("431", 0) == 0) break;
      EXPECT_EQ(i, 1) << message;
    }
  }
  for (auto& client : clients) {
    if (client) client->Close();
  }
}

}  // namespace
}  // namespace switchboard
