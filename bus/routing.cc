#include "bus/routing.h"

#include <openssl/sha.h>

#include <algorithm>
#include <random>

#include "bus/subject.h"

namespace switchboard::bus {
namespace {

std::string Join(std::string_view a, std::string_view b) {
  std::string out;
  out.reserve(a.size() + b.size());
  out.append(a);
  out.append(b);
  return out;
}

std::string Join(std::string_view a, std::string_view b, std::string_view c, std::string_view d) {
  std::string out;
  out.reserve(a.size() + b.size() + c.size() + d.size());
  out.append(a);
  out.append(b);
  out.append(c);
  out.append(d);
  return out;
}

// The first 12 bytes of the name's SHA-256, in hex: names of streams and
// buckets, which take no '.', '~' or '=' .
std::string NameHash(std::string_view name) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(name.data()), name.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < 12; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

}  // namespace

std::string NameToken(std::string_view name) {
  if (name.size() <= kMaxPlainTokenBytes) return EncodeToken(name);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(name.data()), name.size(), digest);
  return Join("~",
              EncodeToken(std::string_view(reinterpret_cast<const char*>(digest), sizeof digest)));
}

std::string RandomNodeId(size_t length) {
  static constexpr std::string_view kChars =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::random_device device;
  std::uniform_int_distribution<size_t> pick(0, kChars.size() - 1);
  std::string id(length, ' ');
  for (char& c : id) c = kChars[pick(device)];
  return id;
}

std::string RoomSubject(std::string_view nsp, std::string_view room) {
  return Join("sb.v1.room.", NameToken(nsp), ".", NameToken(room));
}
std::string NamespaceSubject(std::string_view nsp) { return Join("sb.v1.ns.", NameToken(nsp)); }
std::string UserSubject(std::string_view nsp, std::string_view user) {
  return Join("sb.v1.user.", NameToken(nsp), ".", NameToken(user));
}
std::string AckSubject(std::string_view broker_id) { return Join("sb.v1.ack.", broker_id); }
std::string MembershipSubject(std::string_view edge_id) {
  return Join("sb.v1.membership.", edge_id);
}
std::string HeartbeatSubject(std::string_view edge_id) { return Join("sb.v1.heartbeat.", edge_id); }
std::string SnapshotSubject(std::string_view edge_id) { return Join("sb.v1.snapshot.", edge_id); }
std::string ProbeSubject(std::string_view edge_id) { return Join("sb.v1.probe.", edge_id); }
std::string ApiSubject(std::string_view method) { return Join("sb.v1.api.", method); }
std::string ForwardSubject(std::string_view nsp, std::string_view event) {
  return Join("sb.v1.forward.", NameToken(nsp), ".", NameToken(event));
}

std::string ForwardNamespacePattern(std::string_view nsp) {
  return Join("sb.v1.forward.", NameToken(nsp), ".>", "");
}

std::string ForwardAckSubject(std::string_view edge_id) { return Join("sb.v1.fack.", edge_id); }
std::string PollSubject(std::string_view edge_id) { return Join("sb.v1.poll.", edge_id); }
std::string LogSubject(std::string_view nsp) { return Join("sb.v1.log.", NameToken(nsp)); }
std::string LogStream(std::string_view nsp) { return Join("SB_LOG_", NameHash(nsp)); }
std::string SessionBucket(std::string_view nsp) { return Join("SB_SESSIONS_", NameHash(nsp)); }
std::string AdminStatsSubject(std::string_view edge_id) {
  return Join("sb.v1.admin.stats.", edge_id);
}
std::string AdminEventSubject(std::string_view edge_id) {
  return Join("sb.v1.admin.event.", edge_id);
}

std::string ForwardEventPattern(std::string_view event) {
  return Join("sb.v1.forward.*.", NameToken(event));
}

std::string MoveSubject(std::string_view edge_id) { return Join("sb.v1.move.", edge_id); }

std::string SocketSubject(std::string_view socket_id) {
  std::string_view edge = EdgeOfSocketId(socket_id);
  if (edge.empty()) return {};
  return Join("sb.v1.sock.", socket_id);
}

std::string SocketPattern(std::string_view edge_id) {
  return Join("sb.v1.sock.", edge_id, ".*", "");
}

std::string WatchQueueGroup(std::string_view group) { return Join("sbw.", NameToken(group)); }

std::string AckRefPrefix(std::string_view edge_id, std::string_view nonce) {
  return Join(edge_id, ".", nonce, ".");
}

std::string_view EdgeOfAckRef(std::string_view ref) {
  size_t first = ref.find('.');
  if (first == std::string_view::npos) return {};
  size_t second = ref.find('.', first + 1);
  if (second == std::string_view::npos || second == first + 1 || second + 1 == ref.size()) {
    return {};
  }
  std::string_view counter = ref.substr(second + 1);
  if (!std::all_of(counter.begin(), counter.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return {};
  }
  std::string_view edge = ref.substr(0, first);
  return ValidNodeId(edge) ? edge : std::string_view{};
}

void TargetSubjectSet::AddRoom(std::string_view room) {
  named_ = true;
  subjects_.push_back(RoomSubject(nsp_, room));
  // A room named by a socket id is that socket: its edge has no room
  // subscription for it.
  AddSocket(room);
}

void TargetSubjectSet::AddSocket(std::string_view socket_id) {
  named_ = true;
  std::string subject = SocketSubject(socket_id);
  if (!subject.empty()) subjects_.push_back(std::move(subject));
}

void TargetSubjectSet::AddUser(std::string_view user_id) {
  named_ = true;
  subjects_.push_back(UserSubject(nsp_, user_id));
}

std::vector<std::string> TargetSubjectSet::Take() && {
  if (!named_) subjects_.push_back(NamespaceSubject(nsp_));
  std::sort(subjects_.begin(), subjects_.end());
  subjects_.erase(std::unique(subjects_.begin(), subjects_.end()), subjects_.end());
  return std::move(subjects_);
}

}  // namespace switchboard::bus
