// The seed chat's logic as a backend of Switchboard: what to publish and what
// to answer for each event the broker's WatchEvents stream delivers. No I/O:
// main.cc feeds it events and sends what it returns through the gRPC API.
//
// Client-facing contract (namespace configured by the caller, "/" by default):
//
//   client emits                      everyone gets
//   user-join  "alice" | {username}   notification "alice joined the chat"  (all but the joiner)
//                                     user-list   ["alice", ...]      (all, in join order), then
//                                     ack {ok: true, username, users}
//   chat-message "hi" | {message}     chat-message {username, message, timestamp} (all)
//                                     ack {ok: true}
//   typing  [true|false] | {isTyping} typing {username, isTyping}          (all but the typer)
//   stop-typing                       typing {username, isTyping: false}   (all but the typer)
//   (disconnect, any reason, also     notification "alice left the chat"    (all but the leaver),
//    "edge timeout")                  then user-list (all)
//
// Event names and payloads are the seed's (its "complete chat application": a plain string
// notification, socket.broadcast.emit); the acks, stop-typing and the checks are ours. The
// notification comes before the list so that a client holding the new list has had it.
//
// Errors are acks {ok: false, error}: "invalid username", "already joined", "join first",
// "invalid message". Timestamps are milliseconds since the Unix epoch.

#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "switchboard/v1/switchboard.pb.h"

namespace chat {

// One call the backend makes: a Publish or an Ack.
using Action = std::variant<switchboard::v1::PublishRequest, switchboard::v1::AckRequest>;

inline constexpr size_t kMaxUsernameBytes = 32;
inline constexpr size_t kMaxMessageBytes = 2000;

class Chat {
 public:
  // `nsp`: the namespace it serves. `now_ms`: the clock (ms since the epoch).
  explicit Chat(std::string nsp, std::function<int64_t()> now_ms = nullptr);

  // The calls to make for one WatchEvents event (none for events it ignores).
  std::vector<Action> OnEvent(const switchboard::v1::WatchEventsResponse& event);

  // After the watch stream was (re)opened: users whose socket is not in `live_socket_ids` (the
  // namespace's sockets, from ListSockets) left while nobody watched.
  std::vector<Action> Resync(const std::set<std::string>& live_socket_ids);

  // Usernames in join order.
  std::vector<std::string> Usernames() const;
  const std::string& nsp() const { return nsp_; }

 private:
  struct User {
    std::string socket_id;
    std::string username;
    bool typing = false;
  };

  void OnClientEvent(const switchboard::v1::ClientEvent& event, std::vector<Action>& out);
  void OnUserJoin(const switchboard::v1::ClientEvent& event, std::vector<Action>& out);
  void OnChatMessage(const switchboard::v1::ClientEvent& event, std::vector<Action>& out);
  void OnTyping(const switchboard::v1::ClientEvent& event, bool stop, std::vector<Action>& out);
  void RemoveUser(const std::string& socket_id, std::vector<Action>& out);

  User* Find(const std::string& socket_id);
  // Publish of `event` with one JSON argument to the namespace, except `except_socket` if set.
  switchboard::v1::PublishRequest Broadcast(const std::string& event, const std::string& json,
                                            const std::string& except_socket = "") const;
  switchboard::v1::PublishRequest UserList() const;

  std::string nsp_;
  std::function<int64_t()> now_ms_;
  std::vector<User> users_;  // join order; small (a chat room), so linear search is fine
};

}  // namespace chat
