#include "edge/socketio/ack_event.h"

#include <charconv>
#include <memory>

namespace switchboard::sio {

AckEvent::AckEvent(const Packet& event) {
  std::vector<eio::Frame> frames = Encode(event);
  const std::string& text = *frames.front().bytes;
  // "4" + type, then "<attachments>-" for a binary event, then "<nsp>,"
  // unless the namespace is "/" (Encode's layout): the id comes next.
  size_t at = 2;
  if (text.size() > 1 &&
      text[1] == static_cast<char>('0' + static_cast<int>(PacketType::kBinaryEvent))) {
    at = text.find('-', at) + 1;
  }
  if (!event.nsp.empty() && event.nsp != "/") at += event.nsp.size() + 1;
  head_ = text.substr(0, at);
  tail_ = text.substr(at);
  attachments_.assign(frames.begin() + 1, frames.end());
}

std::vector<eio::Frame> AckEvent::Frames(uint64_t id) const {
  char digits[20];
  const auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), id);
  auto text = std::make_shared<std::string>();
  text->reserve(head_.size() + static_cast<size_t>(end - digits) + tail_.size());
  text->append(head_);
  text->append(digits, end);
  text->append(tail_);
  std::vector<eio::Frame> frames;
  frames.reserve(1 + attachments_.size());
  frames.push_back(eio::Frame{std::move(text), /*binary=*/false});
  frames.insert(frames.end(), attachments_.begin(), attachments_.end());
  return frames;
}

}  // namespace switchboard::sio
