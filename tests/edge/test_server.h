#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "edge/http/server.h"
#include "edge/runtime.h"
#include "edge/socketio/server.h"
#include "tests/edge/blocking_client.h"

namespace switchboard::testing_support {

// A Socket.IO server at /socket.io/ on 127.0.0.1 (a free port) with two
// shards, for tests that drive it with BlockingClient. Register handlers on
// io() before Start().
class TestServer {
 public:
  explicit TestServer(eio::Options options = {}, sio::ServerOptions sio_options = {})
      : runtime_(2),
        io_(runtime_, std::move(options), std::move(sio_options)),
        http_(runtime_, {"127.0.0.1", 0}) {
    http_.Mount("/socket.io/", io_.engine());
  }
  // Closes every session, gives the close packets a moment, stops the shards.
  ~TestServer() { Stop(); }

  void Start() {
    ASSERT_TRUE(http_.Listen().ok());
    runtime_.Start();
    started_ = true;
  }
  void Stop() {
    if (!started_) return;
    started_ = false;
    io_.engine().CloseAll();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    runtime_.Stop();
    runtime_.Join();
  }

  edge::Runtime& runtime() { return runtime_; }
  sio::Server& io() { return io_; }
  uint16_t port() const { return http_.port(); }

 private:
  edge::Runtime runtime_;
  sio::Server io_;
  edge::HttpServer http_;
  bool started_ = false;
};

// "join" ROOM (acked with the socket id) and "leave" ROOM (acked) handlers.
inline void AddJoinLeaveHandlers(sio::Namespace& nsp) {
  using sio::Json;
  nsp.On("join", [](const sio::SocketPtr& socket, std::string_view, Json& args, sio::Ack ack) {
    socket->Join(args.at(0).get<std::string>());
    if (ack) ack(Json::array({socket->id()}));
  });
  nsp.On("leave", [](const sio::SocketPtr& socket, std::string_view, Json& args, sio::Ack ack) {
    socket->Leave(args.at(0).get<std::string>());
    if (ack) ack(Json::array());
  });
}

// Joins `room` through the "join" handler; returns the socket id it acked.
inline std::string JoinRoom(BlockingClient& client, const std::string& room) {
  client.Send(R"(421["join",")" + room + R"("])");
  for (;;) {
    std::string message = client.Read();
    if (message.rfind("431", 0) == 0) {
      return sio::Json::parse(message.substr(3)).at(0).get<std::string>();
    }
  }
}

}  // namespace switchboard::testing_support
