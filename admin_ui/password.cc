#include "admin_ui/password.h"

#include <crypt.h>
#include <openssl/crypto.h>

#include <cstring>
#include <memory>

namespace switchboard::admin_ui {

bool PasswordMatches(std::string_view password, const std::string& hash) {
  if (!hash.starts_with("$2")) return false;  // bcrypt only: no weaker scheme by accident
  const std::string pw(password);
  if (pw.find('\0') != std::string::npos) return false;
  auto data = std::make_unique<crypt_data>();  // ~32 KiB: not on the stack
  std::memset(data.get(), 0, sizeof(crypt_data));
  const char* out = crypt_r(pw.c_str(), hash.c_str(), data.get());
  if (out == nullptr || out[0] == '*') return false;  // "*0" / "*1": failure
  return std::strlen(out) == hash.size() && CRYPTO_memcmp(out, hash.data(), hash.size()) == 0;
}

PasswordChecker::PasswordChecker(size_t max_queued)
    : max_queued_(max_queued), thread_([this] { Loop(); }) {}

PasswordChecker::~PasswordChecker() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
  for (Job& job : jobs_) job.done(false);
}

void PasswordChecker::Check(std::string password, std::string hash,
                            std::function<void(bool)> done) {
  {
    std::lock_guard lock(mu_);
    if (!stopping_ && jobs_.size() < max_queued_) {
      jobs_.push_back(Job{std::move(password), std::move(hash), std::move(done)});
      cv_.notify_one();
      return;
    }
  }
  done(false);
}

void PasswordChecker::Loop() {
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
    if (stopping_) return;
    Job job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    job.done(PasswordMatches(job.password, job.hash));
    lock.lock();
  }
}

}  // namespace switchboard::admin_ui
