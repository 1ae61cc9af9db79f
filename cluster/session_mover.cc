#include "cluster/session_mover.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bus/routing.h"
#include "cluster/moved_socket_proto.h"
#include "edge/engineio/server.h"
#include "edge/engineio/transport.h"
#include "edge/http/session.h"
#include "edge/ids.h"
#include "edge/socketio/socket.h"
#include "switchboard/v1/move.pb.h"

namespace switchboard::cluster {
namespace {

void Reply(bus::Bus& bus, const bus::Message& request, const v1::MoveReply& reply) {
  if (request.reply_to.empty()) return;
  absl::Status status = bus.Publish(request.reply_to, reply.SerializeAsString());
  if (!status.ok()) spdlog::warn("move reply not sent: {}", status.ToString());
}

v1::MoveReply Refusal(std::string_view error) {
  v1::MoveReply reply;
  reply.set_ok(false);
  reply.set_error(std::string(error));
  return reply;
}

// The owner's answer to a take for sockets that need more subjects than
// the new edge listens on.
constexpr std::string_view kResubscribe = "resubscribe";

// Whether `subjects` holds every subject that reaches `sockets`.
bool Covers(const std::vector<std::string>& subjects,
            const std::vector<sio::MovedSocketState>& sockets) {
  for (const sio::MovedSocketState& state : sockets) {
    for (const std::string& subject :
         EdgeLink::SubjectsOf(state.nsp, state.id, state.user_id, state.rooms)) {
      if (std::find(subjects.begin(), subjects.end(), subject) == subjects.end()) return false;
    }
  }
  return true;
}

std::string_view LocalPart(std::string_view sid) {
  size_t dot = sid.find('.');
  return dot == std::string_view::npos ? sid : sid.substr(dot + 1);
}

}  // namespace

// ------------------------------------------------------------ arrival ---

// One session arriving: the client's WebSocket on this edge, from its 101
// until the session runs here (then the session is the transport's listener
// and this lets go) or the move fails (the WebSocket is closed: the client
// goes on polling, or reconnects).
class SessionMover::Arrival final : public eio::TransportListener,
                                    public std::enable_shared_from_this<Arrival> {
 public:
  Arrival(SessionMover& mover, std::shared_ptr<eio::Transport> ws, std::string owner,
          std::string sid, size_t shard)
      : mover_(mover),
        ws_(std::move(ws)),
        owner_(std::move(owner)),
        sid_(std::move(sid)),
        shard_(shard) {}

  void Start(boost::asio::io_context& ioc, std::chrono::milliseconds timeout) {
    timer_ = std::make_unique<boost::asio::steady_timer>(ioc, timeout);
    timer_->async_wait([weak = weak_from_this()](boost::system::error_code ec) {
      if (ec) return;
      if (auto self = weak.lock(); self && self->state_ != State::kTaking) self->Fail();
    });
    ws_->Attach(std::shared_ptr<eio::TransportListener>(shared_from_this()));
  }

  const std::string& owner() const { return owner_; }
  const std::string& sid() const { return sid_; }
  size_t shard() const { return shard_; }
  std::shared_ptr<eio::Transport> transport() const { return ws_; }
  std::chrono::steady_clock::time_point take_started() const { return take_started_; }

  // The owner is ready (on the shard): the probe is answered.
  void Probed(std::vector<std::string> subjects, uint64_t buffer) {
    subjects_ = std::move(subjects);
    buffer_ = buffer;
    if (state_ != State::kPreparing) return;
    state_ = State::kProbed;
    ws_->Write(eio::MakeTextFrame(eio::PacketType::kPong, "probe"));
  }
  // The session runs here now (on the shard): what the client sent since
  // its upgrade packet goes to it.
  void Arrived(const eio::SessionPtr& session) {
    state_ = State::kDone;
    timer_.reset();
    for (auto& [data, binary] : early_) session->Receive(data, binary);
    early_.clear();
    // The sockets hold their own subscriptions now.
    mover_.link_.ReleaseSubjects(subjects_);
    buffer_ = 0;
  }
  // The buffer the prepare step began, and the subjects it listens on (held
  // until the session runs here, or the move fails).
  uint64_t buffer() const { return buffer_; }
  const std::vector<std::string>& subjects() const { return subjects_; }
  void AddSubjects(const std::vector<std::string>& more) {
    subjects_.insert(subjects_.end(), more.begin(), more.end());
  }

  void Fail() {
    if (state_ == State::kDone || state_ == State::kFailed) return;
    state_ = State::kFailed;
    timer_.reset();
    mover_.CountFailed();
    ws_->Close(eio::Transport::CloseMode::kFlush);
    if (buffer_ != 0) {
      mover_.link_.EndBuffer(buffer_);
      mover_.link_.ReleaseSubjects(subjects_);
      buffer_ = 0;
    }
  }

  // eio::TransportListener
  void OnTransportMessage(eio::Transport&, std::string_view data, bool binary) override {
    switch (state_) {
      case State::kAwaitingProbe:
        if (binary || data != "2probe") return Fail();
        state_ = State::kPreparing;
        return mover_.Prepare(shared_from_this());
      case State::kProbed:
        if (binary || data != "5") return Fail();
        state_ = State::kTaking;
        take_started_ = std::chrono::steady_clock::now();
        return mover_.Take(shared_from_this(), 0);
      case State::kTaking:
        // The client writes on as soon as it sent "5".
        early_.emplace_back(std::string(data), binary);
        return;
      default: return Fail();
    }
  }
  void OnTransportPacket(eio::Transport&, eio::Packet&&) override {}
  void OnTransportClosed(eio::Transport&, std::string_view) override { Fail(); }
  void OnTransportMessageTooBig() override {}
  bool AcceptsPackets() const override { return true; }

 private:
  enum class State { kAwaitingProbe, kPreparing, kProbed, kTaking, kDone, kFailed };

  SessionMover& mover_;
  std::shared_ptr<eio::Transport> ws_;
  std::string owner_;
  std::string sid_;  // the owner's local id
  size_t shard_;
  State state_ = State::kAwaitingProbe;
  std::unique_ptr<boost::asio::steady_timer> timer_;
  std::vector<std::string> subjects_;
  uint64_t buffer_ = 0;
  std::vector<std::pair<std::string, bool>> early_;
  std::chrono::steady_clock::time_point take_started_;
};

// --------------------------------------------------------------- setup ---

SessionMover::SessionMover(bus::Bus& bus, sio::Server& server, EdgeLink& link, Options options)
    : bus_(bus), server_(server), link_(link), options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<SessionMover>> SessionMover::Start(bus::Bus& bus,
                                                                  sio::Server& server,
                                                                  EdgeLink& link, Options options) {
  std::unique_ptr<SessionMover> mover(new SessionMover(bus, server, link, std::move(options)));
  auto sub = bus.Subscribe(bus::MoveSubject(mover->options_.edge_id),
                           [raw = mover.get()](bus::Message message) { raw->OnRequest(message); });
  if (!sub.ok()) return sub.status();
  mover->requests_ = std::move(*sub);
  server.SetMoveRelay(mover.get());
  return mover;
}

SessionMover::~SessionMover() {
  server_.SetMoveRelay(nullptr);
  requests_.reset();
  // The runtime has stopped: no shard touches the departed clients now.
  for (auto& [id, departed] : departed_) departed.client->ForgetSockets();
}

SessionMover::Stats SessionMover::stats() const {
  return Stats{moved_in_.load(std::memory_order_relaxed),
               moved_out_.load(std::memory_order_relaxed), failed_.load(std::memory_order_relaxed)};
}

// ------------------------------------------------------------ new edge ---

void SessionMover::ArriveFrom(const std::shared_ptr<edge::HttpSession>& http,
                              std::string_view owner, std::string_view sid) {
  eio::Server& engine = server_.engine();
  std::shared_ptr<eio::Transport> ws = engine.AcceptWebSocket(http);
  if (!ws) return;  // answered 400
  auto arrival = std::make_shared<Arrival>(*this, std::move(ws), std::string(owner),
                                           std::string(LocalPart(sid)), http->shard());
  arrival->Start(engine.runtime().context(http->shard()), engine.options().upgrade_timeout);
}

void SessionMover::Prepare(const std::shared_ptr<Arrival>& arrival) {
  v1::MoveRequest request;
  request.mutable_prepare()->set_sid(arrival->sid());
  request.mutable_prepare()->set_to_edge(options_.edge_id);
  edge::Runtime& runtime = server_.runtime();
  bus_.Request(
      bus::MoveSubject(arrival->owner()), request.SerializeAsString(), options_.request_timeout,
      [this, arrival, &runtime](absl::StatusOr<bus::Message> answer) {
        v1::MoveReply reply;
        if (!answer.ok() || !reply.ParseFromString(answer->payload) || !reply.ok()) {
          runtime.Post(arrival->shard(), [arrival] { arrival->Fail(); });
          return;
        }
        std::vector<std::string> subjects;
        for (const v1::MovedSocket& socket : reply.sockets()) {
          std::vector<std::string> rooms(socket.rooms().begin(), socket.rooms().end());
          for (std::string& subject : EdgeLink::SubjectsOf(socket.namespace_(), socket.socket_id(),
                                                           socket.user_id(), rooms)) {
            subjects.push_back(std::move(subject));
          }
        }
        // Subscribed before the probe is answered: everything published to
        // the sockets from here on reaches this edge too.
        uint64_t buffer = link_.BeginBuffer(subjects);
        runtime.Post(arrival->shard(), [arrival, subjects = std::move(subjects), buffer]() mutable {
          arrival->Probed(std::move(subjects), buffer);
        });
      });
}

void SessionMover::Take(const std::shared_ptr<Arrival>& arrival, int attempt) {
  v1::MoveRequest request;
  request.mutable_take()->set_sid(arrival->sid());
  request.mutable_take()->set_to_edge(options_.edge_id);
  for (const std::string& subject : arrival->subjects()) {
    request.mutable_take()->add_subjects(subject);
  }
  edge::Runtime& runtime = server_.runtime();
  bus_.Request(
      bus::MoveSubject(arrival->owner()), request.SerializeAsString(), options_.request_timeout,
      [this, arrival, attempt, &runtime,
       asked = std::vector<std::string>(arrival->subjects())](absl::StatusOr<bus::Message> answer) {
        auto reply = std::make_shared<v1::MoveReply>();
        bool parsed = answer.ok() && reply->ParseFromString(answer->payload);
        if (parsed && !reply->ok() && reply->error() == kResubscribe && attempt < 3) {
          // A socket joined a room since the prepare step: listen there too
          // (from now on: the owner still holds the socket), then ask again.
          std::vector<std::string> extra;
          for (const v1::MovedSocket& socket : reply->sockets()) {
            std::vector<std::string> rooms(socket.rooms().begin(), socket.rooms().end());
            for (std::string& subject : EdgeLink::SubjectsOf(
                     socket.namespace_(), socket.socket_id(), socket.user_id(), rooms)) {
              if (std::find(asked.begin(), asked.end(), subject) == asked.end() &&
                  std::find(extra.begin(), extra.end(), subject) == extra.end()) {
                extra.push_back(std::move(subject));
              }
            }
          }
          link_.ExtendBuffer(arrival->buffer(), extra);
          runtime.Post(arrival->shard(), [this, arrival, attempt, extra = std::move(extra)] {
            arrival->AddSubjects(extra);
            Take(arrival, attempt + 1);
          });
          return;
        }
        if (!parsed || !reply->ok()) {
          spdlog::debug("move of {} from {} failed: {}", arrival->sid(), arrival->owner(),
                        answer.ok() ? reply->error() : answer.status().ToString());
          runtime.Post(arrival->shard(), [arrival] { arrival->Fail(); });
          return;
        }
        auto only = std::make_shared<std::vector<std::string>>();
        for (const v1::MovedSocket& socket : reply->sockets()) only->push_back(socket.socket_id());
        // No bus message is handled meanwhile: each one kept is either handed
        // to the shards before the set-up (the moved sockets are not there
        // yet: the replay gives it to them) or arrives after the buffer's end
        // (and reaches them as any other delivery, after the set-up).
        link_.RunExclusive([&] {
          std::vector<v1::EdgeMessage> kept = link_.EndBuffer(arrival->buffer());
          runtime.Post(arrival->shard(), [this, arrival, reply] {
            auto handshake = eio::Handshake::FromParts(
                reply->handshake(), reply->handshake_address_size(), reply->handshake_url_size(),
                std::chrono::system_clock::time_point(
                    std::chrono::milliseconds(reply->handshake_unix_ms())));
            std::vector<eio::Frame> queued;
            for (int i = 0; i < reply->frames_size(); ++i) {
              queued.push_back(
                  eio::Frame{std::make_shared<const std::string>(reply->frames(i)),
                             i < reply->frame_binary_size() && reply->frame_binary(i)});
            }
            eio::SessionPtr session =
                handshake ? server_.engine().AdoptSession(arrival->sid(), std::move(*handshake),
                                                          arrival->transport(), queued)
                          : nullptr;
            if (!session) return arrival->Fail();
            std::vector<sio::MovedSocketState> sockets;
            for (const v1::MovedSocket& socket : reply->sockets()) {
              sockets.push_back(FromProto(socket));
            }
            sio::Client::Adopt(server_, session, std::move(sockets), arrival->owner());
            arrival->Arrived(session);
            moved_in_.fetch_add(1, std::memory_order_relaxed);
            move_latency_.Observe(std::chrono::steady_clock::now() - arrival->take_started());
          });
          // Posted after the set-up above: what arrived since the prepare step
          // and the owner did not handle, in order, to the moved sockets only.
          std::vector<std::string> handled(reply->handled_ids().begin(),
                                           reply->handled_ids().end());
          link_.Replay(kept, handled, std::move(only), options_.given_grace);
        });
      });
}

// ----------------------------------------------------------- old edge ---

void SessionMover::OnRequest(const bus::Message& message) {
  v1::MoveRequest request;
  if (!request.ParseFromString(message.payload)) return Reply(bus_, message, Refusal("malformed"));
  switch (request.step_case()) {
    case v1::MoveRequest::kPrepare: return ServePrepare(message, request.prepare().sid());
    case v1::MoveRequest::kTake: return ServeTake(message, request.take());
    case v1::MoveRequest::kAck:
      return ServeAck(request.ack().socket_id(), request.ack().ack_id(), request.ack().args_json());
    default: return Reply(bus_, message, Refusal("unknown step"));
  }
}

void SessionMover::ServePrepare(const bus::Message& message, std::string sid) {
  {
    std::lock_guard lock(mu_);
    preparing_[sid] = std::chrono::steady_clock::now();
  }
  server_.engine().WithSession(sid, [this, message](const eio::SessionPtr& session) {
    std::shared_ptr<sio::Client> client = session ? sio::Client::Of(*session) : nullptr;
    if (!client || !client->CanMove() || !session->PauseForMove()) {
      return Reply(bus_, message, Refusal("no session that can move"));
    }
    v1::MoveReply reply;
    reply.set_ok(true);
    for (const sio::MovedSocketState& state : client->DescribeSockets()) {
      ToProto(state, reply.add_sockets());
    }
    Reply(bus_, message, reply);
  });
}

void SessionMover::ServeTake(const bus::Message& message, const v1::MoveTake& take) {
  std::chrono::steady_clock::time_point since;
  {
    std::lock_guard lock(mu_);
    auto it = preparing_.find(take.sid());
    if (it == preparing_.end()) return Reply(bus_, message, Refusal("not prepared"));
    since = it->second;
  }
  auto asked =
      std::make_shared<std::vector<std::string>>(take.subjects().begin(), take.subjects().end());
  // Every delivery handled so far has been handed to the shards, and runs
  // there before the departure (posted to the session's shard after them);
  // none is handled in between.
  auto handled = std::make_shared<std::vector<std::string>>();
  link_.RunExclusive([&] {
    *handled = link_.HandledSince(since - options_.handled_margin, options_.handled_limit);
    server_.engine().WithSession(
        take.sid(), [this, message, handled, asked, sid = take.sid(),
                     to_edge = take.to_edge()](const eio::SessionPtr& session) {
          std::shared_ptr<sio::Client> client = session ? sio::Client::Of(*session) : nullptr;
          if (!client) return Reply(bus_, message, Refusal("session gone"));
          // Rooms joined since the prepare step: the new edge must listen there
          // before the sockets leave.
          std::vector<sio::MovedSocketState> now = client->DescribeSockets();
          if (!Covers(*asked, now)) {
            v1::MoveReply reply = Refusal(kResubscribe);
            for (const sio::MovedSocketState& state : now) ToProto(state, reply.add_sockets());
            return Reply(bus_, message, reply);
          }
          std::optional<eio::Session::Departure> departure = session->Depart();
          if (!departure) return Reply(bus_, message, Refusal("session gone"));
          v1::MoveReply reply;
          reply.set_ok(true);
          const eio::Handshake& handshake = session->handshake();
          reply.set_handshake(handshake.data());
          reply.set_handshake_address_size(handshake.address_size());
          reply.set_handshake_url_size(handshake.url_size());
          reply.set_handshake_unix_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          handshake.time().time_since_epoch())
                                          .count());
          for (const eio::Frame& frame : departure->queued) {
            reply.add_frames(*frame.bytes);
            reply.add_frame_binary(frame.binary);
          }
          std::vector<sio::MovedSocketState> sockets = client->Depart(to_edge);
          for (const sio::MovedSocketState& state : sockets) ToProto(state, reply.add_sockets());
          for (const std::string& id : *handled) reply.add_handled_ids(id);
          // Kept before the reply: the new edge may pass on the client's
          // answer to one of our acks as soon as it has the session.
          KeepDeparted(sid, client, sockets);
          Reply(bus_, message, reply);
          moved_out_.fetch_add(1, std::memory_order_relaxed);
        });
  });
}

void SessionMover::KeepDeparted(const std::string& sid, const std::shared_ptr<sio::Client>& client,
                                const std::vector<sio::MovedSocketState>& sockets) {
  auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mu_);
  preparing_.erase(sid);
  std::erase_if(departed_, [this, now](const auto& entry) {
    if (entry.second.until > now) return false;
    // On its shard (its sockets live there); once per socket: harmless.
    server_.runtime().Post(entry.second.client->shard(),
                           [client = entry.second.client] { client->ForgetSockets(); });
    return true;
  });
  std::erase_if(preparing_, [now](const auto& entry) {
    return now - entry.second > std::chrono::minutes(1);  // never taken
  });
  for (const sio::MovedSocketState& state : sockets) {
    departed_[state.id] = Departed{client, state.nsp, now + options_.relay_grace};
  }
}

void SessionMover::ServeAck(const std::string& socket_id, uint64_t ack_id,
                            std::string_view args_json) {
  std::shared_ptr<sio::Client> client;
  std::string nsp;
  {
    std::lock_guard lock(mu_);
    auto it = departed_.find(socket_id);
    if (it == departed_.end()) return;
    client = it->second.client;
    nsp = it->second.nsp;
  }
  sio::Json args = ParseJson(args_json);
  if (!args.is_array()) args = sio::Json::array();
  server_.runtime().Post(client->shard(), [client, nsp, ack_id, args = std::move(args)]() mutable {
    if (sio::SocketPtr socket = client->Find(nsp)) socket->AnswerAck(ack_id, std::move(args));
  });
}

void SessionMover::SendToMoved(const sio::Socket& socket, const std::vector<eio::Frame>& frames) {
  v1::EdgeMessage message;
  v1::Delivery* delivery = message.mutable_delivery();
  delivery->set_id(link_.NextDeliveryId());
  delivery->set_origin_edge(options_.edge_id);
  delivery->mutable_target()->set_namespace_(socket.nsp().name());
  delivery->mutable_target()->add_socket_ids(socket.id());
  for (const eio::Frame& frame : frames) delivery->add_frames(*frame.bytes);
  absl::Status status = bus_.Publish(bus::SocketSubject(socket.id()), message.SerializeAsString());
  if (!status.ok()) spdlog::debug("packet for moved socket {}: {}", socket.id(), status.ToString());
}

void SessionMover::AnswerElsewhere(const sio::Socket& socket, uint64_t ack_id,
                                   const sio::Json& args) {
  std::string_view edge = edge::EdgeOfSocketId(socket.id());
  if (edge.empty()) return;
  v1::MoveRequest request;
  v1::MovedAck* ack = request.mutable_ack();
  ack->set_socket_id(socket.id());
  ack->set_ack_id(ack_id);
  ack->set_args_json(args.dump());
  (void)bus_.Publish(bus::MoveSubject(edge), request.SerializeAsString());
}

}  // namespace switchboard::cluster
