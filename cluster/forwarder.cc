#include "cluster/forwarder.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <mutex>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "bus/routing.h"
#include "cluster/arguments.h"
#include "edge/socketio/namespace.h"
#include "proto/convert.h"
#include "switchboard/v1/bus.pb.h"

namespace switchboard::cluster {
namespace {

sio::Json ErrorAnswer(std::string_view error) {
  return sio::Json::array({sio::Json{{"ok", false}, {"error", error}}});
}

}  // namespace

void FillHandshake(const sio::Socket& socket, const std::vector<std::string>& headers,
                   const std::vector<std::string>& hidden_query, v1::Handshake* out) {
  const sio::Handshake& handshake = socket.handshake();
  out->set_address(std::string(handshake.address()));
  for (const std::string& name : headers) {
    // A bearer token would let every backend act as the client.
    if (absl::EqualsIgnoreCase(name, "authorization")) continue;
    if (auto value = handshake.Header(name)) (*out->mutable_headers())[name] = std::string(*value);
  }
  for (const auto& [key, value] : handshake.QueryParameters()) {
    if (key == "EIO" || key == "transport" || key == "sid" || key == "t") continue;
    if (std::find(hidden_query.begin(), hidden_query.end(), key) != hidden_query.end()) continue;
    (*out->mutable_query())[key] = value;
  }
  if (!socket.claims().is_null()) {
    out->set_claims(socket.claims().dump(-1, ' ', false, sio::Json::error_handler_t::replace));
  }
  proto::ToTimestamp(handshake.time(), out->mutable_time());
}

// Shared with the bus callbacks, which may outlive the Forwarder (a request
// times out, or the bus cancels it at its destruction).
struct Forwarder::Core {
  struct Pending {
    sio::Ack ack;
    size_t shard = 0;
  };

  Core(bus::Bus& b, edge::Runtime& r, Options o)
      : bus(b),
        runtime(r),
        options(std::move(o)),
        ref_prefix(bus::AckRefPrefix(options.edge_id, bus::RandomNodeId(12))) {}

  bus::Bus& bus;
  edge::Runtime& runtime;
  const Options options;
  const std::string ref_prefix;  // "<edge-id>.<nonce>."

  std::mutex mu;
  bool alive = true;                               // guarded by mu
  absl::flat_hash_map<uint64_t, Pending> pending;  // guarded by mu
  uint64_t next_id = 0;                            // guarded by mu

  std::atomic<uint64_t> forwarded{0};
  std::atomic<uint64_t> dropped{0};
  std::atomic<uint64_t> answered{0};
  std::atomic<uint64_t> timed_out{0};

  void Post(size_t shard, std::function<void()> fn) {
    std::lock_guard lock(mu);
    if (alive) runtime.Post(shard, std::move(fn));
  }

  std::optional<Pending> Take(uint64_t id) {
    std::lock_guard lock(mu);
    auto it = pending.find(id);
    if (it == pending.end()) return std::nullopt;
    Pending out = std::move(it->second);
    pending.erase(it);
    return out;
  }

  // The id in "<edge-id>.<nonce>.<id>", or nullopt when not one of ours.
  std::optional<uint64_t> ParseRef(std::string_view ref) const {
    if (ref.size() <= ref_prefix.size() || ref.substr(0, ref_prefix.size()) != ref_prefix) {
      return std::nullopt;
    }
    uint64_t id = 0;
    std::string_view digits = ref.substr(ref_prefix.size());
    if (!absl::SimpleAtoi(absl::string_view(digits.data(), digits.size()), &id)) {
      return std::nullopt;
    }
    return id;
  }

  // Calls the client's ack on its shard.
  void Answer(Pending pending_ack, sio::Json args) {
    size_t shard = pending_ack.shard;
    Post(shard, [ack = std::move(pending_ack.ack), args = std::move(args)]() mutable {
      ack(std::move(args));
    });
  }

  // The outcome of an ack request (runs on the socket's shard).
  void OnReply(uint64_t id, const absl::StatusOr<bus::Message>& reply) {
    std::optional<Pending> pending_ack = Take(id);
    if (!pending_ack) return;  // answered through the API first
    if (reply.ok()) {
      v1::ForwardReply answer;
      if (!answer.ParseFromString(reply->payload)) {
        answered.fetch_add(1, std::memory_order_relaxed);
        pending_ack->ack(ErrorAnswer("invalid backend reply"));
        return;
      }
      answered.fetch_add(1, std::memory_order_relaxed);
      pending_ack->ack(ToClientAnswer(answer));
      return;
    }
    if (absl::IsDeadlineExceeded(reply.status())) {
      timed_out.fetch_add(1, std::memory_order_relaxed);
      pending_ack->ack(ErrorAnswer("timeout"));
    } else if (absl::IsNotFound(reply.status())) {
      // Nobody listens: the event went nowhere.
      forwarded.fetch_sub(1, std::memory_order_relaxed);
      dropped.fetch_add(1, std::memory_order_relaxed);
      pending_ack->ack(ErrorAnswer("no backend"));
    } else if (absl::IsCancelled(reply.status())) {
      // The bus is going away; so is the client.
    } else {
      forwarded.fetch_sub(1, std::memory_order_relaxed);
      dropped.fetch_add(1, std::memory_order_relaxed);
      pending_ack->ack(ErrorAnswer("backend unavailable"));
    }
  }

  static sio::Json ToClientAnswer(const v1::ForwardReply& reply) {
    if (!reply.error().empty()) return ErrorAnswer(reply.error());
    absl::StatusOr<sio::Json> args = ArgumentsToJson(reply.args());
    if (!args.ok()) return ErrorAnswer("invalid backend reply");
    return *std::move(args);
  }
};

absl::StatusOr<std::unique_ptr<Forwarder>> Forwarder::Start(bus::Bus& bus, edge::Runtime& runtime,
                                                            Options options) {
  if (!bus::ValidNodeId(options.edge_id)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid edge id \"", options.edge_id, "\""));
  }
  std::string subject = bus::ForwardAckSubject(options.edge_id);
  auto core = std::make_shared<Core>(bus, runtime, std::move(options));
  std::unique_ptr<Forwarder> forwarder(new Forwarder(core));
  auto sub = bus.Subscribe(
      subject, [raw = forwarder.get()](bus::Message message) { raw->OnForwardAck(message); });
  if (!sub.ok()) return sub.status();
  forwarder->ack_sub_ = std::move(*sub);
  return forwarder;
}

Forwarder::Forwarder(std::shared_ptr<Core> core) : core_(std::move(core)) {}

Forwarder::~Forwarder() {
  if (ack_sub_) ack_sub_->Unsubscribe();  // waits for a running handler
  std::lock_guard lock(core_->mu);
  core_->alive = false;
  core_->pending.clear();
}

void Forwarder::Forward(sio::Socket& socket, std::string_view event, const sio::Json& args,
                        const ForwardPolicy& policy, sio::Ack ack) {
  Core& core = *core_;
  const std::string& nsp = socket.nsp().name();
  v1::ForwardedEvent forwarded;
  forwarded.set_edge_id(core.options.edge_id);
  proto::ToTimestamp(std::chrono::system_clock::now(), forwarded.mutable_time());
  v1::ClientEvent* out = forwarded.mutable_event();
  out->set_socket_id(socket.id());
  out->set_namespace_(nsp);
  out->set_user_id(socket.user_id());
  out->set_event(std::string(event));
  JsonToArguments(args, out->mutable_args());
  std::vector<std::string_view> rooms;
  rooms.reserve(socket.rooms().size());
  for (const std::string& room : socket.rooms()) {
    if (room != socket.id()) rooms.push_back(room);
  }
  std::sort(rooms.begin(), rooms.end());
  for (std::string_view room : rooms) out->add_rooms(std::string(room));
  FillHandshake(socket, policy.headers, policy.hidden_query, out->mutable_handshake());
  const sio::Json& data = socket.data();
  if (!data.is_null()) {
    out->set_data(data.dump(-1, ' ', false, sio::Json::error_handler_t::replace));
  }
  const std::string subject = bus::ForwardSubject(nsp, event);

  if (!ack) {
    absl::Status status = core.bus.Publish(subject, forwarded.SerializeAsString());
    if (status.ok()) {
      core.forwarded.fetch_add(1, std::memory_order_relaxed);
    } else {
      core.dropped.fetch_add(1, std::memory_order_relaxed);
      spdlog::debug("{}: forward {} not sent: {}", socket.id(), subject, status.ToString());
    }
    return;
  }

  int current = edge::Runtime::CurrentShard();
  size_t shard = current < 0 ? 0 : static_cast<size_t>(current);
  uint64_t id = 0;
  {
    std::lock_guard lock(core.mu);
    if (core.pending.size() >= core.options.max_pending_acks) {
      core.dropped.fetch_add(1, std::memory_order_relaxed);
      ack(ErrorAnswer("backend busy"));
      return;
    }
    id = ++core.next_id;
    core.pending.emplace(id, Core::Pending{std::move(ack), shard});
  }
  out->set_wants_ack(true);
  out->set_ack_ref(absl::StrCat(core.ref_prefix, id));
  if (!core.bus.connected()) {
    if (auto pending = core.Take(id)) {
      core.dropped.fetch_add(1, std::memory_order_relaxed);
      pending->ack(ErrorAnswer("backend unavailable"));
    }
    return;
  }
  core.forwarded.fetch_add(1, std::memory_order_relaxed);
  std::weak_ptr<Core> weak = core_;
  core.bus.Request(
      subject, forwarded.SerializeAsString(), policy.ack_timeout,
      [weak, id](absl::StatusOr<bus::Message> reply) {
        if (auto c = weak.lock()) c->OnReply(id, reply);
      },
      [weak, shard](std::function<void()> fn) {
        if (auto c = weak.lock()) c->Post(shard, std::move(fn));
      });
}

void Forwarder::OnForwardAck(const bus::Message& message) {
  Core& core = *core_;
  v1::ForwardAck request;
  v1::ForwardAckResult result;
  if (request.ParseFromString(message.payload)) {
    if (std::optional<uint64_t> id = core.ParseRef(request.ack_ref())) {
      if (std::optional<Core::Pending> pending = core.Take(*id)) {
        core.answered.fetch_add(1, std::memory_order_relaxed);
        core.Answer(std::move(*pending), Core::ToClientAnswer(request.reply()));
        result.set_delivered(true);
      }
    }
  }
  if (message.reply_to.empty()) return;
  absl::Status status = core.bus.Publish(message.reply_to, result.SerializeAsString());
  if (!status.ok()) spdlog::debug("ack result not sent: {}", status.ToString());
}

void Forwarder::FillStats(v1::ForwardStats* out) const {
  out->set_forwarded(core_->forwarded.load(std::memory_order_relaxed));
  out->set_dropped(core_->dropped.load(std::memory_order_relaxed));
  out->set_acks_answered(core_->answered.load(std::memory_order_relaxed));
  out->set_acks_timed_out(core_->timed_out.load(std::memory_order_relaxed));
  out->set_acks_pending(pending_acks());
}

size_t Forwarder::pending_acks() const {
  std::lock_guard lock(core_->mu);
  return core_->pending.size();
}

}  // namespace switchboard::cluster
