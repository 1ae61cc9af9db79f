#include "edge/socketio/ack.h"

#include <string>

#include "edge/socketio/namespace.h"
#include "edge/socketio/socket.h"

namespace switchboard::sio {

void Ack::operator()(Json args) const {
  if (fn_) return fn_(std::move(args));
  if (!to_client_) return;
  auto socket = socket_.lock();
  if (!socket || sent_) return;
  sent_ = true;
  if (!args.is_array()) args = Json::array({std::move(args)});
  socket->SendPacket(Packet{PacketType::kAck, socket->nsp().name(), id_, std::move(args)});
}

void Ack::AnswerText(std::string_view args_list) const {
  if (fn_) {
    std::string text;
    text.reserve(args_list.size() + 2);
    text.push_back('[');
    text.append(args_list);
    text.push_back(']');
    Json args = Json::parse(text, /*cb=*/nullptr, /*allow_exceptions=*/false);
    return fn_(args.is_discarded() ? Json::array() : std::move(args));
  }
  if (!to_client_) return;
  auto socket = socket_.lock();
  if (!socket || sent_) return;
  sent_ = true;
  socket->SendAckText(id_, args_list);
}

}  // namespace switchboard::sio
