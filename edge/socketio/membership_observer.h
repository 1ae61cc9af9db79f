#pragma once

#include <string>
#include <string_view>

namespace switchboard::sio {

class Socket;

// Hears every membership change of a server's namespaces, on the shard where
// it happens (so concurrently from several shards): what a cluster link turns
// into the edge's ordered membership stream and room subscriptions. A
// socket's own-id room is not reported; a disconnected socket still lists
// the rooms it was in.
class MembershipObserver {
 public:
  virtual ~MembershipObserver() = default;
  virtual void OnConnected(const Socket& socket) = 0;
  virtual void OnDisconnected(const Socket& socket, std::string_view reason) = 0;
  virtual void OnJoined(const Socket& socket, const std::string& room) = 0;
  virtual void OnLeft(const Socket& socket, const std::string& room) = 0;
  // The socket's connection moved from polling to WebSocket.
  virtual void OnTransportChanged(const Socket& /*socket*/) {}
  // The socket's session moved to another edge (a WebSocket upgrade landed
  // there): it is no longer here, but it did not disconnect. Reported
  // instead of OnDisconnected; the socket still lists its rooms.
  virtual void OnMovedOut(const Socket& /*socket*/, std::string_view /*to_edge*/) {}
  // A socket whose session moved here from `from_edge`, with its id, user,
  // rooms and data: reported instead of OnConnected (and its joins).
  virtual void OnMovedIn(const Socket& /*socket*/, std::string_view /*from_edge*/) {}
};

}  // namespace switchboard::sio
