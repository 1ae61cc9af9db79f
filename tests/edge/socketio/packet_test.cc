#include "edge/socketio/packet.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "edge/engineio/packet.h"
#include "edge/socketio/ack_event.h"
#include "edge/socketio/decoder.h"
#include "edge/socketio/event_args.h"
#include "gtest/gtest.h"

namespace switchboard::sio {
namespace {

using Bytes = std::vector<uint8_t>;

Json Bin(Bytes bytes) { return Json::binary(std::move(bytes)); }

Packet MakePacket(PacketType type, std::string nsp,
                  std::optional<Json> data = std::nullopt,
                  std::optional<uint64_t> id = std::nullopt) {
  Packet p;
  p.type = type;
  p.nsp = std::move(nsp);
  p.data = std::move(data);
  p.id = id;
  return p;
}

// Text of the first frame plus the raw bytes of each attachment frame.
struct Encoded {
  std::string text;
  std::vector<std::string> attachments;
};

Encoded EncodeToStrings(const Packet& p) {
  std::vector<eio::Frame> frames = Encode(p);
  Encoded out;
  EXPECT_FALSE(frames.empty());
  if (frames.empty()) return out;
  EXPECT_FALSE(frames[0].binary);
  out.text = *frames[0].bytes;
  for (size_t i = 1; i < frames.size(); ++i) {
    EXPECT_TRUE(frames[i].binary);
    out.attachments.push_back(*frames[i].bytes);
  }
  return out;
}

// Feeds a text packet (without the Engine.IO '4') and expects one complete
// packet back.
Packet DecodeOne(std::string_view text, DecoderLimits limits = {}) {
  Decoder decoder(limits);
  absl::StatusOr<std::optional<Packet>> r = decoder.Feed(text, false);
  EXPECT_TRUE(r.ok()) << text << ": " << r.status();
  if (!r.ok() || !r->has_value()) {
    ADD_FAILURE() << "no packet for " << text;
    return Packet{};
  }
  return **r;
}

absl::StatusCode DecodeError(std::string_view text, DecoderLimits limits = {}) {
  Decoder decoder(limits);
  absl::StatusOr<std::optional<Packet>> r = decoder.Feed(text, false);
  if (r.ok()) return absl::StatusCode::kOk;
  EXPECT_FALSE(decoder.pending());
  return r.status().code();
}

// ---------------------------------------------------------------- Encode --

struct EncodeCase {
  const char* name;
  Packet packet;
  std::string text;
  std::vector<std::string> attachments;
};

std::vector<EncodeCase> SpecEncodeCases() {
  return {
      {"connect main", MakePacket(PacketType::kConnect, "/"), "40", {}},
      {"connect admin",
       MakePacket(PacketType::kConnect, "/admin",
                  Json{{"sid", "oSO0OpakMV_3jnilAAAA"}}),
       R"(40/admin,{"sid":"oSO0OpakMV_3jnilAAAA"})",
       {}},
      {"connect error",
       MakePacket(PacketType::kConnectError, "/",
                  Json{{"message", "Not authorized"}}),
       R"(44{"message":"Not authorized"})",
       {}},
      {"event main",
       MakePacket(PacketType::kEvent, "/", Json::array({"foo"})),
       R"(42["foo"])",
       {}},
      {"event admin",
       MakePacket(PacketType::kEvent, "/admin", Json::array({"bar"})),
       R"(42/admin,["bar"])",
       {}},
      {"binary event",
       MakePacket(PacketType::kBinaryEvent, "/",
                  Json::array({"baz", Bin({1, 2, 3, 4})})),
       R"(451-["baz",{"_placeholder":true,"num":0}])",
       {"\x01\x02\x03\x04"}},
      {"binary event, plain type in",
       MakePacket(PacketType::kEvent, "/",
                  Json::array({"baz", Bin({1, 2, 3, 4})})),
       R"(451-["baz",{"_placeholder":true,"num":0}])",
       {"\x01\x02\x03\x04"}},
      {"multiple attachments",
       MakePacket(PacketType::kBinaryEvent, "/admin",
                  Json::array({"baz", Bin({1, 2}), Bin({3, 4})})),
       R"(452-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}])",
       {"\x01\x02", "\x03\x04"}},
      {"event with id",
       MakePacket(PacketType::kEvent, "/", Json::array({"foo"}), 12),
       R"(4212["foo"])",
       {}},
      {"ack admin",
       MakePacket(PacketType::kAck, "/admin", Json::array({"bar"}), 13),
       R"(43/admin,13["bar"])",
       {}},
      {"ack empty",
       MakePacket(PacketType::kAck, "/", Json::array(), 12),
       R"(4312[])",
       {}},
      {"binary ack",
       MakePacket(PacketType::kBinaryAck, "/",
                  Json::array({"bar", Bin({1, 2, 3, 4})}), 15),
       R"(461-15["bar",{"_placeholder":true,"num":0}])",
       {"\x01\x02\x03\x04"}},
      {"disconnect main", MakePacket(PacketType::kDisconnect, "/"), "41", {}},
      {"disconnect admin",
       MakePacket(PacketType::kDisconnect, "/admin"),
       "41/admin,",
       {}},
      // Sample session lines.
      {"session connect ok",
       MakePacket(PacketType::kConnect, "/",
                  Json{{"sid", "wZX3oN0bSVIhsaknAAAI"}}),
       R"(40{"sid":"wZX3oN0bSVIhsaknAAAI"})",
       {}},
      {"session emit",
       MakePacket(PacketType::kEvent, "/", Json::array({"hey", "Jude"})),
       R"(42["hey","Jude"])",
       {}},
      {"session admin connect",
       MakePacket(PacketType::kConnect, "/admin",
                  Json{{"sid", "-G5j-67EZFp-q59rADQM"}}),
       R"(40/admin,{"sid":"-G5j-67EZFp-q59rADQM"})",
       {}},
      {"session binary ack",
       MakePacket(PacketType::kAck, "/admin", Json::array({Bin({0xff})}), 1),
       R"(461-/admin,1[{"_placeholder":true,"num":0}])",
       {"\xff"}},
  };
}

TEST(EncodeTest, SpecVectors) {
  for (const EncodeCase& c : SpecEncodeCases()) {
    Encoded e = EncodeToStrings(c.packet);
    EXPECT_EQ(e.text, c.text) << c.name;
    EXPECT_EQ(e.attachments, c.attachments) << c.name;
  }
}

TEST(EncodeTest, SpecVectorsDecodeBack) {
  for (const EncodeCase& c : SpecEncodeCases()) {
    Decoder decoder;
    ASSERT_EQ(c.text[0], '4') << c.name;
    absl::StatusOr<std::optional<Packet>> r =
        decoder.Feed(std::string_view(c.text).substr(1), false);
    ASSERT_TRUE(r.ok()) << c.name << ": " << r.status();
    for (const std::string& a : c.attachments) {
      ASSERT_FALSE(r->has_value()) << c.name;
      r = decoder.Feed(a, true);
      ASSERT_TRUE(r.ok()) << c.name << ": " << r.status();
    }
    ASSERT_TRUE(r->has_value()) << c.name;
    const Packet& p = **r;
    EXPECT_EQ(p.nsp, c.packet.nsp) << c.name;
    EXPECT_EQ(p.id, c.packet.id) << c.name;
    EXPECT_EQ(p.data, c.packet.data) << c.name;
    // Binary types come back as their plain counterparts.
    PacketType want = c.packet.type;
    if (want == PacketType::kBinaryEvent) want = PacketType::kEvent;
    if (want == PacketType::kBinaryAck) want = PacketType::kAck;
    EXPECT_EQ(p.type, want) << c.name;
    EXPECT_EQ(EncodeToStrings(p).text, c.text) << c.name;
  }
}

TEST(EncodeTest, BinaryTypeWithoutBinaryIsSentPlain) {
  EXPECT_EQ(EncodeToStrings(
                MakePacket(PacketType::kBinaryEvent, "/", Json::array({"a"})))
                .text,
            R"(42["a"])");
  EXPECT_EQ(EncodeToStrings(
                MakePacket(PacketType::kBinaryAck, "/x", Json::array(), 3))
                .text,
            R"(43/x,3[])");
}

TEST(EncodeTest, NestedBinariesNumberedDepthFirst) {
  Json data =
      Json::array({"e",
                   Json{{"a", Bin({1})},
                        {"b", Json::array({Bin({2}), Json{{"c", Bin({3})}}})}},
                   Bin({4}), Json::array({Json::array({Bin({5})})})});
  Encoded e = EncodeToStrings(MakePacket(PacketType::kEvent, "/", data, 9));
  EXPECT_EQ(
      e.text,
      R"(455-9["e",{"a":{"_placeholder":true,"num":0},"b":[{"_placeholder":true,"num":1},{"c":{"_placeholder":true,"num":2}}]},{"_placeholder":true,"num":3},[[{"_placeholder":true,"num":4}]]])");
  EXPECT_EQ(e.attachments,
            (std::vector<std::string>{"\x01", "\x02", "\x03", "\x04", "\x05"}));
}

TEST(EncodeTest, EmptyBinaryAttachment) {
  Encoded e = EncodeToStrings(
      MakePacket(PacketType::kEvent, "/", Json::array({"e", Bin({})})));
  EXPECT_EQ(e.text, R"(451-["e",{"_placeholder":true,"num":0}])");
  ASSERT_EQ(e.attachments.size(), 1u);
  EXPECT_EQ(e.attachments[0], "");
}

TEST(EncodeTest, KeyOrderKept) {
  Json obj = Json::object();
  obj["zeta"] = 1;
  obj["alpha"] = 2;
  obj["mid"] = Json::array({3, "x"});
  EXPECT_EQ(EncodeToStrings(MakePacket(PacketType::kConnect, "/", obj)).text,
            R"(40{"zeta":1,"alpha":2,"mid":[3,"x"]})");
  // Same in the binary path, which has its own writer.
  obj["bin"] = Bin({7});
  EXPECT_EQ(
      EncodeToStrings(
          MakePacket(PacketType::kEvent, "/", Json::array({"e", obj})))
          .text,
      R"(451-["e",{"zeta":1,"alpha":2,"mid":[3,"x"],"bin":{"_placeholder":true,"num":0}}])");
}

// The binary path must print everything but the binaries exactly as dump().
TEST(EncodeTest, BinaryWriterMatchesDump) {
  Json tricky = Json::object();
  tricky["plain"] = "text";
  tricky["quote\"key"] = "va\"lue";
  tricky["back\\slash"] = "c:\\dir";
  tricky["ctrl\n\t\x01"] = "line\nbreak\x1f";
  tricky
      ["\xc3\xbc"
       "mlaut"] = "\xe2\x82\xac";
  tricky["nums"] = Json::array({0, -1, 1.5, 1e300, 18446744073709551615ULL,
                                -9223372036854775807LL, 0.1});
  tricky["lits"] = Json::array({true, false, nullptr});
  tricky["empty"] = Json::object();
  tricky["empty_arr"] = Json::array();

  Json with_bin = Json::array({"e", tricky, Bin({1, 2})});
  Json with_placeholder =
      Json::array({"e", tricky, Json{{"_placeholder", true}, {"num", 0}}});
  Encoded e = EncodeToStrings(MakePacket(PacketType::kEvent, "/", with_bin));
  EXPECT_EQ(e.text, "451-" + with_placeholder.dump());
}

TEST(EncodeTest, InvalidUtf8IsReplacedNotThrown) {
  Json data = Json::array({"e", "bad\xff", Json{{"k\xfe", 1}}});
  Encoded plain = EncodeToStrings(MakePacket(PacketType::kEvent, "/", data));
  EXPECT_EQ(plain.text, "42[\"e\",\"bad\xef\xbf\xbd\",{\"k\xef\xbf\xbd\":1}]");
  data.push_back(Bin({1}));
  Encoded bin = EncodeToStrings(MakePacket(PacketType::kEvent, "/", data));
  EXPECT_EQ(bin.text,
            "451-[\"e\",\"bad\xef\xbf\xbd\",{\"k\xef\xbf\xbd\":1},"
            "{\"_placeholder\":true,\"num\":0}]");
}

TEST(EncodeTest, NullDataOmitted) {
  EXPECT_EQ(EncodeToStrings(MakePacket(PacketType::kConnect, "/", Json())).text,
            "40");
  EXPECT_EQ(EncodeToStrings(MakePacket(PacketType::kConnect, "", Json())).text,
            "40");  // Empty namespace means "/".
}

TEST(EncodeTest, ConnectErrorString) {
  EXPECT_EQ(EncodeToStrings(
                MakePacket(PacketType::kConnectError, "/chat", Json("nope")))
                .text,
            R"(44/chat,"nope")");
}

TEST(EncodeTest, MaxAckId) {
  EXPECT_EQ(EncodeToStrings(
                MakePacket(PacketType::kAck, "/", Json::array(), UINT64_MAX))
                .text,
            "4318446744073709551615[]");
  EXPECT_EQ(EncodeToStrings(
                MakePacket(PacketType::kEvent, "/", Json::array({"a"}), 0))
                .text,
            R"(420["a"])");
}

TEST(EncodeTest, LargeMessagesAndScratchReuse) {
  std::string big(3 << 20, 'x');
  Encoded e = EncodeToStrings(
      MakePacket(PacketType::kEvent, "/", Json::array({"big", big})));
  EXPECT_EQ(e.text, R"(42["big",")" + big + R"("])");
  // The next encode on this thread still works after the scratch is freed.
  EXPECT_EQ(EncodeToStrings(
                MakePacket(PacketType::kEvent, "/", Json::array({"small"})))
                .text,
            R"(42["small"])");
}

TEST(EncodeTest, TextFrameHasExactCapacityAndFramesShareNothing) {
  std::vector<eio::Frame> frames = Encode(
      MakePacket(PacketType::kEvent, "/", Json::array({"a", Bin({1, 2})})));
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_FALSE(frames[0].binary);
  EXPECT_TRUE(frames[1].binary);
  EXPECT_EQ(*frames[1].bytes, "\x01\x02");
  // A long frame gets exactly its own size (no growth slack).
  std::vector<eio::Frame> big = Encode(MakePacket(
      PacketType::kEvent, "/", Json::array({"a", std::string(1000, 'y')})));
  EXPECT_EQ(big[0].bytes->capacity(), big[0].bytes->size());
}

TEST(MakeEventTest, Basic) {
  Packet p = MakeEvent("/chat", "msg", Json::array({1, "x"}), 7);
  EXPECT_EQ(p.type, PacketType::kEvent);
  EXPECT_EQ(p.nsp, "/chat");
  EXPECT_EQ(p.id, 7u);
  EXPECT_EQ(EncodeToStrings(p).text, R"(42/chat,7["msg",1,"x"])");

  EXPECT_EQ(EncodeToStrings(MakeEvent("/", "hello", Json::array())).text,
            R"(42["hello"])");
  // A non-array value is a single argument.
  EXPECT_EQ(EncodeToStrings(MakeEvent("/", "n", Json(5))).text, R"(42["n",5])");
  EXPECT_EQ(EncodeToStrings(MakeEvent("/", "o", Json{{"k", 1}})).text,
            R"(42["o",{"k":1}])");
  EXPECT_EQ(EncodeToStrings(MakeEvent("/", "b", Json::array({Bin({9})}))).text,
            R"(451-["b",{"_placeholder":true,"num":0}])");
}

TEST(HasBinaryTest, FindsNestedBinary) {
  EXPECT_FALSE(HasBinary(Json()));
  EXPECT_FALSE(HasBinary(Json::array({1, "a", Json{{"k", Json::array()}}})));
  EXPECT_TRUE(HasBinary(Bin({})));
  EXPECT_TRUE(
      HasBinary(Json::array({1, Json{{"k", Json::array({Bin({1})})}}})));
  EXPECT_TRUE(HasBinary(Json{{"a", 1}, {"b", Bin({1})}}));
}

// --------------------------------------------------------------- Decoder --

TEST(DecoderTest, ConnectVariants) {
  Packet p = DecodeOne("0");
  EXPECT_EQ(p.type, PacketType::kConnect);
  EXPECT_EQ(p.nsp, "/");
  EXPECT_FALSE(p.data.has_value());
  EXPECT_FALSE(p.id.has_value());

  p = DecodeOne("0/admin,");
  EXPECT_EQ(p.nsp, "/admin");
  EXPECT_FALSE(p.data.has_value());

  // No trailing comma: the namespace runs to the end of the string.
  p = DecodeOne("0/random");
  EXPECT_EQ(p.type, PacketType::kConnect);
  EXPECT_EQ(p.nsp, "/random");
  EXPECT_FALSE(p.data.has_value());

  p = DecodeOne(R"(0/admin,{"token":"123"})");
  EXPECT_EQ(p.nsp, "/admin");
  EXPECT_EQ(*p.data, (Json{{"token", "123"}}));

  p = DecodeOne(R"(0{"token":"123"})");
  EXPECT_EQ(p.nsp, "/");
  EXPECT_EQ(*p.data, (Json{{"token", "123"}}));
}

TEST(DecoderTest, DisconnectAndConnectError) {
  Packet p = DecodeOne("1");
  EXPECT_EQ(p.type, PacketType::kDisconnect);
  EXPECT_EQ(p.nsp, "/");
  p = DecodeOne("1/admin,");
  EXPECT_EQ(p.type, PacketType::kDisconnect);
  EXPECT_EQ(p.nsp, "/admin");

  p = DecodeOne(R"(4{"message":"Not authorized"})");
  EXPECT_EQ(p.type, PacketType::kConnectError);
  EXPECT_EQ(*p.data, (Json{{"message", "Not authorized"}}));
  p = DecodeOne(R"(4/x,"legacy string")");
  EXPECT_EQ(p.nsp, "/x");
  EXPECT_EQ(*p.data, Json("legacy string"));
}

TEST(DecoderTest, EventsAndAcks) {
  Packet p = DecodeOne(R"(2["foo"])");
  EXPECT_EQ(p.type, PacketType::kEvent);
  EXPECT_EQ(*p.data, Json::array({"foo"}));
  EXPECT_FALSE(p.id.has_value());

  p = DecodeOne(R"(2/admin,["bar"])");
  EXPECT_EQ(p.nsp, "/admin");

  p = DecodeOne(R"(212["foo"])");
  EXPECT_EQ(p.id, 12u);
  EXPECT_EQ(*p.data, Json::array({"foo"}));

  p = DecodeOne(R"(2/admin,1["tellme"])");
  EXPECT_EQ(p.nsp, "/admin");
  EXPECT_EQ(p.id, 1u);

  p = DecodeOne(R"(3/admin,13["bar"])");
  EXPECT_EQ(p.type, PacketType::kAck);
  EXPECT_EQ(p.nsp, "/admin");
  EXPECT_EQ(p.id, 13u);
  EXPECT_EQ(*p.data, Json::array({"bar"}));

  p = DecodeOne("312[]");
  EXPECT_EQ(p.type, PacketType::kAck);
  EXPECT_EQ(*p.data, Json::array());

  p = DecodeOne(R"(2 ["ws"] )");  // JSON whitespace is fine.
  EXPECT_EQ(*p.data, Json::array({"ws"}));

  p = DecodeOne(R"(2["a",{"z":1,"a":2}])");
  EXPECT_EQ((*p.data)[1].dump(), R"({"z":1,"a":2})");
}

// socket.io-parser's isPayloadValid takes a number for an event name
// (socket.emit(1, "x")); the server's listeners get it as String(n).
TEST(DecoderTest, NumericEventNames) {
  Packet p = DecodeOne(R"(27[1,"x"])");
  EXPECT_EQ(p.type, PacketType::kEvent);
  EXPECT_EQ(p.id, 7u);
  EXPECT_EQ(*p.data, Json::parse(R"([1,"x"])"));
  EventArgs args(std::move(*p.data));
  EXPECT_EQ(args.name(), "1");
  EXPECT_EQ(args.json(), Json::array({"x"}));

  p = DecodeOne("2[-3]");
  EXPECT_EQ(EventArgs(std::move(*p.data)).name(), "-3");

  Decoder decoder{DecoderLimits{}};
  ASSERT_TRUE(decoder.Feed(R"(51-[2,{"_placeholder":true,"num":0}])", false).ok());
  auto binary = decoder.Feed("\x01", true);
  ASSERT_TRUE(binary.ok() && binary->has_value());
  EXPECT_EQ(EventArgs(std::move(*(*binary)->data)).name(), "2");

  const std::pair<const char*, const char*> kNames[] = {
      {"1.5", "1.5"}, {"1.0", "1"}, {"-0", "0"}, {"1e3", "1000"}, {"0.25", "0.25"},
      {"18446744073709551615", "18446744073709551615"}};
  for (const auto& [json, name] : kNames) {
    EXPECT_EQ(NumericEventName(Json::parse(json)), name) << json;
  }
}

TEST(DecoderTest, AckIdLimits) {
  Packet p = DecodeOne(R"(29999999999999999999["a"])");  // 19 digits.
  EXPECT_EQ(p.id, 9999999999999999999ULL);
  p = DecodeOne(R"(2/n,0000000000000000007["a"])");  // 19 digits, zeros.
  EXPECT_EQ(p.id, 7u);
  EXPECT_EQ(DecodeError(R"(218446744073709551615["a"])"),  // 20 digits.
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeError(R"(200000000000000000000["a"])"),
            absl::StatusCode::kInvalidArgument);
}

TEST(DecoderTest, SingleBinaryEvent) {
  Decoder d;
  absl::StatusOr<std::optional<Packet>> r =
      d.Feed(R"(51-["baz",{"_placeholder":true,"num":0}])", false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->has_value());
  EXPECT_TRUE(d.pending());

  r = d.Feed(std::string("\x01\x02\x03\x04", 4), true);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->has_value());
  EXPECT_FALSE(d.pending());
  const Packet& p = **r;
  EXPECT_EQ(p.type, PacketType::kEvent);
  EXPECT_EQ(p.nsp, "/");
  EXPECT_EQ(*p.data, Json::array({"baz", Bin({1, 2, 3, 4})}));
  ASSERT_TRUE((*p.data)[1].is_binary());
  EXPECT_EQ((*p.data)[1].get_binary(), Bytes({1, 2, 3, 4}));
}

TEST(DecoderTest, MultipleAttachmentsAndBinaryAck) {
  Decoder d;
  auto r = d.Feed(
      R"(52-/admin,["baz",{"_placeholder":true,"num":1},{"k":{"_placeholder":true,"num":0}}])",
      false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->has_value());
  r = d.Feed(std::string("\x01\x02", 2), true);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_value());
  r = d.Feed(std::string("\x03\x04", 2), true);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->nsp, "/admin");
  EXPECT_EQ(*(*r)->data,
            Json::array({"baz", Bin({3, 4}), Json{{"k", Bin({1, 2})}}}));

  // The decoder is reusable for the next packet.
  r = d.Feed(R"(61-15["bar",{"_placeholder":true,"num":0}])", false);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_value());
  r = d.Feed(std::string("\x00\xff", 2), true);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->type, PacketType::kAck);
  EXPECT_EQ((*r)->id, 15u);
  EXPECT_EQ(*(*r)->data, Json::array({"bar", Bin({0x00, 0xff})}));

  r = d.Feed(R"(2["next"])", false);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->type, PacketType::kEvent);
}

TEST(DecoderTest, AttachmentReferencedTwiceAndUnused) {
  Decoder d;
  auto r = d.Feed(
      R"(52-["e",{"_placeholder":true,"num":0},{"_placeholder":true,"num":0}])",
      false);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(d.Feed("ab", true).ok());
  r = d.Feed("unused", true);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->has_value());
  const Bytes ab = {'a', 'b'};
  EXPECT_EQ(*(*r)->data, Json::array({"e", Bin(ab), Bin(ab)}));
}

TEST(DecoderTest, ZeroAttachmentsCompletesImmediately) {
  Packet p = DecodeOne(R"(50-["a",1])");
  EXPECT_EQ(p.type, PacketType::kEvent);
  EXPECT_EQ(*p.data, Json::array({"a", 1}));
  p = DecodeOne(R"(60-/x,4[])");
  EXPECT_EQ(p.type, PacketType::kAck);
  EXPECT_EQ(p.nsp, "/x");
  EXPECT_EQ(p.id, 4u);
}

TEST(DecoderTest, PlaceholderInPlainEventIsJustAnObject) {
  // Only binary packets are reconstructed, as in the reference parser.
  Packet p = DecodeOne(R"(2["a",{"_placeholder":true,"num":0}])");
  EXPECT_TRUE((*p.data)[1].is_object());
  // "_placeholder" other than true is ordinary data too.
  p = DecodeOne(
      R"(50-["a",{"_placeholder":false,"num":5},{"_placeholder":1}])");
  EXPECT_EQ((*p.data)[1], (Json{{"_placeholder", false}, {"num", 5}}));
  EXPECT_EQ((*p.data)[2], (Json{{"_placeholder", 1}}));
}

TEST(DecoderTest, RoundTripThroughEncode) {
  const Json data = Json::array(
      {"upload",
       Json{{"name", "f.bin"}, {"parts", Json::array({Bin({0, 1}), Bin({})})}},
       Bin(Bytes(1000, 0xab)), 3.25, nullptr, Json{{"ok", true}}});
  const Packet in = MakePacket(PacketType::kEvent, "/files", data, 77);
  std::vector<eio::Frame> frames = Encode(in);
  ASSERT_EQ(frames.size(), 4u);

  Decoder d;
  absl::StatusOr<std::optional<Packet>> r;
  for (size_t i = 0; i < frames.size(); ++i) {
    // Route through the Engine.IO layer as a server would.
    absl::StatusOr<eio::Packet> ep =
        eio::DecodeFrame(*frames[i].bytes, frames[i].binary);
    ASSERT_TRUE(ep.ok());
    ASSERT_EQ(ep->type, eio::PacketType::kMessage);
    r = d.Feed(ep->data, ep->binary);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->has_value(), i + 1 == frames.size());
  }
  const Packet& out = **r;
  EXPECT_EQ(out.type, PacketType::kEvent);
  EXPECT_EQ(out.nsp, "/files");
  EXPECT_EQ(out.id, 77u);
  EXPECT_EQ(*out.data, data);

  // And through a polling payload (binary as base64).
  std::string body;
  for (const eio::Frame& f : frames) eio::AppendToPayload(body, f);
  absl::StatusOr<std::vector<eio::Packet>> packets = eio::DecodePayload(body);
  ASSERT_TRUE(packets.ok()) << packets.status();
  ASSERT_EQ(packets->size(), frames.size());
  Decoder d2;
  for (const eio::Packet& ep : *packets) r = d2.Feed(ep.data, ep.binary);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ(*(*r)->data, data);
}

TEST(DecoderTest, RejectsMalformedText) {
  const std::string_view kBad[] = {
      "",               // Empty.
      "7",              // Unknown type.
      "9[\"a\"]",       // Unknown type.
      "abc",            // "4abc" on the wire.
      "-1",             // Not a digit.
      "2{}",            // Event payload must be an array.
      "2[]",            // Event array must not be empty.
      "2[null]",        // Event name must be a string or a number.
      "2[true]",        // Ditto.
      "2[[1]]",         // Ditto.
      "2[null]",        // Event name must be a string.
      "2[[\"a\"]]",     // Event name must be a string.
      "2\"foo\"",       // Not an array.
      "2",              // Event without payload.
      "212",            // Event with id but no payload.
      "2/chat,",        // Event without payload.
      "2/chat[\"a\"]",  // No comma: all of it is the namespace.
      "2abc[\"a\"]",    // "42abc[...]".
      "2[\"a\"",        // Truncated JSON.
      "2[\"a\"]x",      // Trailing garbage.
      "2[\"a\"]]",      // Trailing bracket.
      "2['a']",         // Not JSON.
      "2[\"a\",]",      // Trailing comma.
      "2/a,1x[\"a\"]",  // Garbage after the id.
      "0[]",            // Connect payload must be an object.
      "0\"s\"",         // Connect payload must be an object.
      "0null",          // Connect payload must be an object.
      "1{}",            // Disconnect takes no payload.
      "1/admin,[]",     // Disconnect takes no payload.
      "4",              // Connect error needs a payload.
      "4[]",            // Connect error: object or string.
      "412",            // Connect error: number.
      "3",              // Ack without payload.
      "312",            // Ack id without payload.
      "3{}",            // Ack payload must be an array.
      "3\"x\"",         // Ack payload must be an array.
      "6-[]",           // No attachment count digits.
      "5-[\"a\"]",      // No attachment count digits.
      "51[\"a\"]",      // Missing '-'.
      "51",             // Missing '-'.
      "5",              // Missing count.
      "5a-[\"a\"]",     // Non-digit count.
      "5+1-[\"a\"]",    // Non-digit count.
      "511-[\"a\"]",    // More than max_attachments (10).
      "599999999999999999999999999-[\"a\"]",  // Would overflow.
      "51-",                                  // Binary event without payload.
      "51-{}",             // Binary event payload must be an array.
      "51-[\"connect\"]",  // Reserved name.
      "61-{}",             // Binary ack payload must be an array.
      // Placeholders: out of range or malformed.
      "51-[\"a\",{\"_placeholder\":true,\"num\":1}]",
      "51-[\"a\",{\"_placeholder\":true,\"num\":-1}]",
      "51-[\"a\",{\"_placeholder\":true,\"num\":\"0\"}]",
      "51-[\"a\",{\"_placeholder\":true,\"num\":0.5}]",
      "51-[\"a\",{\"_placeholder\":true,\"num\":null}]",
      "51-[\"a\",{\"_placeholder\":true}]",
      "50-[\"a\",{\"_placeholder\":true,\"num\":0}]",
      "52-[\"a\",{\"k\":[{\"_placeholder\":true,\"num\":2}]}]",
      "61-1[{\"_placeholder\":true,\"num\":18446744073709551616}]",
  };
  for (std::string_view bad : kBad) {
    EXPECT_EQ(DecodeError(bad), absl::StatusCode::kInvalidArgument)
        << "input: " << bad;
  }
}

TEST(DecoderTest, ConnectWithTrailingDigitsIsAnAckIdLikeTheReference) {
  // The reference parser reads digits after the namespace as an id whatever
  // the type; a CONNECT with an id and no payload is accepted.
  Packet p = DecodeOne("0/admin,1");
  EXPECT_EQ(p.type, PacketType::kConnect);
  EXPECT_EQ(p.id, 1u);
}

TEST(DecoderTest, ReservedEventNames) {
  for (std::string_view name :
       {"connect", "connect_error", "disconnect", "disconnecting",
        "newListener", "removeListener"}) {
    const std::string text = "2[\"" + std::string(name) + "\",1]";
    EXPECT_EQ(DecodeError(text), absl::StatusCode::kInvalidArgument) << name;
  }
  // Near misses are ordinary events.
  for (std::string_view name : {"Connect", "connected", "disconnect ", ""}) {
    const std::string text = "2[\"" + std::string(name) + "\"]";
    EXPECT_EQ(DecodeError(text), absl::StatusCode::kOk) << name;
  }
}

TEST(DecoderTest, BinaryWhenNotExpected) {
  Decoder d;
  auto r = d.Feed("\x01", true);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);

  // Also after a packet just completed.
  ASSERT_TRUE(d.Feed(R"(51-["a",{"_placeholder":true,"num":0}])", false).ok());
  ASSERT_TRUE(d.Feed("x", true).ok());
  r = d.Feed("y", true);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(DecoderTest, TextWhilePendingResets) {
  Decoder d;
  ASSERT_TRUE(d.Feed(R"(52-["a",{"_placeholder":true,"num":0}])", false).ok());
  ASSERT_TRUE(d.Feed("x", true).ok());
  auto r = d.Feed(R"(2["b"])", false);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(d.pending());
  // After the error the decoder starts clean.
  r = d.Feed(R"(2["c"])", false);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ(*(*r)->data, Json::array({"c"}));
}

TEST(DecoderTest, ResetDropsPending) {
  Decoder d;
  ASSERT_TRUE(d.Feed(R"(51-["a",{"_placeholder":true,"num":0}])", false).ok());
  EXPECT_TRUE(d.pending());
  d.Reset();
  EXPECT_FALSE(d.pending());
  EXPECT_EQ(d.Feed("x", true).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DecoderTest, BadPlaceholderFailsBeforeAttachments) {
  Decoder d;
  auto r = d.Feed(R"(51-["a",{"_placeholder":true,"num":3}])", false);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(d.pending());
}

TEST(DecoderTest, AttachmentLimit) {
  DecoderLimits limits;
  limits.max_attachments = 2;
  EXPECT_EQ(DecodeError(R"(52-["a"])", limits), absl::StatusCode::kOk);
  EXPECT_EQ(DecodeError(R"(53-["a"])", limits),
            absl::StatusCode::kInvalidArgument);
  limits.max_attachments = 0;
  EXPECT_EQ(DecodeError(R"(50-["a"])", limits), absl::StatusCode::kOk);
  EXPECT_EQ(DecodeError(R"(51-["a"])", limits),
            absl::StatusCode::kInvalidArgument);
  // Default allows exactly 10.
  EXPECT_EQ(DecodeError(R"(510-["a"])"), absl::StatusCode::kOk);
  EXPECT_EQ(DecodeError(R"(5010-["a"])"), absl::StatusCode::kOk);
}

std::string Nested(size_t depth) {
  // ["e",[[...]]] with `depth` containers in total.
  std::string s = "2[\"e\"";
  if (depth > 1) {
    s += ',';
    s += std::string(depth - 1, '[');
    s += std::string(depth - 1, ']');
  }
  s += ']';
  return s;
}

TEST(DecoderTest, JsonDepthLimit) {
  EXPECT_EQ(DecodeError(Nested(32)), absl::StatusCode::kOk);
  EXPECT_EQ(DecodeError(Nested(33)), absl::StatusCode::kInvalidArgument);

  // Objects count too.
  std::string objects = "0";
  for (int i = 0; i < 33; ++i) objects += "{\"k\":";
  // Appended piecewise: `"1" + std::string(...)` trips a GCC 12
  // -Wrestrict false positive at -O2.
  objects += '1';
  objects.append(33, '}');
  EXPECT_EQ(DecodeError(objects), absl::StatusCode::kInvalidArgument);

  DecoderLimits limits;
  limits.max_json_depth = 2;
  EXPECT_EQ(DecodeError(R"(2["a",{"b":1}])", limits), absl::StatusCode::kOk);
  EXPECT_EQ(DecodeError(R"(2["a",{"b":[]}])", limits),
            absl::StatusCode::kInvalidArgument);
}

TEST(DecoderTest, HostileDepthIsRejectedWithoutRecursion) {
  // Would overflow the stack in a recursive parser or destructor.
  std::string deep = "2";
  deep.append(1 << 20, '[');
  EXPECT_EQ(DecodeError(deep), absl::StatusCode::kInvalidArgument);
  std::string deep_obj = "0";
  for (int i = 0; i < 200000; ++i) deep_obj += "{\"a\":";
  EXPECT_EQ(DecodeError(deep_obj), absl::StatusCode::kInvalidArgument);
}

TEST(DecoderTest, BracketsInsideStringsDoNotCount) {
  const std::string many(100, '[');
  Packet p = DecodeOne("2[\"" + many + "\",\"" + std::string(100, '{') + "\"]");
  EXPECT_EQ((*p.data)[0], Json(many));
  // Escaped quotes do not end the string early.
  p = DecodeOne("2[\"a\\\"" + many + "\"]");
  EXPECT_EQ((*p.data)[0], Json("a\"" + many));
  p = DecodeOne("2[\"a\\\\\",[[1]]]");  // Escaped backslash, then real close.
  EXPECT_EQ((*p.data)[0], Json("a\\"));
}

// AckEvent: one encoding, then each recipient's ack id spliced in, must be
// byte for byte what Encode makes of the packet with that id.
TEST(AckEventTest, FramesWithAnIdAreTheEncodingOfThePacketWithThatId) {
  const std::vector<Packet> events = {
      MakeEvent("/", "greet", Json::array({"hi", 1})),
      MakeEvent("/chat", "greet", Json::array({Json{{"a", "b,c"}}})),
      MakeEvent("/", "file", Json::array({Bin({1, 2, 3}), "x"})),
      MakeEvent("/admin", "files", Json::array({Bin({4}), Bin({5, 6})})),
      MakeEvent("/", "none", Json::array()),
  };
  for (const Packet& event : events) {
    AckEvent once(event);
    for (uint64_t id : {uint64_t{0}, uint64_t{7}, uint64_t{123456789012345}}) {
      Packet with_id = event;
      with_id.id = id;
      std::vector<eio::Frame> expected = Encode(with_id);
      std::vector<eio::Frame> got = once.Frames(id);
      ASSERT_EQ(got.size(), expected.size()) << *expected[0].bytes;
      for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_EQ(*got[i].bytes, *expected[i].bytes);
        EXPECT_EQ(got[i].binary, expected[i].binary);
      }
    }
  }
}

}  // namespace
}  // namespace switchboard::sio
