// The membership observer hears connects, joins, leaves and disconnects as
// they happen, without a socket's own-id room, on both shards.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>

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

class Recorder : public sio::MembershipObserver {
 public:
  void OnConnected(const sio::Socket& socket) override {
    Add("connected " + socket.id() + " " + socket.nsp().name());
  }
  void OnDisconnected(const sio::Socket& socket, std::string_view reason) override {
    std::string rooms;
    for (const auto& room : socket.rooms()) {
      if (room != socket.id()) rooms += " " + room;
    }
    Add("disconnected " + socket.id() + " " + std::string(reason) + " in" + rooms);
  }
  void OnJoined(const sio::Socket& socket, const std::string& room) override {
    Add("joined " + socket.id() + " " + room);
  }
  void OnLeft(const sio::Socket& socket, const std::string& room) override {
    Add("left " + socket.id() + " " + room);
  }

  std::vector<std::string> Events() {
    std::lock_guard lock(mu_);
    return events_;
  }

 private:
  void Add(std::string event) {
    std::lock_guard lock(mu_);
    events_.push_back(std::move(event));
  }
  std::mutex mu_;
  std::vector<std::string> events_;
};

class MembershipTest : public EdgeTest {
 protected:
  void SetUp() override {
    server_.io().SetMembershipObserver(&recorder_);
    server_.Start();
  }

  bool WaitForEvents(size_t n) {
    return Eventually([&] { return recorder_.Events().size() >= n; });
  }

  Recorder recorder_;  // the server reports to it until TearDown
};

TEST_F(MembershipTest, ReportsEveryChangeOfEverySocket) {
  BlockingClient a(server_.port());
  BlockingClient b(server_.port());  // the next shard: connections alternate
  std::string id_a = JoinRoom(a, "lobby");
  std::string id_b = JoinRoom(b, "lobby");
  JoinRoom(a, "lobby");  // already in: no event
  JoinRoom(a, "games");
  a.Call(R"(["leave","lobby"])");
  a.Call(R"(["leave","nowhere"])");  // not in: no event
  a.Close();
  ASSERT_TRUE(WaitForEvents(7));
  b.Close();
  ASSERT_TRUE(WaitForEvents(8));

  std::vector<std::string> events = recorder_.Events();
  // Per socket the order is exact; a's and b's streams interleave.
  auto of = [&](const std::string& id) {
    std::vector<std::string> mine;
    for (const auto& e : events) {
      if (e.find(id) != std::string::npos) mine.push_back(e);
    }
    return mine;
  };
  EXPECT_EQ(of(id_a), (std::vector<std::string>{
                          "connected " + id_a + " /",
                          "joined " + id_a + " lobby",
                          "joined " + id_a + " games",
                          "left " + id_a + " lobby",
                          "disconnected " + id_a + " transport close in games",
                      }));
  EXPECT_EQ(of(id_b), (std::vector<std::string>{
                          "connected " + id_b + " /",
                          "joined " + id_b + " lobby",
                          "disconnected " + id_b + " transport close in lobby",
                      }));
  EXPECT_EQ(events.size(), 8u);
}

TEST_F(MembershipTest, SnapshotVisitsTheSocketsOfEachShard) {
  BlockingClient a(server_.port());
  BlockingClient b(server_.port());
  std::string id_a = JoinRoom(a, "x");
  std::string id_b = JoinRoom(b, "y");
  std::vector<std::string> seen;
  std::mutex mu;
  for (size_t shard = 0; shard < server_.runtime().size(); ++shard) {
    std::promise<void> done;
    server_.runtime().Post(shard, [&] {
      server_.io().Of("/").ForEachLocalSocket([&](const sio::Socket& socket) {
        std::lock_guard lock(mu);
        seen.push_back(socket.id());
      });
      done.set_value();
    });
    done.get_future().wait();
  }
  std::sort(seen.begin(), seen.end());
  std::vector<std::string> expected{id_a, id_b};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(seen, expected);
  a.Close();
  b.Close();
}

}  // namespace
}  // namespace switchboard
