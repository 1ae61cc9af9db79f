#include "cluster/membership_journal.h"

#include <algorithm>
#include <cstdio>
#include <random>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "base/shrink_when_sparse.h"
#include "bus/routing.h"
#include "edge/socketio/namespace.h"
#include "edge/socketio/socket.h"
#include "proto/convert.h"
#include "switchboard/v1/bus.pb.h"

namespace switchboard::cluster {
namespace {

// The hash maps' heterogeneous lookups take absl's string_view (which need
// not be std::string_view).
absl::string_view AbslView(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string RandomIncarnation() {
  std::random_device device;
  uint64_t value = (uint64_t{device()} << 32) ^ uint64_t { device() };
  char buffer[17];
  std::snprintf(buffer, sizeof(buffer), "%016llx", static_cast<unsigned long long>(value));
  return buffer;
}

}  // namespace

MembershipJournal::MembershipJournal(bus::Bus& bus, std::string edge_id)
    : MembershipJournal(bus, std::move(edge_id), Options{}) {}

MembershipJournal::MembershipJournal(bus::Bus& bus, std::string edge_id, Options options)
    : bus_(bus),
      edge_id_(std::move(edge_id)),
      incarnation_(options.incarnation.empty() ? RandomIncarnation()
                                               : std::move(options.incarnation)),
      heartbeat_interval_ms_(options.heartbeat_interval_ms),
      message_counts_(std::move(options.message_counts)),
      decorate_heartbeat_(std::move(options.decorate_heartbeat)),
      version_(std::move(options.version)),
      started_at_(options.started_at == std::chrono::system_clock::time_point{}
                      ? std::chrono::system_clock::now()
                      : options.started_at),
      on_event_(std::move(options.on_event)) {}

MembershipJournal::~MembershipJournal() {
  bus::SubscriptionPtr sub;
  bus::SubscriptionPtr probe_sub;
  {
    std::lock_guard lock(sub_mu_);
    sub = std::move(snapshot_sub_);
    probe_sub = std::move(probe_sub_);
  }
  if (sub) sub->Unsubscribe();
  if (probe_sub) probe_sub->Unsubscribe();
}

std::string MembershipJournal::membership_subject() const {
  return bus::MembershipSubject(edge_id_);
}
std::string MembershipJournal::heartbeat_subject() const { return bus::HeartbeatSubject(edge_id_); }
std::string MembershipJournal::snapshot_subject() const { return bus::SnapshotSubject(edge_id_); }

uint64_t MembershipJournal::last_seq() const {
  std::lock_guard lock(mu_);
  return seq_;
}

size_t MembershipJournal::socket_count() const {
  std::lock_guard lock(mu_);
  return sockets_.size();
}

std::map<std::pair<std::string, std::string>, uint64_t> MembershipJournal::SocketsByTransport()
    const {
  std::lock_guard lock(mu_);
  return by_transport_;
}

uint64_t MembershipJournal::publish_failures() const {
  return publish_failures_.load(std::memory_order_relaxed);
}

uint64_t MembershipJournal::snapshots_served() const {
  return snapshots_served_.load(std::memory_order_relaxed);
}

void MembershipJournal::CountFailure(const absl::Status& status) {
  if (!status.ok()) publish_failures_.fetch_add(1, std::memory_order_relaxed);
}

void MembershipJournal::PublishEventLocked(v1::MembershipEvent& event) {
  event.set_edge_id(edge_id_);
  event.set_incarnation(incarnation_);
  event.set_seq(++seq_);
  proto::ToTimestamp(std::chrono::system_clock::now(), event.mutable_time());
  CountFailure(bus_.Publish(membership_subject(), event.SerializeAsString()));
  if (on_event_) on_event_(event);
}

const std::string* MembershipJournal::Intern(std::set<std::string, std::less<>>& names,
                                             std::string_view name) {
  auto it = names.find(name);
  if (it == names.end()) it = names.emplace(name).first;
  return &*it;
}

bool MembershipJournal::AddRoomLocked(SocketEntry& entry, const std::string& room) {
  auto pos = std::lower_bound(entry.rooms.begin(), entry.rooms.end(), room);
  if (pos != entry.rooms.end() && *pos == room) return false;  // already in: nothing changed
  entry.rooms.insert(pos, room);
  if (++counts_[*entry.nsp].rooms[room] == 1) ++total_rooms_;
  return true;
}

void MembershipJournal::JoinLocked(SocketEntry& entry, const std::string& room) {
  if (!AddRoomLocked(entry, room)) return;
  v1::MembershipEvent event;
  v1::RoomChange* change = event.mutable_joined();
  change->set_socket_id(std::string(entry.id()));
  change->set_namespace_(*entry.nsp);
  change->set_user_id(std::string(entry.user_id()));
  change->set_room(room);
  PublishEventLocked(event);
}

void MembershipJournal::CountRoomLeftLocked(NspCounts& counts, const std::string& room) {
  auto it = counts.rooms.find(room);
  if (it == counts.rooms.end()) return;  // cannot happen: joins are counted
  if (--it->second == 0) {
    counts.rooms.erase(it);
    --total_rooms_;
  }
}

MembershipJournal::SocketEntry* MembershipJournal::AddLocked(
    const sio::Socket& socket, std::chrono::system_clock::time_point connected_at) {
  if (sockets_.contains(socket.id())) return nullptr;  // reported twice: the first report stands
  std::string claims;
  if (!socket.claims().is_null()) {
    claims = socket.claims().dump(-1, ' ', false, sio::Json::error_handler_t::replace);
  }
  auto owned = std::make_unique<SocketEntry>();
  SocketEntry& entry = *owned;
  entry.strings = proto::PackedStrings<4>(
      {socket.id(), socket.user_id(), socket.handshake().address(), claims});
  entry.nsp = Intern(nsp_names_, socket.nsp().name());
  entry.transport = Intern(transport_names_, socket.transport());
  sockets_.insert(std::move(owned));
  entry.connected_at = connected_at;
  ++by_transport_[{*entry.nsp, *entry.transport}];
  NspCounts& counts = counts_[*entry.nsp];
  ++counts.sockets;
  if (absl::string_view user = AbslView(entry.user_id()); !user.empty()) {
    ++counts.users[user];
    ++total_users_[user];
  }
  return &entry;
}

void MembershipJournal::RemoveLocked(const SocketEntry& entry) {
  --by_transport_[{*entry.nsp, *entry.transport}];
  NspCounts& counts = counts_[*entry.nsp];
  --counts.sockets;
  if (absl::string_view user = AbslView(entry.user_id()); !user.empty()) {
    for (auto* users : {&counts.users, &total_users_}) {
      auto user_it = users->find(user);
      if (user_it != users->end() && --user_it->second == 0) users->erase(user_it);
    }
  }
  for (const std::string& room : entry.rooms) CountRoomLeftLocked(counts, room);
  sockets_.erase(sockets_.find(entry.id()));  // destroys entry: last
  base::ShrinkWhenSparse(sockets_);
}

void MembershipJournal::FillInfoLocked(const SocketEntry& entry, bool with_rooms,
                                       v1::SocketInfo& info) const {
  info.set_id(std::string(entry.id()));
  info.set_edge_id(edge_id_);
  info.set_user_id(std::string(entry.user_id()));
  info.set_namespace_(*entry.nsp);
  if (with_rooms) {
    for (const auto& room : entry.rooms) info.add_rooms(room);  // sorted
  }
  info.set_transport(proto::TransportFromName(*entry.transport));
  info.set_remote_address(std::string(entry.address()));
  info.set_claims(std::string(entry.claims()));
  proto::ToTimestamp(entry.connected_at, info.mutable_connected_at());
}

void MembershipJournal::OnConnected(const sio::Socket& socket) {
  std::lock_guard lock(mu_);
  SocketEntry* entry = AddLocked(socket, std::chrono::system_clock::now());
  if (entry == nullptr) return;
  v1::MembershipEvent event;
  v1::SocketConnected* connected = event.mutable_connected();
  FillInfoLocked(*entry, /*with_rooms=*/false, *connected->mutable_socket());
  // A restored session (connection state recovery): a backend can tell a
  // returning user from a new one, and sees the rooms it came back with.
  if (socket.recovered()) {
    connected->set_recovered(true);
    for (const auto& room : socket.joined_rooms()) connected->mutable_socket()->add_rooms(room);
  }
  PublishEventLocked(event);

  // Rooms joined before the connect was reported (e.g. by a middleware) were
  // ignored by OnJoined: announce them now, after the socket itself.
  for (const auto& room : socket.rooms()) {
    if (room != socket.id()) JoinLocked(*entry, room);
  }
}

void MembershipJournal::OnDisconnected(const sio::Socket& socket, std::string_view reason) {
  std::lock_guard lock(mu_);
  auto it = sockets_.find(socket.id());
  if (it == sockets_.end()) return;
  v1::MembershipEvent event;
  v1::SocketDisconnected* change = event.mutable_disconnected();
  change->set_socket_id(socket.id());
  const SocketEntry& entry = **it;
  change->set_namespace_(*entry.nsp);
  change->set_user_id(std::string(entry.user_id()));
  change->set_reason(std::string(reason));
  RemoveLocked(entry);
  PublishEventLocked(event);
}

void MembershipJournal::OnMovedOut(const sio::Socket& socket, std::string_view to_edge) {
  std::lock_guard lock(mu_);
  auto it = sockets_.find(socket.id());
  if (it == sockets_.end()) return;
  v1::MembershipEvent event;
  v1::SocketMovedOut* change = event.mutable_moved_out();
  change->set_socket_id(socket.id());
  const SocketEntry& entry = **it;
  change->set_namespace_(*entry.nsp);
  change->set_user_id(std::string(entry.user_id()));
  change->set_to_edge(std::string(to_edge));
  RemoveLocked(entry);
  PublishEventLocked(event);
}

void MembershipJournal::OnMovedIn(const sio::Socket& socket, std::string_view from_edge) {
  OnMovedIn(socket, from_edge, std::chrono::system_clock::now());
}

void MembershipJournal::OnMovedIn(const sio::Socket& socket, std::string_view from_edge,
                                  std::chrono::system_clock::time_point connected_at) {
  std::lock_guard lock(mu_);
  SocketEntry* entry = AddLocked(socket, connected_at);
  if (entry == nullptr) return;
  // Its rooms travel in the one event: a move is not a connect plus joins.
  for (const auto& room : socket.rooms()) {
    if (room != socket.id()) AddRoomLocked(*entry, room);
  }
  v1::MembershipEvent event;
  v1::SocketMovedIn* change = event.mutable_moved_in();
  FillInfoLocked(*entry, /*with_rooms=*/true, *change->mutable_socket());
  change->set_from_edge(std::string(from_edge));
  PublishEventLocked(event);
}

void MembershipJournal::OnJoined(const sio::Socket& socket, const std::string& room) {
  if (room == socket.id()) return;
  std::lock_guard lock(mu_);
  auto it = sockets_.find(socket.id());
  if (it == sockets_.end()) return;  // not connected yet: OnConnected reports it
  JoinLocked(**it, room);
}

void MembershipJournal::OnLeft(const sio::Socket& socket, const std::string& room) {
  if (room == socket.id()) return;
  std::lock_guard lock(mu_);
  auto it = sockets_.find(socket.id());
  if (it == sockets_.end()) return;
  SocketEntry& entry = **it;
  auto& rooms = entry.rooms;
  auto pos = std::lower_bound(rooms.begin(), rooms.end(), room);
  if (pos == rooms.end() || *pos != room) return;
  CountRoomLeftLocked(counts_[*entry.nsp], room);
  rooms.erase(pos);
  if (rooms.empty()) rooms.shrink_to_fit();
  v1::MembershipEvent event;
  v1::RoomChange* change = event.mutable_left();
  change->set_socket_id(socket.id());
  change->set_namespace_(*entry.nsp);
  change->set_user_id(std::string(entry.user_id()));
  change->set_room(room);
  PublishEventLocked(event);
}

void MembershipJournal::OnTransportChanged(const sio::Socket& socket) {
  std::lock_guard lock(mu_);
  auto it = sockets_.find(socket.id());
  if (it == sockets_.end()) return;
  const std::string* transport = Intern(transport_names_, socket.transport());
  SocketEntry& entry = **it;
  if (entry.transport == transport) return;
  const std::string& nsp = *entry.nsp;
  --by_transport_[{nsp, *entry.transport}];
  ++by_transport_[{nsp, *transport}];
  entry.transport = transport;
  v1::MembershipEvent event;
  v1::TransportChange* change = event.mutable_transport_changed();
  change->set_socket_id(socket.id());
  change->set_namespace_(nsp);
  change->set_transport(proto::TransportFromName(*transport));
  PublishEventLocked(event);
}

void MembershipJournal::FillHeartbeatLocked(v1::Heartbeat& heartbeat) const {
  heartbeat.set_edge_id(edge_id_);
  heartbeat.set_incarnation(incarnation_);
  heartbeat.set_last_seq(seq_);
  heartbeat.set_interval_ms(heartbeat_interval_ms_);
  heartbeat.set_draining(draining());
  heartbeat.set_version(version_);
  proto::ToTimestamp(started_at_, heartbeat.mutable_started_at());
  proto::ToTimestamp(std::chrono::system_clock::now(), heartbeat.mutable_time());

  v1::Counts* totals = heartbeat.mutable_totals();
  totals->set_sockets(sockets_.size());
  totals->set_users(total_users_.size());
  totals->set_rooms(total_rooms_);
  for (const auto& [name, counts] : counts_) {  // by name
    if (counts.sockets == 0) continue;
    v1::NamespaceCounts* out = heartbeat.add_namespaces();
    out->set_namespace_(std::string(name));
    out->mutable_counts()->set_sockets(counts.sockets);
    out->mutable_counts()->set_users(counts.users.size());
    out->mutable_counts()->set_rooms(counts.rooms.size());
  }
}

void MembershipJournal::AddMessageCounts(v1::Heartbeat& heartbeat) const {
  if (!message_counts_) return;
  const std::map<std::string, std::pair<uint64_t, uint64_t>> messages = message_counts_();
  v1::Counts* totals = heartbeat.mutable_totals();
  auto* namespaces = heartbeat.mutable_namespaces();
  bool added = false;
  for (const auto& [name, in_out] : messages) {
    totals->set_messages_in(totals->messages_in() + in_out.first);
    totals->set_messages_out(totals->messages_out() + in_out.second);
    // Both sorted by name; a namespace with messages but no socket now is
    // listed too.
    auto it = std::lower_bound(namespaces->begin(), namespaces->end(), name,
                               [](const v1::NamespaceCounts& counts, const std::string& n) {
                                 return counts.namespace_() < n;
                               });
    v1::NamespaceCounts* counts = nullptr;
    if (it != namespaces->end() && it->namespace_() == name) {
      counts = &*it;
    } else if (in_out.first + in_out.second > 0) {
      counts = namespaces->Add();
      counts->set_namespace_(name);
      counts->mutable_counts();
      added = true;
    }
    if (counts == nullptr) continue;
    counts->mutable_counts()->set_messages_in(in_out.first);
    counts->mutable_counts()->set_messages_out(in_out.second);
  }
  if (added) {
    std::sort(namespaces->pointer_begin(), namespaces->pointer_end(),
              [](const v1::NamespaceCounts* a, const v1::NamespaceCounts* b) {
                return a->namespace_() < b->namespace_();
              });
  }
}

absl::Status MembershipJournal::PublishHeartbeat(bool draining) {
  if (draining) draining_.store(true, std::memory_order_relaxed);
  v1::Heartbeat heartbeat;
  {
    std::lock_guard lock(mu_);
    FillHeartbeatLocked(heartbeat);
  }
  AddMessageCounts(heartbeat);
  if (decorate_heartbeat_) decorate_heartbeat_(heartbeat);
  // Outside the lock: a heartbeat may overtake an event on another subject,
  // which brokers handle anyway (last_seq ahead → snapshot); its last_seq is
  // never ahead of an event that was not yet published.
  absl::Status status = bus_.Publish(heartbeat_subject(), heartbeat.SerializeAsString());
  CountFailure(status);
  return status;
}

v1::Snapshot MembershipJournal::BuildSnapshot() const {
  v1::Snapshot snapshot;
  {
    std::lock_guard lock(mu_);
    snapshot.set_edge_id(edge_id_);
    snapshot.set_incarnation(incarnation_);
    snapshot.set_seq(seq_);
    snapshot.mutable_sockets()->Reserve(static_cast<int>(sockets_.size()));
    for (const auto& entry : sockets_) {
      FillInfoLocked(*entry, /*with_rooms=*/true, *snapshot.add_sockets()->mutable_socket());
    }
    FillHeartbeatLocked(*snapshot.mutable_heartbeat());
  }
  AddMessageCounts(*snapshot.mutable_heartbeat());
  // By socket id, as before the mirror became a hash set; outside the lock,
  // so that connects do not wait for the sort.
  auto* sockets = snapshot.mutable_sockets();
  std::sort(sockets->pointer_begin(), sockets->pointer_end(),
            [](const v1::SocketState* a, const v1::SocketState* b) {
              return a->socket().id() < b->socket().id();
            });
  return snapshot;
}

void MembershipJournal::ServeOne(const bus::Message& message) {
  if (message.reply_to.empty()) return;  // nobody to answer
  // The request's broker id is informative only: a malformed request still
  // gets the whole snapshot.
  v1::SnapshotRequest request;
  (void)request.ParseFromString(message.payload);
  const auto now = SnapshotPageCache::Clock::now();
  if (!request.snapshot_id().empty()) {  // a later page of a paged snapshot
    std::optional<std::string> page = pages_.Page(request.snapshot_id(), request.page(), now);
    CountFailure(bus_.Publish(
        message.reply_to, page ? *page : GonePage(edge_id_, incarnation_, request.snapshot_id())));
    return;
  }
  v1::Snapshot snapshot = BuildSnapshot();
  std::string reply = snapshot.SerializeAsString();
  const uint64_t limit = bus_.max_payload();
  if (limit != 0 && reply.size() > limit && request.accepts_pages()) {
    std::string id = absl::StrCat(incarnation_, "-",
                                  next_snapshot_id_.fetch_add(1, std::memory_order_relaxed) + 1);
    std::vector<std::string> pages = SplitSnapshot(snapshot, id, limit);
    reply = pages.front();
    pages_.Keep(std::move(id), std::move(pages), now);
  }
  // Too large and not paged (an older broker): the bus refuses it, counted.
  CountFailure(bus_.Publish(message.reply_to, reply));
  snapshots_served_.fetch_add(1, std::memory_order_relaxed);
}

absl::Status MembershipJournal::ServeSnapshots() {
  std::lock_guard lock(sub_mu_);
  if (snapshot_sub_) return absl::OkStatus();
  auto sub =
      bus_.Subscribe(snapshot_subject(), [this](bus::Message message) { ServeOne(message); });
  if (!sub.ok()) return sub.status();
  // Only constant members: safe on whatever thread the bus delivers on, and
  // never waits for the journal's mutex.
  auto probe_sub = bus_.Subscribe(
      bus::ProbeSubject(edge_id_),
      [this](bus::Message message) {
        if (message.reply_to.empty()) return;
        v1::ProbeReply reply;
        reply.set_edge_id(edge_id_);
        reply.set_incarnation(incarnation_);
        CountFailure(bus_.Publish(message.reply_to, reply.SerializeAsString()));
      },
      {}, bus::InlineExecutor);
  if (!probe_sub.ok()) return probe_sub.status();
  snapshot_sub_ = std::move(*sub);
  probe_sub_ = std::move(*probe_sub);
  return absl::OkStatus();
}

}  // namespace switchboard::cluster
