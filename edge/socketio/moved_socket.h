#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "edge/engineio/packet.h"
#include "edge/socketio/packet.h"

namespace switchboard::sio {

class Socket;

// What a namespace socket takes along when its session moves to another edge
// (cluster/session_mover.h): the same id, user, claims, data and rooms.
struct MovedSocketState {
  std::string nsp;
  std::string id;
  std::string user_id;
  Json claims;
  Json data;
  Json auth;
  std::vector<std::string> rooms;  // without the own id room
  bool in_own_room = false;
  // The next server -> client ack id (answers to earlier ids go back to the
  // edge the socket's id names: MoveRelay::AnswerElsewhere).
  uint64_t next_ack_id = 0;
  // Connection state recovery: the session's pid and where its log began
  // (the session stays recoverable on the new edge), and the last log offset
  // its old edge had handed to the socket's shard when it left: the new edge
  // sends what came after it and skips the rest.
  std::string pid;
  uint64_t start_offset = 0;
  uint64_t log_offset = 0;
};

// Where what concerns a moved socket goes on the other edge; set by a cluster
// link (sio::Server::SetMoveRelay), called on the socket's shard.
class MoveRelay {
 public:
  virtual ~MoveRelay() = default;
  // The old edge: a socket whose session moved away sends a packet (e.g. the
  // answer to an ack the client asked for before the move).
  virtual void SendToMoved(const Socket& socket, const std::vector<eio::Frame>& frames) = 0;
  // The new edge: the client answered a server -> client ack that this edge
  // does not await (the old edge asked for it before the move).
  virtual void AnswerElsewhere(const Socket& socket, uint64_t ack_id, const Json& args) = 0;
};

}  // namespace switchboard::sio
