// `switchboard hash-password` (services/main.cc, admin_ui/password_hash.h): the real binary, a
// password on its stdin, the hash on its stdout checked with libcrypt as the login checks it.
#include <crypt.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <regex>
#include <string>

#include "admin_ui/password_hash.h"

namespace switchboard::admin_ui {
namespace {

std::string SwitchboardBin() {
  const char* env = std::getenv("SWITCHBOARD_BIN");
  return env != nullptr ? env : SWITCHBOARD_BIN;
}

struct Output {
  int exit_status = -1;
  std::string out;  // stdout only
};

// Runs `switchboard hash-password` with `input` on its stdin (through a file: no shell quoting).
Output HashPasswordCommand(const std::string& input) {
  char path[] = "/tmp/sb-hash-password-XXXXXX";
  const int fd = ::mkstemp(path);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(::write(fd, input.data(), input.size()), static_cast<ssize_t>(input.size()));
  ::close(fd);
  Output run;
  const std::string command = SwitchboardBin() + " hash-password < " + path + " 2>/dev/null";
  std::FILE* pipe = ::popen(command.c_str(), "r");
  EXPECT_NE(pipe, nullptr);
  if (pipe == nullptr) return run;
  char buffer[256];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) run.out.append(buffer, n);
  const int status = ::pclose(pipe);
  ::unlink(path);
  run.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

bool Matches(const std::string& password, const std::string& hash) {
  auto data = std::make_unique<crypt_data>();
  std::memset(data.get(), 0, sizeof(crypt_data));
  const char* out = crypt_r(password.c_str(), hash.c_str(), data.get());
  return out != nullptr && hash == out;
}

const std::regex kBcrypt(R"(^\$2b\$10\$[./A-Za-z0-9]{53}$)");

TEST(HashPasswordTest, PrintsABcryptHashOfTheLine) {
  Output run = HashPasswordCommand("s3cret pass\n");
  ASSERT_EQ(run.exit_status, 0);
  ASSERT_FALSE(run.out.empty());
  ASSERT_EQ(run.out.back(), '\n');
  const std::string hash = run.out.substr(0, run.out.size() - 1);
  EXPECT_TRUE(std::regex_match(hash, kBcrypt)) << hash;
  EXPECT_TRUE(Matches("s3cret pass", hash));
  EXPECT_FALSE(Matches("s3cret pass\n", hash));  // the newline is not part of it
  EXPECT_FALSE(Matches("s3cret", hash));
  // A fresh salt each time.
  Output again = HashPasswordCommand("s3cret pass\n");
  EXPECT_NE(again.out, run.out);
  EXPECT_TRUE(Matches("s3cret pass", again.out.substr(0, again.out.size() - 1)));
}

TEST(HashPasswordTest, ALineWithoutNewlineOrWithCrlf) {
  for (const std::string input : {"pw", "pw\r\n", "pw\nignored\n"}) {
    Output run = HashPasswordCommand(input);
    ASSERT_EQ(run.exit_status, 0) << input;
    EXPECT_TRUE(Matches("pw", run.out.substr(0, run.out.size() - 1))) << input;
  }
}

TEST(HashPasswordTest, RefusesAnEmptyPassword) {
  for (const std::string input : {"", "\n", "\r\n"}) {
    Output run = HashPasswordCommand(input);
    EXPECT_EQ(run.exit_status, 1) << "[" << input << "]";
    EXPECT_EQ(run.out, "");
  }
}

TEST(HashPasswordTest, TheFunction) {
  auto hash = HashPassword("pw");
  ASSERT_TRUE(hash.ok()) << hash.status();
  EXPECT_TRUE(std::regex_match(*hash, kBcrypt)) << *hash;
  EXPECT_TRUE(Matches("pw", *hash));
  auto cheap = HashPassword("pw", 4);
  ASSERT_TRUE(cheap.ok());
  EXPECT_EQ(cheap->substr(0, 7), "$2b$04$");
  EXPECT_FALSE(HashPassword("").ok());
  EXPECT_FALSE(HashPassword(std::string("a\0b", 3)).ok());
}

}  // namespace
}  // namespace switchboard::admin_ui
