// The lazy EVENT path: ScanEventPayload, Decoder::FeedLazy and EventArgs.
// Whatever FeedLazy leaves as text must be what Feed parses, and every input
// Feed refuses must be refused the same way.
#include "edge/socketio/event_scan.h"

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "edge/socketio/decoder.h"
#include "edge/socketio/event_args.h"
#include "gtest/gtest.h"

namespace switchboard::sio {
namespace {

// The first argument's text or the whole list, for a payload the scan takes.
struct Scanned {
  std::string name;
  std::string args;
  std::string first;
};

std::optional<Scanned> Scan(std::string_view json, size_t max_depth = 32) {
  std::optional<EventSpans> spans = ScanEventPayload(json, max_depth);
  if (!spans) return std::nullopt;
  return Scanned{std::string(json.substr(spans->name_begin, spans->name_end - spans->name_begin)),
                 std::string(json.substr(spans->args_begin, spans->args_end - spans->args_begin)),
                 std::string(json.substr(spans->args_begin, spans->first_end - spans->args_begin))};
}

TEST(EventScanTest, FindsNameAndArguments) {
  auto s = Scan(R"(["echo",{"t":1,"p":"xx"}])");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->name, "echo");
  EXPECT_EQ(s->args, R"({"t":1,"p":"xx"})");
  EXPECT_EQ(s->first, R"({"t":1,"p":"xx"})");

  s = Scan(R"(["a",1,"two",[3,[4]],null])");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->args, R"(1,"two",[3,[4]],null)");
  EXPECT_EQ(s->first, "1");

  s = Scan(R"(["none"])");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->name, "none");
  EXPECT_EQ(s->args, "");
  EXPECT_EQ(s->first, "");

  s = Scan(" [ \"ws\" ,\t[ 1 , 2 ] ,\n{ } \r] ");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->name, "ws");
  EXPECT_EQ(s->args, "[ 1 , 2 ] ,\n{ }");
  EXPECT_EQ(s->first, "[ 1 , 2 ]");
}

TEST(EventScanTest, StringsWithBracketsQuotesAndEscapes) {
  auto s = Scan(R"(["m","a],[\"b\\",{"k]":"}{"},"\n\t\/\u00e9"])");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->first, R"("a],[\"b\\")");
  EXPECT_EQ(s->args, R"("a],[\"b\\",{"k]":"}{"},"\n\t\/\u00e9")");
  // UTF-8 text, 2 to 4 bytes.
  s = Scan("[\"caf\xc3\xa9\",\"\xe2\x82\xac\",\"\xf0\x9f\x98\x80\"]");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->name, "caf\xc3\xa9");
}

TEST(EventScanTest, PlaceholderObjectsAreJustArguments) {
  auto s = Scan(R"(["up",{"_placeholder":true,"num":0}])");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->first, R"({"_placeholder":true,"num":0})");
}

TEST(EventScanTest, LeavesToTheParserWhatItDoesNotVouchFor) {
  for (const char* json : {
           "",                              // nothing
           "[]",                            // no event name
           "[1]",                           // name not a string
           R"({"a":1})",                    // not an array
           R"(["a",])",                     // trailing comma
           R"(["a" 1])",                    // missing comma
           R"(["a"]x)",                     // trailing garbage
           R"(["a",01])",                   // leading zero
           R"(["a",1.])",                   // bare point
           R"(["a",-])",                    // bare minus
           R"(["a",1e5])",                  // exponent: the parser judges overflow
           R"(["a",tru])",                  // bad literal
           R"(["a","\x"])",                 // bad escape
           R"(["a","\ud83d\ude00"])",       // surrogates: the parser pairs them
           R"(["\u0061"])",                 // escaped name
           R"(["disconnect"])",             // reserved name
           R"(["a",{"k" 1}])",              // missing colon
           R"(["a",{1:2}])",                // key not a string
           R"(["a","unterminated])",        // open string
           "[\"a\",\"\x01\"]",              // control character
           "[\"a\",\"\xc3\"]",              // truncated UTF-8
           "[\"a\",\"\xc0\xaf\"]",          // overlong
           "[\"a\",\"\xed\xa0\x80\"]",      // UTF-8 surrogate
           "[\"a\",\"\xf4\x90\x80\x80\"]",  // above U+10FFFF
           "\xef\xbb\xbf[\"a\"]",           // BOM
       }) {
    EXPECT_FALSE(Scan(json)) << json;
  }
}

TEST(EventScanTest, DepthLimitAsTheDecoder) {
  EXPECT_TRUE(Scan(R"(["a",[[1]]])", 3));
  EXPECT_FALSE(Scan(R"(["a",[[[1]]]])", 3));
  EXPECT_FALSE(Scan(R"(["a",{"b":{"c":[1]}}])", 3));
}

// ------------------------------------------------------------- FeedLazy --

absl::StatusOr<std::optional<Packet>> Lazy(std::string_view text, DecoderLimits limits = {}) {
  Decoder decoder(limits);
  return decoder.FeedLazy(std::string(text), false);
}

TEST(FeedLazyTest, PlainEventStaysText) {
  auto r = Lazy(R"(2/chat,42["echo",{"t":1},"x"])");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->has_value());
  Packet& p = **r;
  EXPECT_EQ(p.type, PacketType::kEvent);
  EXPECT_EQ(p.nsp, "/chat");
  EXPECT_EQ(p.id, 42u);
  EXPECT_FALSE(p.data.has_value());
  ASSERT_TRUE(p.raw.has_value());
  EventArgs args(std::move(*p.raw));
  EXPECT_EQ(args.name(), "echo");
  EXPECT_TRUE(args.has_text());
  EXPECT_EQ(args.text(), R"({"t":1},"x")");
  EXPECT_EQ(args.first_text(), R"({"t":1})");
  EXPECT_EQ(args.json(), Json::parse(R"([{"t":1},"x"])"));
  EXPECT_FALSE(args.has_text());
  EXPECT_EQ(args.name(), "echo");
}

TEST(FeedLazyTest, OtherPacketsAreParsedAsByFeed) {
  // Binary events, acks, connects, and events the scan leaves to the parser.
  for (const char* text :
       {R"(0/a,{"x":1})", R"(3/a,7["r"])", R"(2["n",1e3])", R"(2["\u0061",1])"}) {
    auto r = Lazy(text);
    ASSERT_TRUE(r.ok()) << text;
    ASSERT_TRUE(r->has_value()) << text;
    EXPECT_FALSE((*r)->raw.has_value()) << text;
    EXPECT_TRUE((*r)->data.has_value()) << text;
  }
  Decoder decoder;
  auto r = decoder.FeedLazy(std::string(R"(51-["up",{"_placeholder":true,"num":0}])"), false);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_value());
  EXPECT_TRUE(decoder.pending());
  r = decoder.FeedLazy(std::string("\x01\x02", 2), true);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->type, PacketType::kEvent);
  EXPECT_TRUE((**r).data->at(1).is_binary());
}

TEST(FeedLazyTest, MalformedInputFailsAsWithFeed) {
  DecoderLimits shallow;
  shallow.max_json_depth = 2;
  for (const char* text :
       {"2", "2[]", R"(2[null])", R"(2["a",])", R"(2["disconnect"])", R"(2["a"]x)", R"(2/a["a"])",
        R"(21234567890123456789012["a"])", "2[\"a\",\"\xc3\"]", R"(2["a",1e999])", R"(2"a")"}) {
    EXPECT_EQ(Lazy(text).status().code(), absl::StatusCode::kInvalidArgument) << text;
  }
  Decoder decoder(shallow);
  auto r = decoder.FeedLazy(std::string(R"(2["a",[[1]]])"), false);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(decoder.breach(), LimitBreach::kJsonDepth);
}

// Random edits of event payloads: whenever FeedLazy keeps the text, Feed
// accepts the packet and parses the same arguments; verdicts always agree.
TEST(FeedLazyTest, AgreesWithFeedOnMutatedInput) {
  const std::vector<std::string> seeds = {
      R"(2["echo",{"t":1796001756988329,"p":"xxxx"}])",
      R"(2/n,7["a",[1,-2.5,"s\"]"],{"k":{"z":[true,false,null]}},"\u00e9"])",
      "23[\"caf\xc3\xa9\",\"\xf0\x9f\x98\x80\",0,-0,0.25]",
      R"(2["a"])",
  };
  const std::string alphabet = "[]{},:\"\\/ 0123456789.-+eEtfnulrsaxu\x01\xc3\xa9\xed\xf0\x9f";
  std::mt19937 rng(7);
  size_t lazy = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string text = seeds[static_cast<size_t>(round) % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits && !text.empty(); ++e) {
      const size_t at = rng() % text.size();
      const char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0: text[at] = c; break;
        case 1: text.insert(text.begin() + static_cast<std::ptrdiff_t>(at), c); break;
        default: text.erase(at, 1); break;
      }
    }
    Decoder full;
    Decoder lazy_decoder;
    auto want = full.Feed(text, false);
    auto got = lazy_decoder.FeedLazy(std::string(text), false);
    ASSERT_EQ(want.ok(), got.ok()) << text;
    if (!got.ok() || !got->has_value() || !(*got)->raw) continue;
    ++lazy;
    ASSERT_TRUE(want->has_value()) << text;
    EventArgs expected(*(*want)->data);
    EventArgs args(std::move(*(*got)->raw));
    ASSERT_EQ(args.name(), expected.name()) << text;
    const Json list = Json::parse("[" + std::string(args.text()) + "]", nullptr, false);
    const Json first = Json::parse("[" + std::string(args.first_text()) + "]", nullptr, false);
    const Json& parsed = args.json();
    ASSERT_EQ(parsed, expected.json()) << text;
    ASSERT_EQ(list, parsed) << text;
    ASSERT_EQ(first, parsed.empty() ? Json::array() : Json::array({parsed[0]})) << text;
  }
  EXPECT_GT(lazy, 100u);  // the comparison ran on many lazily kept packets
}

}  // namespace
}  // namespace switchboard::sio
