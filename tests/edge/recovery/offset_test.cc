#include "edge/recovery/offset.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace switchboard::recovery {
namespace {

std::vector<eio::Frame> Frames(std::string text, int attachments = 0) {
  std::vector<eio::Frame> frames{{std::make_shared<const std::string>(std::move(text)), false}};
  for (int i = 0; i < attachments; ++i) {
    frames.push_back({std::make_shared<const std::string>("\x01\x02"), true});
  }
  return frames;
}

std::string With(const std::string& text, uint64_t offset, int attachments = 0) {
  auto out = WithOffset(Frames(text, attachments), offset);
  return out ? *out->front().bytes : "<not recoverable>";
}

TEST(OffsetTest, AppendedAsTheLastArgument) {
  EXPECT_EQ(With(R"(42["ev",1])", 7), R"(42["ev",1,"7"])");
  EXPECT_EQ(With(R"(42["ev"])", 7), R"(42["ev","7"])");
  EXPECT_EQ(With(R"(42/chat,["ev",{"a":[1]}])", 18446744073709551615u),
            R"(42/chat,["ev",{"a":[1]},"18446744073709551615"])");
}

TEST(OffsetTest, BinaryEventsKeepTheirAttachments) {
  auto frames = Frames(R"(451-/chat,["ev",{"_placeholder":true,"num":0}])", 1);
  auto out = WithOffset(frames, 3);
  ASSERT_TRUE(out);
  EXPECT_EQ(*out->front().bytes, R"(451-/chat,["ev",{"_placeholder":true,"num":0},"3"])");
  ASSERT_EQ(out->size(), 2u);
  EXPECT_EQ(out->back().bytes, frames.back().bytes) << "shared, not copied";
}

TEST(OffsetTest, OnlyEventsWithoutAckIdsAreRecoverable) {
  EXPECT_FALSE(IsRecoverable(Frames(R"(4212["ev"])"))) << "an ack id";
  EXPECT_FALSE(IsRecoverable(Frames(R"(42/chat,5["ev"])"))) << "an ack id after the namespace";
  EXPECT_FALSE(IsRecoverable(Frames(R"(43/chat,5[1])"))) << "an ACK";
  EXPECT_FALSE(IsRecoverable(Frames(R"(40{"sid":"x"})"))) << "a CONNECT";
  EXPECT_FALSE(IsRecoverable({})) << "nothing";
  EXPECT_TRUE(IsRecoverable(Frames(R"(42["ev"])")));
}

TEST(OffsetTest, ParsesOnlyDecimalUint64) {
  EXPECT_EQ(ParseOffset("0"), 0u);
  EXPECT_EQ(ParseOffset("18446744073709551615"), 18446744073709551615u);
  EXPECT_FALSE(ParseOffset(""));
  EXPECT_FALSE(ParseOffset("-1"));
  EXPECT_FALSE(ParseOffset("12a"));
  EXPECT_FALSE(ParseOffset("18446744073709551616")) << "overflow";
  EXPECT_FALSE(ParseOffset("1-0")) << "a Redis stream id is not ours";
}

}  // namespace
}  // namespace switchboard::recovery
