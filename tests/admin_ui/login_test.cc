// The Admin UI's login: bcrypt checks and the session ids any edge accepts.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>

#include "admin_ui/password.h"
#include "admin_ui/session_token.h"

namespace switchboard::admin_ui {
namespace {

using namespace std::chrono_literals;

// bcrypt("secret") at cost 10, as `switchboard hash-password` or the reference's bcryptjs make.
constexpr char kHash[] = "$2b$10$OjkEInL2tbJNY5yNnQp7u.8oPuM20OyWvJxCPbvYw19DMKEwO3yPS";

TEST(PasswordTest, MatchesOnlyTheRightPassword) {
  EXPECT_TRUE(PasswordMatches("secret", kHash));
  EXPECT_FALSE(PasswordMatches("Secret", kHash));
  EXPECT_FALSE(PasswordMatches("", kHash));
  EXPECT_FALSE(PasswordMatches(std::string("secret\0x", 8), kHash));
  // Not bcrypt: refused, whatever crypt_r would make of it.
  EXPECT_FALSE(PasswordMatches("secret", "secret"));
  EXPECT_FALSE(PasswordMatches("secret", "$1$abc$def"));
  EXPECT_FALSE(PasswordMatches("secret", ""));
}

TEST(PasswordTest, CheckerAnswersOffTheCallersThread) {
  PasswordChecker checker;
  std::promise<std::pair<bool, std::thread::id>> answer;
  checker.Check("secret", kHash, [&](bool ok) {
    answer.set_value({ok, std::this_thread::get_id()});
  });
  auto [ok, thread] = answer.get_future().get();
  EXPECT_TRUE(ok);
  EXPECT_NE(thread, std::this_thread::get_id());
}

TEST(PasswordTest, CheckerRefusesPastItsQueue) {
  std::atomic<int> refused_at_once{0}, answered{0};
  {
    PasswordChecker checker(/*max_queued=*/2);
    for (int i = 0; i < 20; ++i) {
      const auto caller = std::this_thread::get_id();
      checker.Check("secret", kHash, [&, caller](bool ok) {
        if (!ok && std::this_thread::get_id() == caller) refused_at_once++;
        answered++;
      });
    }
  }  // the destructor answers what still waits
  EXPECT_EQ(answered.load(), 20);
  EXPECT_GE(refused_at_once.load(), 17);  // at most 2 queued + 1 being checked
}

TEST(SessionTokensTest, AnyCopyWithTheSameCredentialsAccepts) {
  const auto now = std::chrono::system_clock::now();
  SessionTokens edge1("admin", kHash), edge2("admin", kHash);
  const std::string token = edge1.Issue(now);
  EXPECT_TRUE(edge2.Valid(token, now + 1h));
  EXPECT_NE(edge1.Issue(now), token);  // random part
}

TEST(SessionTokensTest, RefusesExpiredForgedAndForeign) {
  const auto now = std::chrono::system_clock::now();
  SessionTokens tokens("admin", kHash, 24h);
  const std::string token = tokens.Issue(now);
  EXPECT_FALSE(tokens.Valid(token, now + 25h));
  // Another password (or user) makes other keys: a password change ends every session.
  EXPECT_FALSE(SessionTokens("admin", "$2b$10$other").Valid(token, now));
  EXPECT_FALSE(SessionTokens("root", kHash).Valid(token, now));
  // A longer expiry with the old signature.
  const size_t a = token.find('.'), b = token.rfind('.');
  std::string forged = token.substr(0, a + 1) + "99999999999" + token.substr(b);
  EXPECT_FALSE(tokens.Valid(forged, now));
  std::string flipped = token;
  flipped.back() = flipped.back() == '0' ? '1' : '0';
  EXPECT_FALSE(tokens.Valid(flipped, now));
  EXPECT_FALSE(tokens.Valid("", now));
  EXPECT_FALSE(tokens.Valid("abc", now));
  EXPECT_FALSE(tokens.Valid("a.b.c", now));
}

}  // namespace
}  // namespace switchboard::admin_ui
