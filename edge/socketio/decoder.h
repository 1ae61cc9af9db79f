#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "edge/socketio/limits.h"
#include "edge/socketio/packet.h"

namespace switchboard::sio {

// Which limit a packet broke (Decoder::breach()).
enum class LimitBreach { kNone, kJsonDepth, kAttachments, kAttachmentBytes };

// Decodes the text form of one socket.io packet (the Engine.IO message data,
// without its '4'). Validates the payload against the type like the
// reference parser. Binary types keep kBinaryEvent/kBinaryAck here, with
// placeholders still in `data`; `attachments` receives the announced count.
absl::StatusOr<Packet> DecodeText(std::string_view text,
                                  const DecoderLimits& limits,
                                  size_t* attachments);
// The same; `breach` (when not null) tells which limit failed it, if any.
absl::StatusOr<Packet> DecodeText(std::string_view text,
                                  const DecoderLimits& limits,
                                  size_t* attachments, LimitBreach* breach);

// Stateful: reconstructs binary packets from the text header and the
// following binary messages.
//
// Like the reference parser, a reconstructed BINARY_EVENT/BINARY_ACK is
// returned as kEvent/kAck with Json::binary_t nodes in place of the
// placeholders, so handlers see one type whatever the transport framing;
// Encode picks the binary type again from the content.
class Decoder {
 public:
  explicit Decoder(DecoderLimits limits = {});

  // Feeds one Engine.IO message payload (the data after the '4', or raw
  // bytes when binary). Returns a complete packet, std::nullopt while
  // waiting for attachments, or InvalidArgument for malformed input (the
  // caller then closes the connection; the decoder is reset). A binary
  // message when no attachment is expected is an error; a text message while
  // attachments are pending is an error.
  absl::StatusOr<std::optional<Packet>> Feed(std::string_view data,
                                             bool binary);
  // Feed, taking the message's bytes: a plain EVENT packet whose payload
  // ScanEventPayload vouches for keeps it as text (Packet::raw, no data)
  // instead of being parsed. Anything else goes through Feed, so results and
  // errors are Feed's.
  absl::StatusOr<std::optional<Packet>> FeedLazy(std::string&& data, bool binary);

  // Drops any partially received binary packet.
  void Reset();

  // True while a binary packet waits for attachments.
  bool pending() const { return binary_ != nullptr; }

  // The limit the last failed Feed broke (kNone for other malformed input).
  LimitBreach breach() const { return breach_; }

 private:
  // Replaces the collected placeholders with the received attachments and
  // returns the finished packet.
  Packet Finish();

  DecoderLimits limits() const {
    return DecoderLimits{max_attachments_, max_json_depth_, max_attachment_bytes_};
  }

  // The limits, narrowed (a decoder per connection; counts past 2^32 are
  // out of reach of any message anyway).
  size_t max_attachment_bytes_;
  uint32_t max_attachments_;
  uint32_t max_json_depth_;
  LimitBreach breach_ = LimitBreach::kNone;
  // A binary packet waiting for its attachments. Allocated only then: every
  // connection has a decoder, few are ever in the middle of a binary packet.
  struct BinaryInProgress {
    Packet packet;
    size_t expected = 0;
    std::vector<std::vector<uint8_t>> attachments;
    size_t attachment_bytes = 0;
    // Placeholder nodes inside packet.data and the attachment each names.
    // The nodes live in heap storage owned by the packet, which stays put
    // until Finish().
    std::vector<std::pair<Json*, size_t>> placeholders;
  };
  std::unique_ptr<BinaryInProgress> binary_;
};

}  // namespace switchboard::sio
