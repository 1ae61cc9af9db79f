#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <utility>

namespace switchboard::edge {

// Held by an HTTP connection while it has no request in progress (just
// accepted, in its TLS handshake, waiting for a request's headers, idle
// between keep-alive requests): such connections are capped (HttpOptions::max_pending_connections),
// so that idle sockets cannot fill the descriptor table. Empty: no slot held.
// The count is shared: a connection still queued in an I/O context may be
// destroyed after the server that counted it.
class PendingSlot {
 public:
  PendingSlot() = default;
  explicit PendingSlot(std::shared_ptr<std::atomic<size_t>> count) : count_(std::move(count)) {}
  PendingSlot(PendingSlot&& other) noexcept = default;
  PendingSlot& operator=(PendingSlot&& other) noexcept {
    if (this != &other) {
      Release();
      count_ = std::move(other.count_);
    }
    return *this;
  }
  ~PendingSlot() { Release(); }
  explicit operator bool() const { return count_ != nullptr; }
  void Release() {
    if (count_ != nullptr) std::exchange(count_, nullptr)->fetch_sub(1, std::memory_order_relaxed);
  }

 private:
  std::shared_ptr<std::atomic<size_t>> count_;
};

}  // namespace switchboard::edge
