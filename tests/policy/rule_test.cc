#include "policy/rule.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace switchboard::policy {
namespace {

using ::testing::HasSubstr;

TEST(MatchesTest, Types) {
  EXPECT_TRUE(Matches(Json("x"), ValueType::kString));
  EXPECT_FALSE(Matches(Json(1), ValueType::kString));
  EXPECT_TRUE(Matches(Json(1), ValueType::kInteger));
  EXPECT_FALSE(Matches(Json(1.5), ValueType::kInteger));
  EXPECT_TRUE(Matches(Json(1.5), ValueType::kNumber));
  EXPECT_TRUE(Matches(Json::object(), ValueType::kObject));
  EXPECT_FALSE(Matches(Json(nullptr), ValueType::kAny));
  EXPECT_FALSE(Matches(Json(Json::value_t::discarded), ValueType::kAny));
  EXPECT_TRUE(Matches(Json(false), ValueType::kAny));
}

TEST(ParseRuleTest, ErrorsNameThePathGiven) {
  auto rule =
      ParseRule(Json{{"event", "a"}, {"action", "relay"}, {"target", {{"room", 5}}}}, "rules[3]");
  ASSERT_FALSE(rule.ok());
  EXPECT_THAT(std::string(rule.status().message()),
              HasSubstr("rules[3].target.room: expected a string"));
}

TEST(ParseRuleTest, JoinDefaultsToTheRoomArgument) {
  auto rule = ParseRule(Json{{"event", "join"}, {"action", "join"}}, "r");
  ASSERT_TRUE(rule.ok()) << rule.status();
  ASSERT_TRUE(rule->room.has_value());
  const Json args = Json::array({Json{{"room", "lobby"}}});
  RuleContext ctx;
  ctx.args = &args;
  EXPECT_EQ(rule->room->Evaluate(ctx).value(), "lobby");
}

TEST(ParseEventNameTest, ReservedNamesRefused) {
  EXPECT_FALSE(ParseEventName(Json("disconnect"), "e").ok());
  EXPECT_FALSE(ParseEventName(Json(""), "e").ok());
  EXPECT_EQ(ParseEventName(Json("chat"), "e").value(), "chat");
}

}  // namespace
}  // namespace switchboard::policy
