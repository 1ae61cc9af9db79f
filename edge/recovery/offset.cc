#include "edge/recovery/offset.h"

#include <charconv>
#include <memory>
#include <string>

namespace switchboard::recovery {

bool IsRecoverable(const std::vector<eio::Frame>& frames) {
  if (frames.empty() || frames.front().binary) return false;
  // "4" (Engine.IO message) + type ('2' EVENT, '5' BINARY_EVENT) [+ "N-"]
  // [+ "/nsp,"] + "[...]": no ack id digits before the array.
  const std::string& text = *frames.front().bytes;
  if (text.size() < 4 || text[0] != '4' || (text[1] != '2' && text[1] != '5')) return false;
  size_t i = 2;
  if (text[1] == '5') {
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
    if (i == 2 || i >= text.size() || text[i] != '-') return false;
    ++i;
  }
  if (i < text.size() && text[i] == '/') {
    size_t comma = text.find(',', i);
    if (comma == std::string::npos) return false;
    i = comma + 1;
  }
  return i < text.size() && text[i] == '[' && text.back() == ']';
}

std::optional<std::vector<eio::Frame>> WithOffset(const std::vector<eio::Frame>& frames,
                                                  uint64_t offset) {
  if (!IsRecoverable(frames)) return std::nullopt;
  const std::string& text = *frames.front().bytes;
  std::string with;
  with.reserve(text.size() + 24);
  with.append(text, 0, text.size() - 1);
  with.append(",\"");
  with.append(std::to_string(offset));
  with.append("\"]");
  std::vector<eio::Frame> out = frames;
  out.front().bytes = std::make_shared<const std::string>(std::move(with));
  return out;
}

std::optional<uint64_t> ParseOffset(std::string_view text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace switchboard::recovery
