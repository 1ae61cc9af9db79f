#include "cluster/delivery_codec.h"

#include <memory>
#include <string>
#include <utility>

#include "cluster/arguments.h"
#include "edge/socketio/packet.h"

namespace switchboard::cluster {

sio::BroadcastTarget ToBroadcastTarget(const v1::Target& target) {
  sio::BroadcastTarget out;
  out.rooms.assign(target.rooms().begin(), target.rooms().end());
  out.rooms.insert(out.rooms.end(), target.socket_ids().begin(), target.socket_ids().end());
  out.user_ids.assign(target.user_ids().begin(), target.user_ids().end());
  out.except_rooms.assign(target.except_rooms().begin(), target.except_rooms().end());
  out.except_rooms.insert(out.except_rooms.end(), target.except_socket_ids().begin(),
                          target.except_socket_ids().end());
  return out;
}

absl::StatusOr<std::vector<eio::Frame>> DeliveryFrames(const v1::Delivery& delivery,
                                                       std::string_view nsp) {
  std::vector<eio::Frame> frames;
  if (delivery.frames_size() > 0) {  // relayed by an edge: already encoded
    frames.reserve(delivery.frames_size());
    for (int i = 0; i < delivery.frames_size(); ++i) {
      frames.push_back(eio::Frame{std::make_shared<const std::string>(delivery.frames(i)), i > 0});
    }
    return frames;
  }
  absl::StatusOr<sio::Json> args = ArgumentsToJson(delivery.args());
  if (!args.ok()) return args.status();
  return sio::Encode(sio::MakeEvent(nsp, delivery.event(), *args));
}

}  // namespace switchboard::cluster
