#include "broker/convert.h"

#include <algorithm>

#include "proto/convert.h"

namespace switchboard::broker {

SocketInfo FromProto(const v1::SocketInfo& in) {
  SocketInfo out;
  out.id = in.id();
  out.edge_id = in.edge_id();
  out.nsp = in.namespace_();
  out.user_id = in.user_id();
  out.transport = proto::TransportName(in.transport());
  out.remote_address = in.remote_address();
  out.claims = in.claims();
  out.connected_at = proto::FromTimestamp(in.connected_at());
  out.rooms.assign(in.rooms().begin(), in.rooms().end());
  return out;
}

void ToProto(const SocketInfo& in, v1::SocketInfo* out) {
  out->set_id(in.id);
  out->set_edge_id(in.edge_id);
  out->set_user_id(in.user_id);
  out->set_namespace_(in.nsp);
  for (const std::string& room : in.rooms) out->add_rooms(room);  // sorted by the index
  out->set_transport(proto::TransportFromName(in.transport));
  out->set_remote_address(in.remote_address);
  out->set_claims(in.claims);
  proto::ToTimestamp(in.connected_at, out->mutable_connected_at());
}

Event ToIndexEvent(const v1::MembershipEvent& event) {
  switch (event.change_case()) {
    case v1::MembershipEvent::kConnected: return Connected{FromProto(event.connected().socket())};
    case v1::MembershipEvent::kDisconnected: return Disconnected{event.disconnected().socket_id()};
    case v1::MembershipEvent::kJoined:
      return Joined{event.joined().socket_id(), event.joined().room()};
    case v1::MembershipEvent::kLeft: return Left{event.left().socket_id(), event.left().room()};
    case v1::MembershipEvent::kTransportChanged:
      return TransportChanged{event.transport_changed().socket_id(),
                              proto::TransportName(event.transport_changed().transport())};
    case v1::MembershipEvent::kMovedIn:
      return MovedIn{FromProto(event.moved_in().socket()), event.moved_in().from_edge()};
    case v1::MembershipEvent::kMovedOut:
      return MovedOut{event.moved_out().socket_id(), event.moved_out().to_edge()};
    default:
      // No socket has the empty id.
      return Disconnected{};
  }
}

Selector IndexSelector(const std::string& nsp, const Names& rooms, const Names& socket_ids,
                       const Names& user_ids) {
  Selector selector;
  selector.nsp = nsp;
  selector.rooms.assign(rooms.begin(), rooms.end());
  selector.socket_ids.assign(socket_ids.begin(), socket_ids.end());
  selector.user_ids.assign(user_ids.begin(), user_ids.end());
  return selector;
}

int PageSize(uint32_t requested) {
  // Only keep the value in int range.
  return static_cast<int>(std::min<uint32_t>(requested, kMaxPageSize + 1));
}

}  // namespace switchboard::broker
