#include "edge/engineio/transports/polling.h"

#include <boost/asio/post.hpp>
#include <boost/beast/http/error.hpp>

#include "edge/engineio/errors.h"
#include "edge/engineio/server.h"

namespace switchboard::eio {
namespace net = boost::asio;
namespace http = boost::beast::http;

namespace {
// How long a server-closed polling session waits for the GET that carries
// its close packet.
constexpr auto kPollingLinger = std::chrono::seconds(5);

const Frame& NoopFrame() {
  static const Frame frame = MakeTextFrame(PacketType::kNoop);
  return frame;
}
const Frame& CloseFrame() {
  static const Frame frame = MakeTextFrame(PacketType::kClose);
  return frame;
}
std::string NoopPayload() { return std::string(1, static_cast<char>(PacketType::kNoop)); }
}  // namespace

PollingTransport::PollingTransport(Server& server, size_t shard) : server_(server), shard_(shard) {}

PollingTransport::~PollingTransport() = default;

void PollingTransport::Report(std::string_view reason) {
  if (auto listener = listener_.lock()) listener->OnTransportClosed(*this, reason);
}

// ---- in ---------------------------------------------------------------------

void PollingTransport::HandlePost(const PollExchangePtr& request) {
  if (!data_request_.expired()) {
    // Like engine.io: a POST while another one's body is still arriving is
    // refused and ends the session (the reference destroys both requests).
    request->SendError(400, kNoErrorCode, "data request overlap");
    return Report("transport error");
  }
  data_request_ = request;
  request->ReadBody(
      server_.options().max_http_buffer_size,
      [self = shared_from_this(), request](boost::system::error_code ec, std::string body) {
        if (self->data_request_.lock() == request) self->data_request_.reset();
        if (ec == http::error::body_limit) {
          self->server_.CountPayloadTooLarge();
          request->SendError(413, kNoErrorCode, "Payload too large");
          return self->Report("transport error");
        }
        if (ec) return self->Report("transport error");
        self->server_.Count(self->shard_, Server::Counter::kBytesIn, body.size());
        // The session closed (or moved on) while the body arrived.
        auto listener = self->listener_.lock();
        if (!listener || !listener->AcceptsPackets()) {
          return request->SendError(400, kBadRequest, "Bad request");
        }
        auto packets = DecodePayload(body);
        if (!packets.ok()) {
          request->SendError(400, kBadRequest, "Bad request");
          return self->Report("parse error");
        }
        // Applied before the answer, as the reference server does: once a
        // client has its "ok", what it sent has taken effect (a room joined
        // is joined for a publish the client triggers next).
        for (auto& packet : *packets) {
          listener->OnTransportPacket(*self, std::move(packet));
          if (!listener->AcceptsPackets()) break;
        }
        request->SendOk();
      });
}

// ---- out --------------------------------------------------------------------

void PollingTransport::HandleGet(const PollExchangePtr& request) {
  if (listener_.expired()) return request->SendError(400, kBadRequest, "Bad request");
  if (poll_) {
    // At most one pending GET: a second one is a protocol violation.
    request->SendError(400, kBadRequest, "Bad request");
    return Report("transport error");
  }
  poll_ = request;
  if (!queue_.empty() || paused_ || closing_) {
    if (FlushPoll()) Report("");
    return;
  }
  request->WatchForAbort([weak = weak_from_this(), raw = request.get()] {
    auto self = weak.lock();
    if (!self || self->poll_.get() != raw) return;
    self->poll_.reset();
    self->Report("transport close");
  });
}

void PollingTransport::Write(const Frame* frames, size_t count) {
  size_t bytes = 0;
  for (size_t i = 0; i < count; ++i) bytes += frames[i].bytes->size();
  queue_.insert(queue_.end(), frames, frames + count);
  queued_bytes_ += bytes;
  if (!poll_ || flush_posted_) return;
  // Coalesce everything queued in this turn into one response.
  flush_posted_ = true;
  net::post(server_.runtime().context(shard_), [self = shared_from_this()] {
    self->flush_posted_ = false;
    if (self->FlushPoll()) self->Report("");
  });
}

bool PollingTransport::FlushPoll() {
  if (!poll_) return false;
  std::string body;
  size_t size = 0;
  for (const auto& f : queue_) size += f.bytes->size() + 1;
  body.reserve(size);
  for (const auto& f : queue_) AppendToPayload(body, f);
  queue_.clear();
  queued_bytes_ = 0;
  if (body.empty()) body = NoopPayload();
  RespondPoll(std::move(body));
  if (!closing_) return false;
  if (terminal_queued_) return true;
  // Like the reference server, the close packet travels in a response of
  // its own: clients handle a close before the packets decoded with it.
  queue_.push_back(CloseFrame());
  terminal_queued_ = true;
  return false;
}

void PollingTransport::RespondPoll(std::string body) {
  auto request = std::move(poll_);
  poll_.reset();
  request->SendPayload(std::move(body));
}

// ---- upgrade ----------------------------------------------------------------

void PollingTransport::SetPaused(bool paused) {
  paused_ = paused;
  // Release a pending GET so the client can pause polling.
  if (paused_ && poll_ && FlushPoll()) Report("");
}

void PollingTransport::HandOver(Transport& next) {
  listener_.reset();
  if (poll_) RespondPoll(NoopPayload());
  // What was queued while the upgrade was under way.
  for (const Frame& frame : queue_) next.Write(frame);
  queue_.clear();
  queued_bytes_ = 0;
}

// ---- closing ----------------------------------------------------------------

bool PollingTransport::Close(CloseMode mode) {
  closing_ = true;
  // The pending GET carries a close packet, or a noop when the client asked
  // for the close itself.
  if (mode == CloseMode::kAnswer) {
    queue_.clear();
    queued_bytes_ = 0;
    queue_.push_back(NoopFrame());
    terminal_queued_ = true;
  } else if (mode == CloseMode::kAbort || queue_.empty()) {
    queue_.push_back(CloseFrame());
    terminal_queued_ = true;
  }
  if (poll_) return FlushPoll();
  if (mode == CloseMode::kAbort) return true;
  // A server-side close waits (briefly) for the GET that drains the queue; a
  // client's close for the GET it may have sent alongside (over another
  // connection, so it can arrive second).
  linger_timer_ = std::make_unique<net::steady_timer>(server_.runtime().context(shard_));
  linger_timer_->expires_after(kPollingLinger);
  linger_timer_->async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec) self->Report("");
  });
  return false;
}

void PollingTransport::Discard() {
  listener_.reset();
  linger_timer_.reset();
  if (poll_) RespondPoll(NoopPayload());
  // A POST still arriving is cut off (its body would only find the session
  // gone).
  if (auto data_request = data_request_.lock()) data_request->Close();
  queue_.clear();
  queued_bytes_ = 0;
}

}  // namespace switchboard::eio
