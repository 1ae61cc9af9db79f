#include "edge/engineio/packet.h"

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "edge/engineio/base64.h"
#include "gtest/gtest.h"

namespace switchboard::eio {
namespace {

using ::std::string_literals::operator""s;
using ::std::string_view_literals::operator""sv;

// ---------------------------------------------------------------- base64 --

TEST(Base64Test, Rfc4648Vectors) {
  const std::pair<std::string_view, std::string_view> kVectors[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, encoded] : kVectors) {
    EXPECT_EQ(Base64Encode(plain), encoded);
    absl::StatusOr<std::string> decoded = Base64Decode(encoded);
    ASSERT_TRUE(decoded.ok()) << encoded;
    EXPECT_EQ(*decoded, plain);
  }
}

TEST(Base64Test, SpecExample) {
  EXPECT_EQ(Base64Encode("\x01\x02\x03\x04"), "AQIDBA==");
  EXPECT_EQ(*Base64Decode("AQIDBA=="), "\x01\x02\x03\x04");
}

TEST(Base64Test, AllBytesAndLengthsRoundTrip) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  EXPECT_EQ(Base64Encode(all).size(), Base64EncodedSize(all.size()));
  for (size_t len = 0; len <= all.size(); ++len) {
    const std::string_view in(all.data(), len);
    absl::StatusOr<std::string> out = Base64Decode(Base64Encode(in));
    ASSERT_TRUE(out.ok()) << len;
    EXPECT_EQ(*out, in) << len;
  }
}

TEST(Base64Test, EncodeAppend) {
  std::string out = "b";
  Base64EncodeAppend("\x01\x02\x03\x04", out);
  EXPECT_EQ(out, "bAQIDBA==");
  Base64EncodeAppend("", out);
  EXPECT_EQ(out, "bAQIDBA==");
}

TEST(Base64Test, RejectsMalformed) {
  const std::string_view kBad[] = {
      "Zg",        // Not a multiple of 4.
      "Zg=",       // Not a multiple of 4.
      "Zm9vY",     // Not a multiple of 4.
      "====",      // Padding only.
      "Z===",      // Three '='.
      "Zg==Zg==",  // Padding before the end.
      "Zm=v",      // '=' in the middle of a quantum.
      "Zm9v!A==",  // Invalid character.
      "Zm9-",      // base64url alphabet.
      "Zm9_",      // base64url alphabet.
      "Zm9v\n",    // Whitespace.
      "Zm 9",      // Whitespace.
      "Zm9\x80",   // High byte.
      "Zm9\0"sv,   // NUL.
  };
  for (std::string_view bad : kBad) {
    absl::StatusOr<std::string> out = Base64Decode(bad);
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument)
        << "input: " << bad;
  }
}

// ---------------------------------------------------------------- frames --

TEST(FrameTest, MakeTextFrame) {
  Frame f = MakeTextFrame(PacketType::kMessage, "hello");
  ASSERT_NE(f.bytes, nullptr);
  EXPECT_EQ(*f.bytes, "4hello");
  EXPECT_FALSE(f.binary);

  EXPECT_EQ(*MakeTextFrame(PacketType::kPing).bytes, "2");
  EXPECT_EQ(*MakeTextFrame(PacketType::kPong, "probe").bytes, "3probe");
  EXPECT_EQ(*MakeTextFrame(PacketType::kNoop).bytes, "6");
  EXPECT_EQ(*MakeTextFrame(PacketType::kOpen, R"({"sid":"x"})").bytes,
            R"(0{"sid":"x"})");
}

TEST(FrameTest, MakeBinaryFrame) {
  const std::string bytes = "\x01\x00\x02\xff"s;
  Frame f = MakeBinaryFrame(bytes);
  ASSERT_NE(f.bytes, nullptr);
  EXPECT_EQ(*f.bytes, bytes);
  EXPECT_TRUE(f.binary);
}

// ----------------------------------------------------------- DecodeFrame --

TEST(DecodeFrameTest, TextPackets) {
  struct Case {
    std::string_view frame;
    PacketType type;
    std::string_view data;
  };
  const Case kCases[] = {
      {"4hello", PacketType::kMessage, "hello"},
      {"4", PacketType::kMessage, ""},  // Empty message is valid.
      {"2probe", PacketType::kPing, "probe"},
      {"3probe", PacketType::kPong, "probe"},
      {"2", PacketType::kPing, ""},
      {"3", PacketType::kPong, ""},
      {"5", PacketType::kUpgrade, ""},
      {"6", PacketType::kNoop, ""},
      {"1", PacketType::kClose, ""},
      {R"(42["hello"])", PacketType::kMessage, R"(2["hello"])"},
      {"4h\x1e\x01", PacketType::kMessage, "h\x1e\x01"},
  };
  for (const Case& c : kCases) {
    absl::StatusOr<Packet> p = DecodeFrame(c.frame, /*binary_frame=*/false);
    ASSERT_TRUE(p.ok()) << c.frame << ": " << p.status();
    EXPECT_EQ(p->type, c.type) << c.frame;
    EXPECT_EQ(p->data, c.data) << c.frame;
    EXPECT_FALSE(p->binary) << c.frame;
  }
}

TEST(DecodeFrameTest, BinaryFrameIsRawMessage) {
  const std::string bytes = "\x01\x02\x03\x04\x00"s;
  absl::StatusOr<Packet> p = DecodeFrame(bytes, /*binary_frame=*/true);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->type, PacketType::kMessage);
  EXPECT_EQ(p->data, bytes);
  EXPECT_TRUE(p->binary);

  // Bytes that look like a text packet are still raw data.
  p = DecodeFrame("2probe", /*binary_frame=*/true);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->type, PacketType::kMessage);
  EXPECT_EQ(p->data, "2probe");

  p = DecodeFrame("", /*binary_frame=*/true);
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->data.empty());
}

TEST(DecodeFrameTest, RejectsMalformedText) {
  const std::string_view kBad[] = {
      "",                 // Empty.
      "0",                // Open is server-to-client only.
      R"(0{"sid":"x"})",  // Open.
      "7",                // Unknown type.
      "9hello",           // Unknown type.
      "bAQIDBA==",        // Base64 binary is polling-only.
      "hello",            // No type.
      "\x1e"              // Separator is not a type.
  };
  for (std::string_view bad : kBad) {
    EXPECT_EQ(DecodeFrame(bad, false).status().code(),
              absl::StatusCode::kInvalidArgument)
        << "frame: " << bad;
  }
}

// --------------------------------------------------------- DecodePayload --

TEST(DecodePayloadTest, SpecTextExample) {
  absl::StatusOr<std::vector<Packet>> p = DecodePayload(
      "4hello\x1e"
      "2\x1e"
      "4world");
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->size(), 3u);
  EXPECT_EQ((*p)[0].type, PacketType::kMessage);
  EXPECT_EQ((*p)[0].data, "hello");
  EXPECT_EQ((*p)[1].type, PacketType::kPing);
  EXPECT_EQ((*p)[1].data, "");
  EXPECT_EQ((*p)[2].type, PacketType::kMessage);
  EXPECT_EQ((*p)[2].data, "world");
  for (const Packet& packet : *p) EXPECT_FALSE(packet.binary);
}

TEST(DecodePayloadTest, SpecBinaryExample) {
  absl::StatusOr<std::vector<Packet>> p = DecodePayload(
      "4hello\x1e"
      "bAQIDBA==");
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->size(), 2u);
  EXPECT_EQ((*p)[0].data, "hello");
  EXPECT_FALSE((*p)[0].binary);
  EXPECT_EQ((*p)[1].type, PacketType::kMessage);
  EXPECT_EQ((*p)[1].data, "\x01\x02\x03\x04");
  EXPECT_TRUE((*p)[1].binary);
}

TEST(DecodePayloadTest, SocketIoSampleSession) {
  absl::StatusOr<std::vector<Packet>> p = DecodePayload(R"(42["hello"])"
                                                        "\x1e"
                                                        R"(42["world"])");
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->size(), 2u);
  EXPECT_EQ((*p)[0].data, R"(2["hello"])");
  EXPECT_EQ((*p)[1].data, R"(2["world"])");

  p = DecodePayload("40");
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p->size(), 1u);
  EXPECT_EQ((*p)[0].type, PacketType::kMessage);
  EXPECT_EQ((*p)[0].data, "0");
}

TEST(DecodePayloadTest, SinglePacketsAndEmptyBinary) {
  absl::StatusOr<std::vector<Packet>> p = DecodePayload("4");
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p->size(), 1u);
  EXPECT_EQ((*p)[0].data, "");

  p = DecodePayload("b");  // Empty binary message.
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p->size(), 1u);
  EXPECT_TRUE((*p)[0].binary);
  EXPECT_EQ((*p)[0].data, "");

  p = DecodePayload("1");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)[0].type, PacketType::kClose);
}

TEST(DecodePayloadTest, RejectsMalformed) {
  const std::string_view kBad[] = {
      "",        // Empty body.
      "\x1e",    // Two empty packets.
      "4a\x1e",  // Trailing empty packet.
      "\x1e"
      "4a",  // Leading empty packet.
      "4a\x1e\x1e"
      "4b",  // Empty packet in the middle.
      "0",   // Open from a client.
      "4a\x1e"
      "0",  // Open later in the payload.
      "7",  // Unknown type.
      "4a\x1e"
      "x",      // Unknown type later in the payload.
      "bAQ=",   // Bad base64 length.
      "b!!!!",  // Bad base64 characters.
      "4a\x1e"
      "bAQIDBA=",  // Bad base64 later in the payload.
  };
  for (std::string_view bad : kBad) {
    EXPECT_EQ(DecodePayload(bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << "body: " << bad;
  }
}

TEST(DecodePayloadTest, MaxPackets) {
  const std::string_view body =
      "2\x1e"
      "2\x1e"
      "2";
  EXPECT_TRUE(DecodePayload(body, 3).ok());
  EXPECT_EQ(DecodePayload(body, 2).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodePayload("2", 0).status().code(),
            absl::StatusCode::kInvalidArgument);

  std::string many;
  for (int i = 0; i < (1 << 16) + 1; ++i) {
    if (!many.empty()) many.push_back('\x1e');
    many.push_back('6');
  }
  EXPECT_EQ(DecodePayload(many).status().code(),
            absl::StatusCode::kInvalidArgument);
  many.resize(many.size() - 2);  // Exactly the default limit.
  absl::StatusOr<std::vector<Packet>> p = DecodePayload(many);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->size(), size_t{1} << 16);
}

// ------------------------------------------------------- AppendToPayload --

TEST(AppendToPayloadTest, BuildsSpecExamples) {
  std::string out;
  AppendToPayload(out, MakeTextFrame(PacketType::kMessage, "hello"));
  EXPECT_EQ(out, "4hello");
  AppendToPayload(out, MakeTextFrame(PacketType::kPing));
  AppendToPayload(out, MakeTextFrame(PacketType::kMessage, "world"));
  EXPECT_EQ(out,
            "4hello\x1e"
            "2\x1e"
            "4world");

  std::string bin;
  AppendToPayload(bin, MakeTextFrame(PacketType::kMessage, "hello"));
  AppendToPayload(bin, MakeBinaryFrame("\x01\x02\x03\x04"));
  EXPECT_EQ(bin,
            "4hello\x1e"
            "bAQIDBA==");
}

TEST(AppendToPayloadTest, BinaryFirstAndEmpty) {
  std::string out;
  AppendToPayload(out, MakeBinaryFrame(""));
  EXPECT_EQ(out, "b");
  AppendToPayload(out, MakeBinaryFrame("\xff"));
  EXPECT_EQ(out,
            "b\x1e"
            "b/w==");
}

TEST(AppendToPayloadTest, NullFrameIsSkipped) {
  std::string out;
  AppendToPayload(out, Frame{});
  EXPECT_EQ(out, "");
  AppendToPayload(out, MakeTextFrame(PacketType::kNoop));
  AppendToPayload(out, Frame{});
  EXPECT_EQ(out, "6");
  EXPECT_EQ(PayloadAppendSize(out.size(), Frame{}), 0u);
}

TEST(AppendToPayloadTest, SizeMatchesAndRoundTrips) {
  std::vector<Frame> frames = {
      MakeTextFrame(PacketType::kMessage, R"(2["a",1])"),
      MakeBinaryFrame("\x00\x01\x02"s),
      MakeTextFrame(PacketType::kPing),
      MakeBinaryFrame("abcd"),
      MakeTextFrame(PacketType::kMessage, ""),
  };
  std::string out;
  for (const Frame& f : frames) {
    const size_t expected = out.size() + PayloadAppendSize(out.size(), f);
    AppendToPayload(out, f);
    EXPECT_EQ(out.size(), expected);
  }
  absl::StatusOr<std::vector<Packet>> decoded = DecodePayload(out);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_EQ(decoded->size(), frames.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    const Packet& p = (*decoded)[i];
    EXPECT_EQ(p.binary, frames[i].binary) << i;
    if (frames[i].binary) {
      EXPECT_EQ(p.data, *frames[i].bytes) << i;
    } else {
      EXPECT_EQ(static_cast<char>(p.type), (*frames[i].bytes)[0]) << i;
      EXPECT_EQ(p.data, frames[i].bytes->substr(1)) << i;
    }
  }
}

TEST(AppendToPayloadTest, FrameBytesAreShared) {
  const Frame f = MakeTextFrame(PacketType::kMessage, "x");
  const Frame copy = f;
  EXPECT_EQ(f.bytes.get(), copy.bytes.get());
  std::string a, b;
  AppendToPayload(a, f);
  AppendToPayload(b, copy);
  EXPECT_EQ(a, b);
  EXPECT_EQ(*f.bytes, "4x");
}

}  // namespace
}  // namespace switchboard::eio
