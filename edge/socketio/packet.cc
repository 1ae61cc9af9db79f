#include "edge/socketio/packet.h"

#include <charconv>
#include <memory>
#include <utility>

namespace switchboard::sio {
namespace {

// Collects binary nodes in the same depth-first order JsonWriter emits
// placeholders in, so placeholder N names out[N].
void CollectBinaries(const Json& j, std::vector<const Json::binary_t*>& out) {
  switch (j.type()) {
    case Json::value_t::binary:
      out.push_back(&j.get_binary());
      break;
    case Json::value_t::array:
      for (const Json& child : j.get_ref<const Json::array_t&>()) {
        CollectBinaries(child, out);
      }
      break;
    case Json::value_t::object:
      for (const auto& [key, child] : j.get_ref<const Json::object_t&>()) {
        CollectBinaries(child, out);
      }
      break;
    default:
      break;
  }
}

bool KeyNeedsEscaping(std::string_view key) {
  for (char c : key) {
    const auto u = static_cast<unsigned char>(c);
    // Non-ASCII is left to nlohmann so invalid UTF-8 gets the same
    // replacement as in values.
    if (u < 0x20 || u >= 0x80 || c == '"' || c == '\\') return true;
  }
  return false;
}

// Per-thread scratch buffer and serializer. The text frame is written here
// first so the final string can be allocated once at its exact size; the
// scratch keeps its capacity across calls.
struct EncodeScratch {
  std::string buffer;
  nlohmann::detail::serializer<Json> serializer{
      std::make_shared<nlohmann::detail::output_string_adapter<char>>(buffer),
      ' ', Json::error_handler_t::replace};

  // Keeps one huge message from pinning memory for the thread's lifetime.
  static constexpr size_t kMaxRetainedCapacity = size_t{1} << 20;
};

// Writes compact JSON, substituting placeholders for binary nodes. Scalars
// and keys that need escaping go through nlohmann's serializer (appending to
// the same buffer) so output is byte-identical to dump().
class JsonWriter {
 public:
  explicit JsonWriter(EncodeScratch& scratch) : scratch_(scratch) {}

  void Write(const Json& j) {
    std::string& out = scratch_.buffer;
    switch (j.type()) {
      case Json::value_t::binary:
        out.append(R"({"_placeholder":true,"num":)");
        AppendNumber(out, next_num_++);
        out.push_back('}');
        break;
      case Json::value_t::array: {
        out.push_back('[');
        bool first = true;
        for (const Json& child : j.get_ref<const Json::array_t&>()) {
          if (!first) out.push_back(',');
          first = false;
          Write(child);
        }
        out.push_back(']');
        break;
      }
      case Json::value_t::object: {
        out.push_back('{');
        bool first = true;
        for (const auto& [key, child] : j.get_ref<const Json::object_t&>()) {
          if (!first) out.push_back(',');
          first = false;
          WriteKey(key);
          out.push_back(':');
          Write(child);
        }
        out.push_back('}');
        break;
      }
      default:
        scratch_.serializer.dump(j, /*pretty_print=*/false,
                                 /*ensure_ascii=*/false, /*indent_step=*/0);
        break;
    }
  }

  static void AppendNumber(std::string& out, uint64_t n) {
    char buf[20];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), n);
    out.append(buf, end);
  }

 private:
  void WriteKey(const std::string& key) {
    std::string& out = scratch_.buffer;
    if (!KeyNeedsEscaping(key)) {
      out.push_back('"');
      out.append(key);
      out.push_back('"');
      return;
    }
    scratch_.serializer.dump(Json(key), false, false, 0);
  }

  EncodeScratch& scratch_;
  uint64_t next_num_ = 0;
};

bool IsEventOrAck(PacketType type) {
  return type == PacketType::kEvent || type == PacketType::kAck ||
         type == PacketType::kBinaryEvent || type == PacketType::kBinaryAck;
}

bool IsEvent(PacketType type) {
  return type == PacketType::kEvent || type == PacketType::kBinaryEvent;
}

}  // namespace

bool HasBinary(const Json& j) {
  switch (j.type()) {
    case Json::value_t::binary:
      return true;
    case Json::value_t::array:
      for (const Json& child : j.get_ref<const Json::array_t&>()) {
        if (HasBinary(child)) return true;
      }
      return false;
    case Json::value_t::object:
      for (const auto& [key, child] : j.get_ref<const Json::object_t&>()) {
        if (HasBinary(child)) return true;
      }
      return false;
    default:
      return false;
  }
}

std::vector<eio::Frame> Encode(const Packet& packet) {
  const bool has_data = packet.data.has_value() && !packet.data->is_null() &&
                        !packet.data->is_discarded();

  // Only EVENT/ACK carry attachments, as in the reference encoder.
  std::vector<const Json::binary_t*> binaries;
  if (has_data && IsEventOrAck(packet.type)) {
    CollectBinaries(*packet.data, binaries);
  }

  PacketType type = packet.type;
  if (IsEventOrAck(type)) {
    if (binaries.empty()) {
      type = IsEvent(type) ? PacketType::kEvent : PacketType::kAck;
    } else {
      type = IsEvent(type) ? PacketType::kBinaryEvent : PacketType::kBinaryAck;
    }
  }

  thread_local EncodeScratch scratch;
  std::string& out = scratch.buffer;
  out.clear();
  out.push_back(static_cast<char>(eio::PacketType::kMessage));
  out.push_back(static_cast<char>('0' + static_cast<int>(type)));
  if (!binaries.empty()) {
    JsonWriter::AppendNumber(out, binaries.size());
    out.push_back('-');
  }
  if (!packet.nsp.empty() && packet.nsp != "/") {
    out.append(packet.nsp);
    out.push_back(',');
  }
  if (packet.id.has_value()) JsonWriter::AppendNumber(out, *packet.id);
  if (has_data) {
    if (binaries.empty()) {
      scratch.serializer.dump(*packet.data, false, false, 0);
    } else {
      JsonWriter(scratch).Write(*packet.data);
    }
  }

  std::vector<eio::Frame> frames;
  frames.reserve(1 + binaries.size());
  // Exact-size copy out of the scratch: one allocation for the text frame.
  frames.push_back(eio::Frame{std::make_shared<const std::string>(out),
                              /*binary=*/false});
  for (const Json::binary_t* bin : binaries) {
    frames.push_back(eio::MakeBinaryFrame(std::string_view(
        reinterpret_cast<const char*>(bin->data()), bin->size())));
  }

  if (out.capacity() > EncodeScratch::kMaxRetainedCapacity) {
    std::string().swap(out);
  }
  return frames;
}

Packet MakeEvent(std::string_view nsp, std::string_view event, Json args,
                 std::optional<uint64_t> ack_id) {
  Packet packet;
  packet.type = PacketType::kEvent;
  packet.nsp.assign(nsp);
  packet.id = ack_id;
  if (!args.is_array()) {
    Json single = std::move(args);
    args = Json::array();
    args.get_ref<Json::array_t&>().reserve(2);
    args.push_back(std::move(single));
  }
  auto& items = args.get_ref<Json::array_t&>();
  items.insert(items.begin(), Json(std::string(event)));
  packet.data.emplace(std::move(args));
  return packet;
}

}  // namespace switchboard::sio
