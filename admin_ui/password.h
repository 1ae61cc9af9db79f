#pragma once
// The Admin UI's login: bcrypt password checks (libcrypt's crypt_r, as the reference's bcryptjs
// compare), off the I/O threads: one check costs tens of milliseconds at cost 10.

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace switchboard::admin_ui {

// True when `password` hashes to `hash` (a bcrypt hash); false for any other hash.
bool PasswordMatches(std::string_view password, const std::string& hash);

// One thread checks the logins in turn; a bounded queue, so a flood of logins costs one core
// at most and no memory beyond the bound.
class PasswordChecker {
 public:
  explicit PasswordChecker(size_t max_queued = 64);
  ~PasswordChecker();  // the checks still queued answer false
  PasswordChecker(const PasswordChecker&) = delete;
  PasswordChecker& operator=(const PasswordChecker&) = delete;

  // Calls `done(matches)` on the checker's thread; `done(false)` at once, on the caller's,
  // when `max_queued` checks wait already.
  void Check(std::string password, std::string hash, std::function<void(bool)> done);

 private:
  struct Job {
    std::string password;
    std::string hash;
    std::function<void(bool)> done;
  };
  void Loop();

  const size_t max_queued_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace switchboard::admin_ui
