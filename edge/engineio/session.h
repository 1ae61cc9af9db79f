#pragma once

#include <array>
#include <boost/asio/steady_timer.hpp>
#include <boost/intrusive/list_hook.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "edge/engineio/handshake.h"
#include "edge/engineio/packet.h"
#include "edge/ids.h"

namespace switchboard::edge {
class HttpSession;
}

namespace switchboard::eio {

class Server;
class WebSocketTransport;
class HeartbeatQueue;

using HeartbeatHook =
    boost::intrusive::list_member_hook<boost::intrusive::link_mode<boost::intrusive::auto_unlink>>;

// What a session tells its owner (the Socket.IO client over it).
class SessionListener {
 public:
  // A message packet from the client (text, or binary with `binary` set).
  virtual void OnSessionMessage(Packet&& packet) = 0;
  // The session ended, whoever ended it. Called once; the session lets go
  // of its listener then.
  virtual void OnSessionClose(std::string_view reason) = 0;
  // The session moved from polling to WebSocket.
  virtual void OnSessionUpgrade() {}

 protected:
  ~SessionListener() = default;
};

// One Engine.IO session: its transport (polling or WebSocket, and the upgrade
// between them), heartbeat and bounded send queue. Lives on one shard; every
// method runs there.
class Session : public std::enable_shared_from_this<Session> {
 public:
  enum class Transport { kPolling, kWebSocket };

  // `id` is an edge::NewId (edge::kIdLength characters).
  Session(Server& server, std::string_view id, size_t shard, Handshake handshake,
          Transport transport);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  std::string_view id() const { return std::string_view(id_.data(), id_.size()); }
  size_t shard() const { return shard_; }
  const Handshake& handshake() const { return handshake_; }
  std::string_view transport_name() const {
    return transport_ == Transport::kPolling ? "polling" : "websocket";
  }
  bool is_open() const { return state_ == State::kOpen; }

  // The session holds its listener (one pointer, not three callbacks: a
  // session lives as long as its connection) until it closes.
  void SetListener(std::shared_ptr<SessionListener> listener) { listener_ = std::move(listener); }
  // Shorthand for a listener that only takes messages.
  void OnMessage(std::function<void(Packet&&)> handler);

  // Queues frames for the client, all or none. A volatile send is dropped
  // (returns false) when the client is behind. Past the queue bound the
  // client is disconnected.
  bool Send(const Frame* frames, size_t count, bool is_volatile = false);
  bool Send(const Frame& frame, bool is_volatile = false) { return Send(&frame, 1, is_volatile); }
  // Prefetches of what Send() reads: the session, then (once it is in) its
  // transport.
  void Prefetch() const {
    __builtin_prefetch(&state_);
    __builtin_prefetch(&ws_);
  }
  void PrefetchTransport() const;
  // Server-side close: flushes what is queued, then closes.
  void Close(std::string_view reason = "forced close");

  // Internal: transport entry points.
  // Starts a session whose handshake came over polling; returns the open
  // packet.
  std::string OpenPolling();
  void OpenWebSocket(std::shared_ptr<WebSocketTransport> ws);
  void HandlePoll(const std::shared_ptr<edge::HttpSession>& http);
  void HandlePost(const std::shared_ptr<edge::HttpSession>& http);
  // A WebSocket opened with this session's sid: an upgrade probe.
  bool CanUpgrade() const;
  // Ends the session if its pong is overdue; false once it is gone.
  bool CheckHeartbeat();
  void HandleUpgrade(std::shared_ptr<WebSocketTransport> ws);
  void OnFrame(WebSocketTransport* from, std::string_view data, bool binary);
  void OnTransportClosed(WebSocketTransport* from, std::string_view reason);
  // A WebSocket message over maxHttpBufferSize (the transport then closes).
  void OnMessageTooBig();

 private:
  enum class State { kOpen, kClosing, kClosed };
  enum class Timer { kNone, kPing, kPong };

  std::string OpenPacket(bool upgrades) const;
  void OnPacket(Packet&& packet);
  void SchedulePing();
  // The ping (or pong) due now (called by the HeartbeatQueue).
  void OnHeartbeatTimer();
  void Flush();
  void FlushPoll();
  void RespondPoll(std::string body);
  void Terminate(std::string_view reason, bool client_initiated, bool graceful = false);
  void Finish();
  void EndProbe();

  // What only a session on polling (or upgrading from it) needs: a
  // WebSocket session, most of them, does without.
  struct Polling {
    // Frames for the next GET (and those queued before an upgrade completes);
    // a WebSocket keeps its own queue.
    std::vector<Frame> queue;
    size_t queued_bytes = 0;
    std::shared_ptr<edge::HttpSession> poll;  // pending long-poll GET
    // The POST whose body is being read: one at a time, as the reference
    // server allows (a second one is "data request overlap").
    std::weak_ptr<edge::HttpSession> data_request;
    bool flush_posted = false;
    std::shared_ptr<WebSocketTransport> probe;  // WebSocket being upgraded to
    bool upgrading = false;                     // probe answered, awaiting "5"
    std::unique_ptr<boost::asio::steady_timer> upgrade_timer;
    std::unique_ptr<boost::asio::steady_timer> linger_timer;
  };

  Server& server_;
  size_t shard_;
  std::array<char, edge::kIdLength> id_;
  Transport transport_;
  State state_ = State::kOpen;
  bool terminal_queued_ = false;  // close (or noop) packet queued
  bool overflowed_ = false;       // past the queue bound: closing
  Timer heartbeat_state_ = Timer::kNone;
  Handshake handshake_;
  std::shared_ptr<WebSocketTransport> ws_;  // active WebSocket transport
  // Set while the session is on polling; released once it has upgraded.
  std::unique_ptr<Polling> polling_;

  // In the shard's HeartbeatQueue while a ping or a pong is due.
  friend class HeartbeatQueue;
  HeartbeatHook heartbeat_hook_;
  std::chrono::steady_clock::time_point heartbeat_due_;

  std::shared_ptr<SessionListener> listener_;
};

using SessionPtr = std::shared_ptr<Session>;

}  // namespace switchboard::eio
