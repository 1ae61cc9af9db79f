#pragma once

#include <array>
#include <boost/asio/steady_timer.hpp>
#include <boost/intrusive/list_hook.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "edge/engineio/handshake.h"
#include "edge/engineio/packet.h"
#include "edge/engineio/transport.h"
#include "edge/ids.h"

namespace switchboard::eio {

class Server;
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
  // The session moved to another transport (polling to WebSocket).
  virtual void OnSessionUpgrade() {}

 protected:
  ~SessionListener() = default;
};

// One Engine.IO session: heartbeat, bounded send queue, close, and the
// upgrade from one transport to another. It reaches its client through a
// Transport (edge/engineio/transport.h) and never knows which kind. Lives on
// one shard; every method runs there.
class Session : public std::enable_shared_from_this<Session>, private TransportListener {
 public:
  // `id` is an edge::NewId (edge::kIdLength characters). The session starts
  // with Open().
  Session(Server& server, std::string_view id, size_t shard, Handshake handshake);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  std::string_view id() const { return std::string_view(id_.data(), id_.size()); }
  size_t shard() const { return shard_; }
  const Handshake& handshake() const { return handshake_; }
  // "polling" or "websocket": the transport in use (its last one once closed;
  // empty before Open()).
  std::string_view transport_name() const {
    return transport_ ? transport_->name() : std::string_view();
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
    __builtin_prefetch(&transport_);
  }
  void PrefetchTransport() const {
    if (transport_) transport_->Prefetch();
  }
  // Server-side close: flushes what is queued, then closes.
  void Close(std::string_view reason = "forced close");

  // Internal (the Engine.IO server).
  // Starts the session on `transport` (the one of its handshake); returns the
  // open packet, which the caller sends. `upgrades`: offer the WebSocket upgrade.
  std::string Open(std::shared_ptr<Transport> transport, bool upgrades);
  // The transport in use (its last one once the session is finished).
  Transport* transport() const { return transport_.get(); }
  // Whether `probe` may become this session's transport (an upgrade).
  bool CanUpgrade(const Transport& probe) const;
  void HandleUpgrade(std::shared_ptr<Transport> probe);
  // Ends the session if its pong is overdue; false once it is gone.
  bool CheckHeartbeat();

  // Moves (a cluster moving the session to the edge that holds its
  // WebSocket; cluster/session_mover.h). On the old edge:
  // The client's upgrade probe was answered elsewhere: output waits and a
  // pending long poll is answered, as for a local probe; polling resumes
  // after the upgrade timeout unless the session departs first. False when
  // the session cannot move (closed, not on polling, upgrading already).
  bool PauseForMove();
  // Hands the session over: what is queued for the client (in order) and
  // its listener, let go without a close; the session is then finished and
  // unregistered. Only after PauseForMove().
  struct Departure {
    std::vector<Frame> queued;
    std::shared_ptr<SessionListener> listener;
  };
  std::optional<Departure> Depart();
  // On the new edge: a message the client sent on the WebSocket before the
  // session arrived, in order.
  void Receive(std::string_view data, bool binary) {
    if (transport_) OnTransportMessage(*transport_, data, binary);
  }
  SessionListener* listener() const { return listener_.get(); }

 private:
  enum class State { kOpen, kClosing, kClosed };
  enum class Timer { kNone, kPing, kPong };

  // TransportListener
  void OnTransportMessage(Transport& from, std::string_view data, bool binary) override;
  void OnTransportPacket(Transport& from, Packet&& packet) override;
  void OnTransportClosed(Transport& from, std::string_view reason) override;
  void OnTransportMessageTooBig() override;
  bool AcceptsPackets() const override { return state_ == State::kOpen; }
  std::shared_ptr<TransportListener> AsTransportListener() {
    return std::shared_ptr<TransportListener>(shared_from_this(),
                                              static_cast<TransportListener*>(this));
  }

  std::string OpenPacket(bool upgrades) const;
  void OnPacket(Packet&& packet);
  void SchedulePing();
  // The ping (or pong) due now (called by the HeartbeatQueue).
  void OnHeartbeatTimer();
  void CompleteUpgrade();
  void EndProbe();
  void Terminate(std::string_view reason, bool client_initiated, bool graceful = false);
  void Finish();

  // Only while an upgrade is under way.
  struct Upgrade {
    std::shared_ptr<Transport> probe;  // the transport being upgraded to
    bool probed = false;               // probe answered, awaiting "5"
    std::unique_ptr<boost::asio::steady_timer> timer;
  };

  Server& server_;
  size_t shard_;
  std::array<char, edge::kIdLength> id_;
  State state_ = State::kOpen;
  bool overflowed_ = false;  // past the queue bound: closing
  Timer heartbeat_state_ = Timer::kNone;
  Handshake handshake_;
  // The transport in use; kept once finished (discarded), for its name.
  std::shared_ptr<Transport> transport_;
  std::unique_ptr<Upgrade> upgrade_;

  // In the shard's HeartbeatQueue while a ping or a pong is due.
  friend class HeartbeatQueue;
  HeartbeatHook heartbeat_hook_;
  std::chrono::steady_clock::time_point heartbeat_due_;

  std::shared_ptr<SessionListener> listener_;
};

using SessionPtr = std::shared_ptr<Session>;

}  // namespace switchboard::eio
