#include "cluster/moved_socket_proto.h"

#include <string>
#include <string_view>

namespace switchboard::cluster {
namespace {

std::string JsonText(const sio::Json& json) { return json.is_null() ? std::string() : json.dump(); }

}  // namespace

sio::Json ParseJson(std::string_view text) {
  if (text.empty()) return nullptr;
  return sio::Json::parse(text, nullptr, /*allow_exceptions=*/false);
}

void ToProto(const sio::MovedSocketState& state, v1::MovedSocket* out) {
  out->set_namespace_(state.nsp);
  out->set_socket_id(state.id);
  out->set_user_id(state.user_id);
  out->set_claims_json(JsonText(state.claims));
  out->set_data_json(JsonText(state.data));
  out->set_auth_json(JsonText(state.auth));
  for (const auto& room : state.rooms) out->add_rooms(room);
  out->set_in_own_room(state.in_own_room);
  out->set_next_ack_id(state.next_ack_id);
  out->set_pid(state.pid);
  out->set_start_offset(state.start_offset);
  out->set_log_offset(state.log_offset);
}

sio::MovedSocketState FromProto(const v1::MovedSocket& in) {
  sio::MovedSocketState state;
  state.nsp = in.namespace_();
  state.id = in.socket_id();
  state.user_id = in.user_id();
  state.claims = ParseJson(in.claims_json());
  state.data = ParseJson(in.data_json());
  state.auth = ParseJson(in.auth_json());
  state.rooms.assign(in.rooms().begin(), in.rooms().end());
  state.in_own_room = in.in_own_room();
  state.next_ack_id = in.next_ack_id();
  state.pid = in.pid();
  state.start_offset = in.start_offset();
  state.log_offset = in.log_offset();
  return state;
}

}  // namespace switchboard::cluster
