#include "bus/subject.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

namespace switchboard::bus {
namespace {

TEST(SubjectTest, Valid) {
  EXPECT_TRUE(ValidSubject("a"));
  EXPECT_TRUE(ValidSubject("a.b.c"));
  EXPECT_TRUE(ValidSubject("a.b*c.d>"));  // wildcard chars inside a token are literal
  EXPECT_FALSE(ValidSubject(""));
  EXPECT_FALSE(ValidSubject("a..b"));
  EXPECT_FALSE(ValidSubject(".a"));
  EXPECT_FALSE(ValidSubject("a."));
  EXPECT_FALSE(ValidSubject("a b"));
  EXPECT_FALSE(ValidSubject("a\tb"));
  EXPECT_FALSE(ValidSubject(std::string("a\0b", 3)));
  EXPECT_FALSE(ValidSubject("a.*"));
  EXPECT_FALSE(ValidSubject("a.>"));
  EXPECT_TRUE(ValidSubject("a.*", true));
  EXPECT_TRUE(ValidSubject("a.>", true));
  EXPECT_TRUE(ValidSubject("*.*.>", true));
  EXPECT_TRUE(ValidSubject(">", true));
  EXPECT_FALSE(ValidSubject("a.>.b", true));
}

TEST(SubjectTest, Matches) {
  EXPECT_TRUE(SubjectMatches("a.b", "a.b"));
  EXPECT_FALSE(SubjectMatches("a.b", "a.c"));
  EXPECT_FALSE(SubjectMatches("a.b", "a.b.c"));
  EXPECT_FALSE(SubjectMatches("a.b.c", "a.b"));
  EXPECT_TRUE(SubjectMatches("a.*", "a.b"));
  EXPECT_FALSE(SubjectMatches("a.*", "a"));
  EXPECT_FALSE(SubjectMatches("a.*", "a.b.c"));
  EXPECT_TRUE(SubjectMatches("*.b.*", "a.b.c"));
  EXPECT_TRUE(SubjectMatches("a.>", "a.b"));
  EXPECT_TRUE(SubjectMatches("a.>", "a.b.c.d"));
  EXPECT_FALSE(SubjectMatches("a.>", "a"));
  EXPECT_TRUE(SubjectMatches(">", "x"));
  EXPECT_TRUE(SubjectMatches(">", "x.y"));
  EXPECT_TRUE(SubjectMatches("*.>", "x.y"));
  EXPECT_FALSE(SubjectMatches("*.>", "x"));
  EXPECT_FALSE(SubjectMatches("a.b*", "a.bc"));  // not a wildcard
}

TEST(SubjectTest, EncodeTokenIsOneSafeToken) {
  const std::vector<std::string> names = {
      "", "a", "ab", "abc", "abcd", "room.with.dots", "with space", "*", ">", "a.*.>",
      "ünïcødé 🚀", std::string("\0", 1), std::string("\0\xff\x01", 3), "_", "-"};
  std::set<std::string> tokens;
  for (const auto& name : names) {
    std::string token = EncodeToken(name);
    SCOPED_TRACE(token);
    EXPECT_TRUE(ValidSubject(token));
    EXPECT_EQ(token.find('.'), std::string::npos);
    EXPECT_NE(token, "*");
    EXPECT_NE(token, ">");
    EXPECT_TRUE(ValidSubject("room." + token + ".x"));
    auto decoded = DecodeToken(token);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, name);
    tokens.insert(token);
  }
  EXPECT_EQ(tokens.size(), names.size());  // injective on these
  EXPECT_EQ(EncodeToken(""), "_");
  EXPECT_EQ(EncodeToken("foo"), "Zm9v");
}

TEST(SubjectTest, EncodeTokenRoundTripsRandomBytes) {
  std::mt19937 rng(42);
  for (int i = 0; i < 500; ++i) {
    std::string s(rng() % 40, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    auto decoded = DecodeToken(EncodeToken(s));
    ASSERT_TRUE(decoded.ok());
    ASSERT_EQ(*decoded, s);
  }
}

TEST(SubjectTest, DecodeTokenRejectsWhatEncodeCannotProduce) {
  EXPECT_FALSE(DecodeToken("").ok());
  EXPECT_FALSE(DecodeToken("a").ok());      // length 1 mod 4
  EXPECT_FALSE(DecodeToken("ab=").ok());    // padding
  EXPECT_FALSE(DecodeToken("a.b").ok());
  EXPECT_FALSE(DecodeToken("Zm9=").ok());
  EXPECT_FALSE(DecodeToken("Zh").ok());     // non-zero leftover bits
  EXPECT_TRUE(DecodeToken("Zg").ok());
}

}  // namespace
}  // namespace switchboard::bus
