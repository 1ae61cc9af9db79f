#pragma once

// The subject scheme of proto/SUBJECTS.md in one place: how a namespace, room,
// user, edge or broker becomes a subject, and how a socket id names its edge.

#include <string>
#include <string_view>
#include <vector>

#include "edge/ids.h"

namespace switchboard::bus {

// Longest name whose token is its base64url encoding; longer names hash.
inline constexpr size_t kMaxPlainTokenBytes = 200;

// The subject token of any name: base64url without padding ("_" for the
// empty name) up to kMaxPlainTokenBytes bytes, "~" + base64url(SHA-256) above.
std::string NameToken(std::string_view name);

// Edge and broker ids are used as tokens as they are: 1..64 characters of
// [A-Za-z0-9_-] (the format's home is edge/ids.h).
using edge::ValidNodeId;
// A random node id of `length` characters from [A-Za-z0-9].
std::string RandomNodeId(size_t length = 12);

std::string RoomSubject(std::string_view nsp, std::string_view room);
std::string NamespaceSubject(std::string_view nsp);
std::string UserSubject(std::string_view nsp, std::string_view user);
std::string AckSubject(std::string_view broker_id);
std::string MembershipSubject(std::string_view edge_id);
std::string HeartbeatSubject(std::string_view edge_id);
std::string SnapshotSubject(std::string_view edge_id);
// Broker -> edge liveness probes (Probe), when its heartbeats are late.
std::string ProbeSubject(std::string_view edge_id);
// Edge -> one broker requests of the brokers' bus API (ApiReply): "sb.v1.api.<method>", the
// method a Switchboard gRPC method name (e.g. "ListSockets"), used as the token as it is.
std::string ApiSubject(std::string_view method);
std::string ForwardSubject(std::string_view nsp, std::string_view event);
// Every forwarded event of one namespace.
std::string ForwardNamespacePattern(std::string_view nsp);
// One event's forwards, whatever their namespace.
std::string ForwardEventPattern(std::string_view event);
// The NATS queue group of the WatchEvents callers sharing `group`.
std::string WatchQueueGroup(std::string_view group);
// Broker -> edge requests answering a forwarded event's ack (ForwardAck).
std::string ForwardAckSubject(std::string_view edge_id);
// Edge -> edge requests moving a session (MoveRequest): to the session's owner.
std::string MoveSubject(std::string_view edge_id);
// One socket: "sb.v1.sock.<edge-id>.<local id>" for a socket id "<edge-id>.<local id>". The
// edge that made the id takes them all (SocketPattern); an edge a socket moved to subscribes to
// the socket's own subject. Empty for an id of another form.
std::string SocketSubject(std::string_view socket_id);
std::string SocketPattern(std::string_view edge_id);
// Edge -> edge requests: a polling GET or POST for a session that edge owns,
// or the abort of a held one (PollRequest).
std::string PollSubject(std::string_view edge_id);
// Connection state recovery on JetStream (issue 17), per namespace with it
// on: the subject of its publish log, "sb.v1.log.<ns>"; the stream holding
// it; the KV bucket of its session records. Stream and bucket names take
// [A-Za-z0-9_-] only, so they use a hash of the namespace.
std::string LogSubject(std::string_view nsp);
std::string LogStream(std::string_view nsp);
std::string SessionBucket(std::string_view nsp);
// The Admin UI (admin_ui/): an edge's stats every 2 s, and in development mode
// the events its clients send.
std::string AdminStatsSubject(std::string_view edge_id);
std::string AdminEventSubject(std::string_view edge_id);

inline constexpr std::string_view kAllMembership = "sb.v1.membership.>";
inline constexpr std::string_view kAllHeartbeats = "sb.v1.heartbeat.>";
inline constexpr std::string_view kAllForwarded = "sb.v1.forward.>";
inline constexpr std::string_view kAllAdminStats = "sb.v1.admin.stats.>";
inline constexpr std::string_view kAllAdminEvents = "sb.v1.admin.event.>";
inline constexpr std::string_view kAllApi = "sb.v1.api.>";
// The queue group of the brokers' API subscription: one broker answers each request.
inline constexpr std::string_view kBrokersQueueGroup = "sb-brokers";

// Socket ids in a cluster are "<edge-id>.<local id>": a publish to one socket
// goes to its edge with no look-up (the format's home is edge/ids.h).
using edge::EdgeOfSocketId;
using edge::MakeSocketId;

// A forwarded event's ack_ref is "<edge-id>.<nonce>.<n>": the API's answer
// goes to that edge with no look-up. The prefix up to <n>:
std::string AckRefPrefix(std::string_view edge_id, std::string_view nonce);
// The edge id of an ack_ref; empty when the ref is not of that form.
std::string_view EdgeOfAckRef(std::string_view ref);

// A Target's or Selector's empty namespace is the main one.
inline constexpr std::string_view kDefaultNamespace = "/";
inline std::string_view NamespaceOrDefault(std::string_view nsp) {
  return nsp.empty() ? kDefaultNamespace : nsp;
}

// The subjects one publish or command goes on (proto/SUBJECTS.md), sorted,
// each once: each room's; each user's; the edge subject of each socket id and
// of each room named by a socket id (a socket is a room of its own, as with
// Socket.IO's to(socket.id)); the namespace's when the target names no room,
// socket or user. An edge relaying what its own clients caused sends to its
// own sockets' subjects too (a socket may have moved to another edge since):
// it does not receive its own messages.
class TargetSubjectSet {
 public:
  explicit TargetSubjectSet(std::string_view nsp) : nsp_(nsp) {}
  void AddRoom(std::string_view room);
  void AddSocket(std::string_view socket_id);
  void AddUser(std::string_view user_id);
  std::vector<std::string> Take() &&;

 private:
  std::string_view nsp_;
  bool named_ = false;
  std::vector<std::string> subjects_;
};

// TargetSubjectSet over any ranges of names (proto repeated fields, vectors).
template <typename Rooms, typename SocketIds, typename UserIds>
std::vector<std::string> TargetSubjects(std::string_view nsp, const Rooms& rooms,
                                        const SocketIds& socket_ids, const UserIds& user_ids) {
  TargetSubjectSet set(nsp);
  for (const auto& room : rooms) set.AddRoom(room);
  for (const auto& id : socket_ids) set.AddSocket(id);
  for (const auto& user : user_ids) set.AddUser(user);
  return std::move(set).Take();
}

}  // namespace switchboard::bus
