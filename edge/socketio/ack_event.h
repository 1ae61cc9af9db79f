#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "edge/socketio/packet.h"

namespace switchboard::sio {

// An EVENT packet encoded once for many recipients that each get it with an
// ack id of their own. The id sits between the namespace and the data, so
// the recipients' packets differ only there: each is the two encoded halves
// around its id, and the attachments are shared.
class AckEvent {
 public:
  // `event`: an EVENT packet without an id (MakeEvent).
  explicit AckEvent(const Packet& event);

  // Encode() of the event with ack id `id`.
  std::vector<eio::Frame> Frames(uint64_t id) const;

 private:
  std::string head_;  // "4", the type, the attachment count, the namespace
  std::string tail_;  // the data
  std::vector<eio::Frame> attachments_;
};

}  // namespace switchboard::sio
