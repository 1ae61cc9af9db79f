#include "cluster/edge_link.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "bus/routing.h"
#include "cluster/arguments.h"
#include "cluster/delivery_codec.h"
#include "edge/recovery/offset.h"
#include "edge/socketio/ack_event.h"
#include "edge/socketio/namespace.h"
#include "edge/socketio/socket.h"
#include "switchboard/v1/bus.pb.h"

namespace switchboard::cluster {
namespace {

// Acks of one delivery on this edge: every shard adds its recipients, and
// the report leaves once all shards are done and every recipient answered
// (or its ack timed out).
struct AckCollection {
  std::mutex mu;
  size_t shards_pending = 0;
  size_t answers_pending = 0;
  v1::AckReport report;
  std::string subject;
  bus::Bus* bus = nullptr;

  // Called with mu held; sends the report when nothing is pending.
  void MaybeSendLocked() {
    if (shards_pending != 0 || answers_pending != 0 || bus == nullptr) return;
    absl::Status status = bus->Publish(subject, report.SerializeAsString());
    if (!status.ok()) {
      spdlog::warn("ack report {} not sent: {}", report.delivery_id(), status.ToString());
    }
    bus = nullptr;  // sent once
  }
};

MembershipJournal::Options JournalOptions(const EdgeLink::Options& options, sio::Server& server) {
  MembershipJournal::Options out;
  out.heartbeat_interval_ms = static_cast<uint32_t>(options.heartbeat_interval.count());
  out.message_counts = [&server] {
    std::map<std::string, std::pair<uint64_t, uint64_t>> counts;
    for (const auto& nsp : server.namespaces()) {
      counts[nsp->name()] = {nsp->MessagesIn(), nsp->MessagesOut()};
    }
    return counts;
  };
  out.decorate_heartbeat = options.decorate_heartbeat;
  out.version = options.version;
  out.started_at = options.started_at;
  out.on_event = options.on_membership_event;
  return out;
}

// A delivery that keeps `hold` until the last shard is done with it.
std::shared_ptr<const sio::Delivery> Held(sio::Delivery delivery,
                                          std::shared_ptr<const void> hold) {
  if (!hold) return std::make_shared<const sio::Delivery>(std::move(delivery));
  // One allocation for both; the pointer handed out aliases the delivery.
  auto both = std::make_shared<const std::pair<sio::Delivery, std::shared_ptr<const void>>>(
      std::move(delivery), std::move(hold));
  return std::shared_ptr<const sio::Delivery>(both, &both->first);
}

int64_t UnixNanosNow() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

EdgeLink::EdgeLink(bus::Bus& bus, sio::Server& server, Options options)
    : bus_(bus),
      server_(server),
      options_(std::move(options)),
      own_socket_prefix_([&] {
        std::string pattern = bus::SocketPattern(options_.edge_id);
        pattern.pop_back();  // the "*"
        return pattern;
      }()),
      journal_(bus, options_.edge_id, JournalOptions(options_, server)) {}

absl::StatusOr<std::unique_ptr<EdgeLink>> EdgeLink::Start(bus::Bus& bus, sio::Server& server,
                                                          Options options) {
  if (!bus::ValidNodeId(options.edge_id)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid edge id \"", options.edge_id,
                                                   "\": use 1-64 characters of [A-Za-z0-9_-]"));
  }
  if (server.options().edge_id != options.edge_id) {
    return absl::InvalidArgumentError("the server's socket ids must carry the edge id");
  }
  std::unique_ptr<EdgeLink> link(new EdgeLink(bus, server, std::move(options)));
  if (absl::Status status = link->journal_.ServeSnapshots(); !status.ok()) return status;
  // A socket's subject names the edge that made its id; sockets that moved
  // here are subscribed one by one (OnMovedIn).
  link->AddInterest(bus::SocketPattern(link->options_.edge_id));
  // A namespace with connection state recovery logs every publish to it,
  // whether or not a socket here is in its target now (a disconnected one
  // gets it on its restore): its whole subject space, for good.
  for (const auto& nsp : server.namespaces()) {
    // A cluster's log brings them from its stream instead.
    if (nsp->recovery() == nullptr || nsp->recovery()->log().shared()) continue;
    auto last_token_any = [](std::string subject) {
      return subject.substr(0, subject.rfind('.') + 1) + "*";
    };
    link->AddInterest(bus::NamespaceSubject(nsp->name()));
    link->AddInterest(last_token_any(bus::RoomSubject(nsp->name(), "_")));
    link->AddInterest(last_token_any(bus::UserSubject(nsp->name(), "_")));
  }
  server.SetMembershipObserver(link.get());
  server.SetBroadcastRelay(link.get());
  link->heartbeat_thread_ = std::thread([raw = link.get()] { raw->HeartbeatLoop(); });
  return link;
}

EdgeLink::~EdgeLink() {
  {
    std::lock_guard lock(heartbeat_mu_);
    stopping_ = true;
  }
  heartbeat_cv_.notify_all();
  if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
  server_.SetMembershipObserver(nullptr);
  server_.SetBroadcastRelay(nullptr);
  std::map<std::string, Interest> interests;
  {
    std::lock_guard lock(interest_mu_);
    interests.swap(interests_);
  }
  interests.clear();  // unsubscribes, outside the lock
}

// ------------------------------------------------------------ interest ---

// One of this edge's own socket ids' subjects: its SocketPattern has them all.
bool EdgeLink::OwnSocketSubject(std::string_view subject) const {
  return subject.starts_with(own_socket_prefix_) && subject.back() != '*';
}

void EdgeLink::AddInterest(const std::string& subject) {
  if (subject.empty() || OwnSocketSubject(subject)) return;
  std::lock_guard lock(interest_mu_);
  Interest& interest = interests_[subject];
  if (interest.count++ > 0) return;
  auto sub = bus_.Subscribe(subject, [this](bus::Message message) { OnBusMessage(message); });
  if (sub.ok()) {
    interest.subscription = std::move(*sub);
  } else {
    spdlog::warn("subscribe {}: {} (retrying)", subject, sub.status().ToString());
  }
}

void EdgeLink::DropInterest(const std::string& subject) {
  if (subject.empty() || OwnSocketSubject(subject)) return;
  bus::SubscriptionPtr gone;
  {
    std::lock_guard lock(interest_mu_);
    auto it = interests_.find(subject);
    if (it == interests_.end() || --it->second.count > 0) return;
    gone = std::move(it->second.subscription);
    interests_.erase(it);
  }
  // Outside the lock: it waits for a running handler of this subscription.
  gone.reset();
}

void EdgeLink::RetryFailedSubscriptions() {
  std::lock_guard lock(interest_mu_);
  for (auto& [subject, interest] : interests_) {
    if (interest.subscription) continue;
    auto sub = bus_.Subscribe(subject, [this](bus::Message message) { OnBusMessage(message); });
    if (sub.ok()) interest.subscription = std::move(*sub);
  }
}

size_t EdgeLink::subscription_count() const {
  std::lock_guard lock(interest_mu_);
  size_t count = 0;
  for (const auto& [subject, interest] : interests_) count += interest.subscription ? 1 : 0;
  return count;
}

// Subscriptions come before the journal's announcement, so that a broker
// that learns of a member can already reach it.
void EdgeLink::OnConnected(const sio::Socket& socket) {
  const std::string& nsp = socket.nsp().name();
  AddInterest(bus::NamespaceSubject(nsp));
  // A restored session's id may name the edge it had before.
  AddInterest(bus::SocketSubject(socket.id()));
  if (!socket.user_id().empty()) AddInterest(bus::UserSubject(nsp, socket.user_id()));
  for (const auto& room : socket.rooms()) {
    if (room != socket.id()) AddInterest(bus::RoomSubject(nsp, room));
  }
  journal_.OnConnected(socket);
}

void EdgeLink::OnDisconnected(const sio::Socket& socket, std::string_view reason) {
  journal_.OnDisconnected(socket, reason);
  ReleaseSubjects(
      SubjectsOf(socket.nsp().name(), socket.id(), socket.user_id(), socket.joined_rooms()));
}

void EdgeLink::OnMovedOut(const sio::Socket& socket, std::string_view to_edge) {
  journal_.OnMovedOut(socket, to_edge);
  ReleaseSubjects(
      SubjectsOf(socket.nsp().name(), socket.id(), socket.user_id(), socket.joined_rooms()));
}

void EdgeLink::OnMovedIn(const sio::Socket& socket, std::string_view from_edge) {
  for (const std::string& subject :
       SubjectsOf(socket.nsp().name(), socket.id(), socket.user_id(), socket.joined_rooms())) {
    AddInterest(subject);
  }
  journal_.OnMovedIn(socket, from_edge);
}

std::vector<std::string> EdgeLink::SubjectsOf(std::string_view nsp, std::string_view socket_id,
                                              std::string_view user_id,
                                              const std::vector<std::string>& rooms) {
  std::vector<std::string> out;
  out.push_back(bus::NamespaceSubject(nsp));
  if (!user_id.empty()) out.push_back(bus::UserSubject(nsp, user_id));
  for (const auto& room : rooms) {
    if (room != socket_id) out.push_back(bus::RoomSubject(nsp, room));
  }
  // Its own subject, for a socket whose id names another edge (it moved
  // here); this edge's own ids are all under its SocketPattern.
  out.push_back(bus::SocketSubject(socket_id));
  return out;
}

void EdgeLink::ReleaseSubjects(const std::vector<std::string>& subjects) {
  for (const std::string& subject : subjects) DropInterest(subject);
}

// Joins and leaves before the socket is connected are covered by OnConnected
// (which counts the rooms the socket is in by then).
void EdgeLink::OnJoined(const sio::Socket& socket, const std::string& room) {
  if (room == socket.id() || !socket.connected()) return;
  AddInterest(bus::RoomSubject(socket.nsp().name(), room));
  journal_.OnJoined(socket, room);
}

void EdgeLink::OnLeft(const sio::Socket& socket, const std::string& room) {
  if (room == socket.id() || !socket.connected()) return;
  journal_.OnLeft(socket, room);
  DropInterest(bus::RoomSubject(socket.nsp().name(), room));
}

void EdgeLink::OnTransportChanged(const sio::Socket& socket) {
  journal_.OnTransportChanged(socket);
}

// ------------------------------------------------------------- receive ---

bool EdgeLink::FirstTime(const std::string& id) {
  auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(dedup_mu_);
  while (!seen_order_.empty() && now - seen_order_.front().first > options_.dedup_window) {
    seen_.erase(seen_order_.front().second);
    seen_order_.pop_front();
  }
  if (!seen_.emplace(id, now).second) return false;
  seen_order_.emplace_back(now, id);
  return true;
}

void EdgeLink::OnBusMessage(const bus::Message& message) {
  v1::EdgeMessage edge_message;
  if (!edge_message.ParseFromString(message.payload)) {
    spdlog::warn("malformed EdgeMessage on {}", message.subject);
    return;
  }
  std::lock_guard lock(handling_mu_);
  if (buffering_.load(std::memory_order_acquire) > 0) Buffer(message.subject, edge_message);
  if (edge_message.has_delivery()) {
    const v1::Delivery& delivery = edge_message.delivery();
    if (delivery.origin_edge() == options_.edge_id) return;  // delivered when sent
    if (FirstTime(delivery.id())) {
      HandleDelivery(delivery, message.hold, nullptr,
                     already_given_.empty() ? nullptr : AlreadyGiven(delivery.id()));
    }
  } else if (edge_message.has_command()) {
    if (FirstTime(edge_message.command().id())) HandleCommand(edge_message.command());
  }
}

// `hold` keeps the message's bytes counted against the bus's bound until every
// shard has taken the delivery: the shards' queues are bounded with the bus's.
void EdgeLink::HandleDelivery(const v1::Delivery& delivery, std::shared_ptr<const void> hold,
                              std::shared_ptr<const std::vector<std::string>> only,
                              const std::vector<std::string>* except_sockets) {
  sio::Namespace* nsp = server_.Find(bus::NamespaceOrDefault(delivery.target().namespace_()));
  if (nsp == nullptr) return;
  // Once per delivery, right after it is handed to the shards that hold the
  // recipients (they write the shared packet next).
  auto observe = [&] {
    if (delivery.published_unix_nanos() > 0) {
      delivery_latency_.Observe(
          std::chrono::nanoseconds(UnixNanosNow() - delivery.published_unix_nanos()));
    }
  };
  sio::BroadcastTarget target = ToBroadcastTarget(delivery.target());
  target.is_volatile = delivery.volatile_();
  target.only = std::move(only);
  if (except_sockets != nullptr) {  // a socket id is a room of its own
    target.except_rooms.insert(target.except_rooms.end(), except_sockets->begin(),
                               except_sockets->end());
  }

  if (delivery.ack_timeout_ms() > 0 && !delivery.ack_subject().empty() &&
      delivery.frames_size() == 0) {
    absl::StatusOr<sio::Json> args = ArgumentsToJson(delivery.args());
    if (!args.ok()) {
      spdlog::warn("delivery {} dropped: {}", delivery.id(), args.status().ToString());
      return;
    }
    CollectAcks(*nsp, delivery, std::move(target), std::move(*args), std::move(hold));
    observe();
    return;
  }
  absl::StatusOr<std::vector<eio::Frame>> frames = DeliveryFrames(delivery, nsp->name());
  if (!frames.ok()) {
    spdlog::warn("delivery {} dropped: {}", delivery.id(), frames.status().ToString());
    return;
  }
  nsp->Deliver(Held(sio::Delivery{std::move(target), std::move(*frames)}, std::move(hold)));
  observe();
}

void EdgeLink::CollectAcks(sio::Namespace& nsp, const v1::Delivery& delivery,
                           sio::BroadcastTarget target, sio::Json args,
                           std::shared_ptr<const void> hold) {
  auto collection = std::make_shared<AckCollection>();
  collection->shards_pending = server_.runtime().size();  // ForEachTarget visits every shard
  collection->report.set_delivery_id(delivery.id());
  collection->report.set_edge_id(options_.edge_id);
  collection->subject = delivery.ack_subject();
  collection->bus = &bus_;
  // Encoded once: each recipient's packet differs only by its ack id.
  auto event = std::make_shared<const sio::AckEvent>(
      sio::MakeEvent(nsp.name(), delivery.event(), std::move(args)));
  auto timeout = std::chrono::milliseconds(delivery.ack_timeout_ms());
  nsp.ForEachTarget(
      std::make_shared<const sio::BroadcastTarget>(std::move(target)),
      [collection, event, timeout, hold](const std::vector<sio::SocketPtr>& recipients) {
        {
          std::lock_guard lock(collection->mu);
          collection->answers_pending += recipients.size();
          collection->report.set_recipients(collection->report.recipients() + recipients.size());
        }
        for (const sio::SocketPtr& socket : recipients) {
          socket->EmitWithAck(
              *event, timeout, [collection, id = socket->id()](absl::StatusOr<sio::Json> answer) {
                std::lock_guard lock(collection->mu);
                v1::Ack* ack = collection->report.add_acks();
                ack->set_socket_id(id);
                if (answer.ok()) {
                  JsonToArguments(*answer, ack->mutable_args());
                } else {
                  ack->set_error(absl::IsDeadlineExceeded(answer.status()) ? "timeout"
                                                                           : "disconnected");
                }
                --collection->answers_pending;
                collection->MaybeSendLocked();
              });
        }
        std::lock_guard lock(collection->mu);
        --collection->shards_pending;
        collection->MaybeSendLocked();
      });
}

void EdgeLink::HandleCommand(const v1::Command& command,
                             std::shared_ptr<const std::vector<std::string>> only) {
  const v1::Selector& selector = command.selector();
  sio::Namespace* nsp = server_.Find(bus::NamespaceOrDefault(selector.namespace_()));
  if (nsp == nullptr) return;
  bool empty =
      selector.rooms().empty() && selector.socket_ids().empty() && selector.user_ids().empty();
  if (empty != selector.all_sockets()) return;  // never act on a whole namespace by mistake
  sio::BroadcastTarget target;
  target.rooms.assign(selector.rooms().begin(), selector.rooms().end());
  target.rooms.insert(target.rooms.end(), selector.socket_ids().begin(),
                      selector.socket_ids().end());
  target.user_ids.assign(selector.user_ids().begin(), selector.user_ids().end());
  target.only = std::move(only);

  nsp->ForEachTarget(std::make_shared<const sio::BroadcastTarget>(std::move(target)),
                     [command = std::make_shared<const v1::Command>(command)](
                         const std::vector<sio::SocketPtr>& sockets) {
                       const v1::Command& cmd = *command;
                       for (const sio::SocketPtr& held : sockets) {
                         // An earlier socket's disconnect may have taken this one along.
                         if (!held->connected()) continue;
                         sio::Socket& socket = *held;
                         switch (cmd.action_case()) {
                           case v1::Command::kJoin:
                             for (const auto& room : cmd.join().rooms()) socket.Join(room);
                             break;
                           case v1::Command::kLeave:
                             for (const auto& room : cmd.leave().rooms()) {
                               if (room != socket.id()) socket.Leave(room);
                             }
                             break;
                           case v1::Command::kDisconnectClose:
                             socket.Disconnect(cmd.disconnect_close());
                             break;
                           default: break;
                         }
                       }
                     });
}

// --------------------------------------------------------------- relay ---

sio::BroadcastRelay::Relayed EdgeLink::OnLocalBroadcast(sio::Namespace& nsp,
                                                        const sio::Delivery& delivery) {
  if (!options_.relay_broadcasts) return Relayed::kDeliverHere;
  v1::EdgeMessage message;
  v1::Delivery* out = message.mutable_delivery();
  out->set_id(NextDeliveryId());
  out->set_origin_edge(options_.edge_id);
  out->set_volatile_(delivery.target.is_volatile);
  out->set_published_unix_nanos(UnixNanosNow());
  v1::Target* target = out->mutable_target();
  target->set_namespace_(nsp.name());
  for (const auto& room : delivery.target.rooms) target->add_rooms(room);
  for (const auto& user : delivery.target.user_ids) target->add_user_ids(user);
  for (const auto& room : delivery.target.except_rooms) target->add_except_rooms(room);
  for (const auto& frame : delivery.frames) out->add_frames(*frame.bytes);

  if (LogsHere(nsp, delivery)) {
    std::string payload = message.SerializeAsString();
    auto fallback = std::make_shared<const sio::Delivery>(delivery);
    absl::Status status = options_.append_to_log(
        nsp.name(), payload, [this, &nsp, payload, fallback](absl::StatusOr<uint64_t> sequence) {
          if (!absl::IsNotFound(sequence.status())) {
            if (!sequence.ok()) {
              spdlog::warn("{}: broadcast not stored in the recovery log: {}", nsp.name(),
                           sequence.status().ToString());
            }
            return;
          }
          // No stream (deleted under us): live on the bus, without an offset.
          (void)RelayOnBus(nsp, *fallback, payload);
          nsp.Deliver(fallback);
        });
    if (status.ok()) return Relayed::kLogged;
    uint64_t refused = relays_refused_.fetch_add(1, std::memory_order_relaxed) + 1;
    if ((refused & (refused - 1)) == 0) {
      spdlog::warn("{}: broadcast not sent ({} so far): {}", nsp.name(), refused,
                   std::string(status.message()));
    }
    return Relayed::kRefused;
  }
  return RelayOnBus(nsp, delivery, message.SerializeAsString()) ? Relayed::kDeliverHere
                                                                : Relayed::kRefused;
}

bool EdgeLink::LogsHere(sio::Namespace& nsp, const sio::Delivery& delivery) const {
  return options_.append_to_log && nsp.recovery() != nullptr && nsp.recovery()->log().shared() &&
         !delivery.target.is_volatile && !delivery.target.only &&
         recovery::IsRecoverable(delivery.frames);
}

bool EdgeLink::RelayOnBus(sio::Namespace& nsp, const sio::Delivery& delivery,
                          const std::string& payload) {
  // Socket ids are rooms here: TargetSubjects sends those to their edges too.
  const std::vector<std::string> subjects = bus::TargetSubjects(
      nsp.name(), delivery.target.rooms, std::vector<std::string>{}, delivery.target.user_ids);
  for (const auto& subject : subjects) {
    absl::Status status = bus_.Publish(subject, payload);
    if (absl::IsInvalidArgument(status)) {
      // Too large for the bus (the subjects are valid): refused everywhere,
      // the first subject being the first publish. Counted by the bus too.
      uint64_t refused = relays_refused_.fetch_add(1, std::memory_order_relaxed) + 1;
      if ((refused & (refused - 1)) == 0) {  // 1st, 2nd, 4th...: no log flood
        spdlog::warn("{}: broadcast not sent ({} so far): {}", nsp.name(), refused,
                     std::string(status.message()));
      }
      return false;
    }
    if (!status.ok()) {
      spdlog::debug("relay to {} not sent: {}", subject, status.ToString());
      return true;  // the bus is down: the others would fail too
    }
  }
  return true;
}

std::string EdgeLink::NextDeliveryId() {
  return absl::StrCat(options_.edge_id, ":", journal_.incarnation(), ":",
                      relay_counter_.fetch_add(1, std::memory_order_relaxed));
}

// --------------------------------------------------------------- moves ---

uint64_t EdgeLink::BeginBuffer(std::vector<std::string> subjects) {
  for (const std::string& subject : subjects) AddInterest(subject);
  std::lock_guard lock(buffers_mu_);
  uint64_t token = ++next_buffer_;
  buffers_[token].subjects = std::move(subjects);
  buffering_.fetch_add(1, std::memory_order_release);
  return token;
}

void EdgeLink::ExtendBuffer(uint64_t token, const std::vector<std::string>& subjects) {
  for (const std::string& subject : subjects) AddInterest(subject);
  std::lock_guard lock(buffers_mu_);
  auto it = buffers_.find(token);
  if (it == buffers_.end()) return;
  it->second.subjects.insert(it->second.subjects.end(), subjects.begin(), subjects.end());
}

std::vector<v1::EdgeMessage> EdgeLink::EndBuffer(uint64_t token) {
  std::lock_guard lock(buffers_mu_);
  auto it = buffers_.find(token);
  if (it == buffers_.end()) return {};
  std::vector<v1::EdgeMessage> messages = std::move(it->second.messages);
  buffers_.erase(it);
  buffering_.fetch_sub(1, std::memory_order_release);
  return messages;
}

void EdgeLink::Buffer(const std::string& subject, const v1::EdgeMessage& message) {
  std::lock_guard lock(buffers_mu_);
  for (auto& [token, buffer] : buffers_) {
    if (std::find(buffer.subjects.begin(), buffer.subjects.end(), subject) !=
        buffer.subjects.end()) {
      buffer.messages.push_back(message);
    }
  }
}

std::vector<std::string> EdgeLink::HandledSince(std::chrono::steady_clock::time_point since,
                                                size_t limit) {
  std::vector<std::string> ids;
  std::lock_guard lock(dedup_mu_);
  for (auto it = seen_order_.rbegin();
       it != seen_order_.rend() && it->first >= since && ids.size() < limit; ++it) {
    ids.push_back(it->second);
  }
  return ids;
}

void EdgeLink::Replay(const std::vector<v1::EdgeMessage>& messages,
                      const std::vector<std::string>& handled,
                      std::shared_ptr<const std::vector<std::string>> only,
                      std::chrono::milliseconds grace) {
  auto until = std::chrono::steady_clock::now() + grace;
  for (const std::string& id : handled) {
    already_given_order_.emplace_back(until, id);
    GivenElsewhere& given = already_given_[id];
    given.until = until;
    if (!given.sockets) {
      given.sockets = only;
    } else {  // given to other moved sockets too
      auto both = std::make_shared<std::vector<std::string>>(*given.sockets);
      both->insert(both->end(), only->begin(), only->end());
      given.sockets = std::move(both);
    }
  }
  absl::flat_hash_set<std::string_view> skip(handled.begin(), handled.end());
  absl::flat_hash_set<std::string_view> done;  // one message on several subjects
  for (const v1::EdgeMessage& message : messages) {
    if (message.has_delivery()) {
      const v1::Delivery& delivery = message.delivery();
      if (skip.contains(delivery.id()) || !done.insert(delivery.id()).second) continue;
      HandleDelivery(delivery, nullptr, only);
    } else if (message.has_command()) {
      const v1::Command& command = message.command();
      if (skip.contains(command.id()) || !done.insert(command.id()).second) continue;
      HandleCommand(command, only);
    }
  }
}

const std::vector<std::string>* EdgeLink::AlreadyGiven(const std::string& id) {
  auto now = std::chrono::steady_clock::now();
  while (!already_given_order_.empty() && already_given_order_.front().first <= now) {
    auto it = already_given_.find(already_given_order_.front().second);
    if (it != already_given_.end() && it->second.until <= now) already_given_.erase(it);
    already_given_order_.pop_front();
  }
  auto it = already_given_.find(id);
  return it == already_given_.end() ? nullptr : it->second.sockets.get();
}

// ----------------------------------------------------------- heartbeat ---

void EdgeLink::Heartbeat(bool draining) { (void)journal_.PublishHeartbeat(draining); }

void EdgeLink::HeartbeatLoop() {
  std::unique_lock lock(heartbeat_mu_);
  while (!stopping_) {
    lock.unlock();
    Heartbeat();
    RetryFailedSubscriptions();
    lock.lock();
    heartbeat_cv_.wait_for(lock, options_.heartbeat_interval, [this] { return stopping_; });
  }
}

}  // namespace switchboard::cluster
