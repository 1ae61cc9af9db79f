// The fixture of tests that drive a live Socket.IO server with BlockingClient
// clients (edge, cluster and services tests alike).
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <utility>

#include "edge/socketio/namespace.h"
#include "edge/socketio/server.h"
#include "edge/socketio/socket.h"
#include "tests/edge/test_server.h"

namespace switchboard::testing_support {

// Server options of an edge named `edge_id` (its socket ids name it, as in a
// cluster).
inline sio::ServerOptions NamedEdge(std::string edge_id) {
  sio::ServerOptions options;
  options.edge_id = std::move(edge_id);
  return options;
}

// A middleware for `nsp`: a CONNECT auth with a "user" gives the socket that
// user id, and the auth as its claims.
inline void UserFromAuth(sio::Namespace& nsp) {
  nsp.Use([](const sio::SocketPtr& socket, sio::Next next) {
    const sio::Json& auth = socket->auth();
    if (auth.is_object() && auth.contains("user")) {
      socket->SetUserId(auth["user"].get<std::string>());
      socket->SetClaims(auth);
    }
    next(std::nullopt);
  });
}

// A TestServer (127.0.0.1, a free port, two shards) with the "join" and
// "leave" handlers on "/". A test adds its handlers, middleware and observers,
// then calls server_.Start(). TearDown stops the server and forgets its
// membership observer, so nothing of the server runs or reports to the test's
// own members (observers, links, buses) once they are destroyed.
class EdgeTest : public ::testing::Test {
 protected:
  explicit EdgeTest(eio::Options options = {}, sio::ServerOptions sio_options = {})
      : server_(std::move(options), std::move(sio_options)) {
    AddJoinLeaveHandlers(server_.io().Of("/"));
  }

  void TearDown() override {
    server_.Stop();
    server_.io().SetMembershipObserver(nullptr);
  }

  TestServer server_;
};

}  // namespace switchboard::testing_support
