#include "edge/engineio/websocket_frame.h"

#include <gtest/gtest.h>

#include <string>

namespace switchboard::eio::ws {
namespace {

// A masked client frame as a browser would send it.
std::string ClientFrameBytes(uint8_t first_byte, std::string_view payload,
                             const uint8_t key[4] = nullptr) {
  static const uint8_t kKey[4] = {0x37, 0xfa, 0x21, 0x3d};
  if (key == nullptr) key = kKey;
  std::string out;
  out.push_back(static_cast<char>(first_byte));
  if (payload.size() < 126) {
    out.push_back(static_cast<char>(0x80 | payload.size()));
  } else if (payload.size() <= 0xFFFF) {
    out.push_back(static_cast<char>(0x80 | 126));
    out.push_back(static_cast<char>(payload.size() >> 8));
    out.push_back(static_cast<char>(payload.size() & 0xFF));
  } else {
    out.push_back(static_cast<char>(0x80 | 127));
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>(payload.size() >> (8 * i)));
  }
  out.append(reinterpret_cast<const char*>(key), 4);
  for (size_t i = 0; i < payload.size(); ++i)
    out.push_back(static_cast<char>(payload[i] ^ key[i % 4]));
  return out;
}

TEST(WebSocketFrameTest, ServerHeaderUsesTheShortestLengthForm) {
  uint8_t header[kMaxServerHeader];
  EXPECT_EQ(EncodeServerHeader(kText, 125, header), 2u);
  EXPECT_EQ(header[0], 0x81);
  EXPECT_EQ(header[1], 125);
  EXPECT_EQ(EncodeServerHeader(kBinary, 126, header), 4u);
  EXPECT_EQ(header[0], 0x82);
  EXPECT_EQ(header[1], 126);
  EXPECT_EQ(header[2], 0);
  EXPECT_EQ(header[3], 126);
  EXPECT_EQ(EncodeServerHeader(kText, 65536, header), 10u);
  EXPECT_EQ(header[1], 127);
  EXPECT_EQ(header[7], 1);  // 0x00000000'00010000, big-endian
  EXPECT_EQ(header[9], 0);
  EXPECT_EQ(ServerHeaderSize(125), 2u);
  EXPECT_EQ(ServerHeaderSize(0xFFFF), 4u);
  EXPECT_EQ(ServerHeaderSize(0x10000), 10u);
}

TEST(WebSocketFrameTest, ParsesAndUnmasksEveryLengthForm) {
  for (size_t size : {0u, 1u, 7u, 8u, 9u, 125u, 126u, 1000u, 65535u, 65536u, 70000u}) {
    std::string payload(size, 'x');
    for (size_t i = 0; i < size; ++i) payload[i] = static_cast<char>('a' + i % 26);
    std::string bytes = ClientFrameBytes(0x81, payload);
    ClientFrame frame;
    size_t used = 0;
    ASSERT_EQ(ParseClientFrame(bytes.data(), bytes.size(), 1 << 20, &frame, &used),
              ParseStatus::kFrame)
        << size;
    EXPECT_EQ(used, bytes.size());
    EXPECT_TRUE(frame.fin);
    EXPECT_EQ(frame.opcode, kText);
    EXPECT_EQ(frame.payload, payload) << size;
  }
}

TEST(WebSocketFrameTest, EveryShorterPrefixIsIncomplete) {
  std::string bytes = ClientFrameBytes(0x82, std::string(300, 'b'));
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    std::string prefix = bytes.substr(0, cut);
    ClientFrame frame;
    size_t used = 0;
    EXPECT_EQ(ParseClientFrame(prefix.data(), prefix.size(), 1 << 20, &frame, &used),
              ParseStatus::kIncomplete)
        << cut;
  }
}

TEST(WebSocketFrameTest, TwoFramesInOneBufferParseOneAtATime) {
  std::string bytes = ClientFrameBytes(0x01, "hel") + ClientFrameBytes(0x80, "lo");
  ClientFrame frame;
  size_t used = 0;
  ASSERT_EQ(ParseClientFrame(bytes.data(), bytes.size(), 100, &frame, &used), ParseStatus::kFrame);
  EXPECT_FALSE(frame.fin);
  EXPECT_EQ(frame.opcode, kText);
  EXPECT_EQ(frame.payload, "hel");
  size_t first = used;
  ASSERT_EQ(ParseClientFrame(bytes.data() + first, bytes.size() - first, 100, &frame, &used),
            ParseStatus::kFrame);
  EXPECT_TRUE(frame.fin);
  EXPECT_EQ(frame.opcode, kContinuation);
  EXPECT_EQ(frame.payload, "lo");
}

TEST(WebSocketFrameTest, RefusesWhatAClientMustNotSend) {
  ClientFrame frame;
  size_t used = 0;
  auto parse = [&](std::string bytes) {
    return ParseClientFrame(bytes.data(), bytes.size(), 1000, &frame, &used);
  };
  std::string unmasked = "\x81\x02hi";
  EXPECT_EQ(parse(unmasked), ParseStatus::kProtocol);
  EXPECT_EQ(parse(ClientFrameBytes(0xC1, "rsv1")), ParseStatus::kProtocol);
  EXPECT_EQ(parse(ClientFrameBytes(0x83, "op3")), ParseStatus::kProtocol);
  EXPECT_EQ(parse(ClientFrameBytes(0x09, "fragmented ping")), ParseStatus::kProtocol);
  EXPECT_EQ(parse(ClientFrameBytes(0x89, std::string(126, 'p'))), ParseStatus::kProtocol);
  // 16-bit length form for a 5-byte payload: not minimal.
  std::string padded = "\x81\xFE";
  padded += std::string("\x00\x05", 2) + "abcd" + "hello";
  EXPECT_EQ(parse(padded), ParseStatus::kProtocol);
}

TEST(WebSocketFrameTest, TooBigIsKnownFromTheHeaderAlone) {
  std::string bytes = ClientFrameBytes(0x82, std::string(2000, 'z')).substr(0, 4);
  ClientFrame frame;
  size_t used = 0;
  EXPECT_EQ(ParseClientFrame(bytes.data(), bytes.size(), 1999, &frame, &used),
            ParseStatus::kTooBig);
}

TEST(WebSocketFrameTest, Utf8) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii that is longer than eight bytes"));
  EXPECT_TRUE(IsValidUtf8("h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80 done"));
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(IsValidUtf8("abc\xE2\x82"));       // cut short
  EXPECT_FALSE(IsValidUtf8("abcdefgh\xFF"));      // not a lead byte
  EXPECT_FALSE(IsValidUtf8("\xE2\x28\xA1"));      // bad continuation
}

}  // namespace
}  // namespace switchboard::eio::ws
