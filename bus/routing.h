#pragma once

// The subject scheme of proto/SUBJECTS.md in one place: how a namespace, room,
// user, edge or broker becomes a subject, and how a socket id names its edge.

#include <string>
#include <string_view>

namespace switchboard::bus {

// Longest name whose token is its base64url encoding; longer names hash.
inline constexpr size_t kMaxPlainTokenBytes = 200;

// The subject token of any name: base64url without padding ("_" for the
// empty name) up to kMaxPlainTokenBytes bytes, "~" + base64url(SHA-256) above.
std::string NameToken(std::string_view name);

// Edge and broker ids are used as tokens as they are: 1..64 characters of
// [A-Za-z0-9_-].
bool ValidNodeId(std::string_view id);
// A random node id of `length` characters from [A-Za-z0-9].
std::string RandomNodeId(size_t length = 12);

std::string RoomSubject(std::string_view nsp, std::string_view room);
std::string NamespaceSubject(std::string_view nsp);
std::string UserSubject(std::string_view nsp, std::string_view user);
std::string EdgeSubject(std::string_view edge_id);
std::string AckSubject(std::string_view broker_id);
std::string MembershipSubject(std::string_view edge_id);
std::string HeartbeatSubject(std::string_view edge_id);
std::string SnapshotSubject(std::string_view edge_id);
std::string ForwardSubject(std::string_view nsp, std::string_view event);
// Every forwarded event of one namespace.
std::string ForwardNamespacePattern(std::string_view nsp);
// Broker -> edge requests answering a forwarded event's ack (ForwardAck).
std::string ForwardAckSubject(std::string_view edge_id);

inline constexpr std::string_view kAllMembership = "sb.v1.membership.>";
inline constexpr std::string_view kAllHeartbeats = "sb.v1.heartbeat.>";
inline constexpr std::string_view kAllForwarded = "sb.v1.forward.>";

// Socket ids in a cluster are "<edge-id>.<local id>": a publish to one socket
// goes to its edge with no look-up. The local id has no '.'.
std::string MakeSocketId(std::string_view edge_id, std::string_view local_id);
// The edge id of a socket id; empty when the id is not of that form.
std::string_view EdgeOfSocketId(std::string_view socket_id);

}  // namespace switchboard::bus
