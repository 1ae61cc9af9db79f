#pragma once

#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <string>
#include <vector>

#include "edge/engineio/packet.h"
#include "edge/engineio/poll_exchange.h"
#include "edge/engineio/transport.h"

namespace switchboard::eio {

class Server;

// HTTP long-polling (engine.io's transports/polling.ts): frames wait in a
// queue for the client's next GET, which takes them all in one payload;
// POSTs carry the client's packets. At most one GET waits at a time, and one
// POST is read at a time. A session holds one only while on polling (or
// upgrading from it). Requests come as PollExchanges: from this edge's HTTP
// connections or passed on by another edge, under the same rules.
class PollingTransport final : public Transport,
                               public std::enable_shared_from_this<PollingTransport> {
 public:
  PollingTransport(Server& server, size_t shard);
  ~PollingTransport() override;

  // Transport
  std::string_view name() const override { return "polling"; }
  void Attach(std::shared_ptr<TransportListener> listener) override {
    listener_ = std::move(listener);
  }
  // Answers the waiting GET at the end of this turn (everything queued in the
  // turn in one payload).
  void Write(const Frame* frames, size_t count) override;
  using Transport::Write;
  bool TakesVolatile(size_t) const override { return poll_ != nullptr && !paused_; }
  void SetPaused(bool paused) override;
  void HandOver(Transport& next) override;
  bool Close(CloseMode mode) override;
  void Discard() override;

  // A GET: waits for frames (a long poll), or takes those queued now.
  void HandleGet(const PollExchangePtr& request);
  // A POST: its body is a payload of packets for the listener.
  void HandlePost(const PollExchangePtr& request);

 private:
  // Answers the waiting GET with everything queued; true when that was the
  // last response of a closing transport.
  bool FlushPoll();
  void RespondPoll(std::string body);
  // Tells the listener the transport failed (`reason`), or is done ("").
  void Report(std::string_view reason);

  Server& server_;
  size_t shard_;
  // Weak: the session owns its transport, and the server's table owns the
  // session; a strong pointer back would be a cycle that outlives both.
  std::weak_ptr<TransportListener> listener_;
  // Frames for the next GET (and those queued before an upgrade completes).
  std::vector<Frame> queue_;
  PollExchangePtr poll_;  // pending long-poll GET
  // The POST whose body is being read: one at a time, as the reference
  // server allows (a second one is "data request overlap").
  std::weak_ptr<PollExchange> data_request_;
  // After a server-side close: how long the close packet waits for its GET.
  std::unique_ptr<boost::asio::steady_timer> linger_timer_;
  bool flush_posted_ = false;
  bool paused_ = false;           // an upgrade is under way: GETs answered at once
  bool closing_ = false;          // Close() was called
  bool terminal_queued_ = false;  // close (or noop) packet queued
};

}  // namespace switchboard::eio
