#include "edge/socketio/decoder.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "edge/json_depth.h"
#include "edge/socketio/event_scan.h"

namespace switchboard::sio {
namespace {

// uint64_t holds every 19-digit number; 20 digits may overflow.
constexpr size_t kMaxAckIdDigits = 19;

absl::Status Invalid(const char* why) {
  return absl::InvalidArgumentError(absl::StrCat("sio: ", why));
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// As the reference parser: the name is a string that is not reserved, or a
// number (`socket.emit(1, ...)` in the official client).
bool IsValidEventArray(const Json& data) {
  if (!data.is_array() || data.empty()) return false;
  const Json& name = data.front();
  if (name.is_number()) return true;
  if (!name.is_string()) return false;
  return !IsReservedEventName(name.get_ref<const std::string&>());
}

// Payload rules of the reference parser; CONNECT may omit its payload,
// every other type that takes one requires it.
bool IsPayloadValid(PacketType type, const std::optional<Json>& data) {
  switch (type) {
    case PacketType::kConnect:
      return !data.has_value() || data->is_object();
    case PacketType::kDisconnect:
      return !data.has_value();
    case PacketType::kConnectError:
      return data.has_value() && (data->is_object() || data->is_string());
    case PacketType::kEvent:
    case PacketType::kBinaryEvent:
      return data.has_value() && IsValidEventArray(*data);
    case PacketType::kAck:
    case PacketType::kBinaryAck:
      return data.has_value() && data->is_array();
  }
  return false;
}

// Collects placeholder objects in `j`; fails on one that names no received
// attachment. Depth is bounded by the pre-parse scan.
absl::Status CollectPlaceholders(Json& j, size_t attachments,
                                 std::vector<std::pair<Json*, size_t>>& out) {
  if (j.is_array()) {
    for (Json& child : j.get_ref<Json::array_t&>()) {
      if (absl::Status s = CollectPlaceholders(child, attachments, out);
          !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  }
  if (!j.is_object()) return absl::OkStatus();

  auto& object = j.get_ref<Json::object_t&>();
  const auto marker = object.find("_placeholder");
  if (marker != object.end() && marker->second.is_boolean() &&
      marker->second.get<bool>()) {
    const auto num = object.find("num");
    if (num == object.end() || !num->second.is_number_integer()) {
      return Invalid("placeholder without an integer num");
    }
    // Parsed non-negative integers are stored unsigned; negative ones are
    // is_number_integer() but not unsigned.
    if (!num->second.is_number_unsigned() ||
        num->second.get<uint64_t>() >= attachments) {
      return Invalid("placeholder num out of range");
    }
    out.emplace_back(&j, static_cast<size_t>(num->second.get<uint64_t>()));
    return absl::OkStatus();
  }
  for (auto& [key, child] : object) {
    if (absl::Status s = CollectPlaceholders(child, attachments, out);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

// The part before the payload: type, attachment count, namespace, ack id.
// `*next` is left at the payload's first character.
absl::Status DecodeHeader(std::string_view text, const DecoderLimits& limits, Packet& packet,
                          size_t* next, size_t* attachments, LimitBreach* breach) {
  *attachments = 0;
  if (breach != nullptr) *breach = LimitBreach::kNone;
  if (text.empty()) return Invalid("empty packet");
  if (text[0] < '0' || text[0] > '6') return Invalid("unknown packet type");

  packet.type = static_cast<PacketType>(text[0] - '0');
  size_t i = 1;

  if (packet.type == PacketType::kBinaryEvent ||
      packet.type == PacketType::kBinaryAck) {
    const size_t start = i;
    size_t count = 0;
    for (; i < text.size() && IsDigit(text[i]); ++i) {
      count = count * 10 + static_cast<size_t>(text[i] - '0');
      // Checked per digit so a long digit run cannot overflow.
      if (count > limits.max_attachments) {
        if (breach != nullptr) *breach = LimitBreach::kAttachments;
        return Invalid("too many attachments");
      }
    }
    if (i == start || i == text.size() || text[i] != '-') {
      return Invalid("illegal attachments");
    }
    ++i;  // '-'
    *attachments = count;
  }

  // Namespace: from '/' up to ',' or the end of the string.
  if (i < text.size() && text[i] == '/') {
    const size_t comma = text.find(',', i);
    if (comma == std::string_view::npos) {
      packet.nsp.assign(text.substr(i));
      i = text.size();
    } else {
      packet.nsp.assign(text.substr(i, comma - i));
      i = comma + 1;
    }
  }

  if (i < text.size() && IsDigit(text[i])) {
    const size_t start = i;
    uint64_t id = 0;
    for (; i < text.size() && IsDigit(text[i]); ++i) {
      if (i - start == kMaxAckIdDigits) return Invalid("ack id too long");
      id = id * 10 + static_cast<uint64_t>(text[i] - '0');
    }
    packet.id = id;
  }

  *next = i;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Packet> DecodeText(std::string_view text, const DecoderLimits& limits,
                                  size_t* attachments) {
  return DecodeText(text, limits, attachments, nullptr);
}

absl::StatusOr<Packet> DecodeText(std::string_view text, const DecoderLimits& limits,
                                  size_t* attachments, LimitBreach* breach) {
  Packet packet;
  size_t i = 0;
  if (absl::Status s = DecodeHeader(text, limits, packet, &i, attachments, breach); !s.ok()) {
    return s;
  }

  if (i < text.size()) {
    const std::string_view json = text.substr(i);
    if (edge::ExceedsJsonDepth(json, limits.max_json_depth)) {
      if (breach != nullptr) *breach = LimitBreach::kJsonDepth;
      return Invalid("payload nested too deeply");
    }
    Json parsed = Json::parse(json.data(), json.data() + json.size(),
                              /*cb=*/nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded()) return Invalid("payload is not valid JSON");
    packet.data.emplace(std::move(parsed));
  }

  if (!IsPayloadValid(packet.type, packet.data)) {
    return Invalid("invalid payload for packet type");
  }
  return packet;
}

namespace {

uint32_t Narrow(size_t limit) {
  return static_cast<uint32_t>(std::min<size_t>(limit, std::numeric_limits<uint32_t>::max()));
}

}  // namespace

Decoder::Decoder(DecoderLimits limits)
    : max_attachment_bytes_(limits.max_attachment_bytes),
      max_attachments_(Narrow(limits.max_attachments)),
      max_json_depth_(Narrow(limits.max_json_depth)) {}

void Decoder::Reset() { binary_.reset(); }

absl::StatusOr<std::optional<Packet>> Decoder::Feed(std::string_view data,
                                                    bool binary) {
  breach_ = LimitBreach::kNone;
  if (binary) {
    if (!binary_) {
      Reset();
      return Invalid("binary data while no attachment is expected");
    }
    binary_->attachment_bytes += data.size();
    if (max_attachment_bytes_ > 0 && binary_->attachment_bytes > max_attachment_bytes_) {
      Reset();
      breach_ = LimitBreach::kAttachmentBytes;
      return Invalid("attachments too large");
    }
    binary_->attachments.emplace_back(data.begin(), data.end());
    if (binary_->attachments.size() < binary_->expected) return std::nullopt;
    return std::optional<Packet>(Finish());
  }

  if (binary_) {
    Reset();
    return Invalid("text packet while attachments are pending");
  }

  size_t attachments = 0;
  absl::StatusOr<Packet> packet = DecodeText(data, limits(), &attachments, &breach_);
  if (!packet.ok()) return packet.status();
  if (packet->type != PacketType::kBinaryEvent &&
      packet->type != PacketType::kBinaryAck) {
    return std::optional<Packet>(*std::move(packet));
  }

  // Placeholders are checked now rather than when the last attachment
  // arrives, so a bad header fails before its attachments are buffered.
  binary_ = std::make_unique<BinaryInProgress>();
  binary_->packet = *std::move(packet);
  binary_->expected = attachments;
  if (absl::Status s = CollectPlaceholders(*binary_->packet.data, binary_->expected,
                                           binary_->placeholders);
      !s.ok()) {
    Reset();
    return s;
  }
  if (binary_->expected == 0) return std::optional<Packet>(Finish());
  binary_->attachments.reserve(binary_->expected);
  return std::nullopt;
}

absl::StatusOr<std::optional<Packet>> Decoder::FeedLazy(std::string&& data, bool binary) {
  // Only a plain EVENT ('2') with a payload; the rest takes the full path.
  if (binary || binary_ || data.empty() || data[0] != '2') {
    return Feed(data, binary);
  }
  breach_ = LimitBreach::kNone;
  Packet packet;
  size_t i = 0;
  size_t attachments = 0;
  if (!DecodeHeader(data, limits(), packet, &i, &attachments, nullptr).ok() || i == data.size()) {
    return Feed(data, binary);
  }
  const std::optional<EventSpans> spans =
      ScanEventPayload(std::string_view(data).substr(i), max_json_depth_);
  if (!spans.has_value()) return Feed(data, binary);
  RawEvent& raw = packet.raw.emplace();
  raw.json_begin = i;
  raw.name_begin = i + spans->name_begin;
  raw.name_end = i + spans->name_end;
  raw.args_begin = i + spans->args_begin;
  raw.args_end = i + spans->args_end;
  raw.first_end = i + spans->first_end;
  raw.text = std::move(data);
  return std::optional<Packet>(std::move(packet));
}

Packet Decoder::Finish() {
  // An attachment named by several placeholders is copied for all but its
  // last use, which takes the buffer.
  BinaryInProgress& b = *binary_;
  std::vector<uint32_t> remaining(b.attachments.size(), 0);
  for (const auto& [node, num] : b.placeholders) ++remaining[num];
  for (const auto& [node, num] : b.placeholders) {
    if (--remaining[num] == 0) {
      *node = Json::binary(std::move(b.attachments[num]));
    } else {
      *node = Json::binary(b.attachments[num]);
    }
  }

  Packet packet = std::move(b.packet);
  packet.type = packet.type == PacketType::kBinaryEvent ? PacketType::kEvent
                                                        : PacketType::kAck;
  Reset();
  return packet;
}

}  // namespace switchboard::sio
