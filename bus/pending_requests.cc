#include "bus/pending_requests.h"

#include <utility>

namespace switchboard::bus::internal {

uint64_t PendingRequests::Add(Pending p, std::chrono::milliseconds timeout) {
  uint64_t id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    id = next_id_++;
    pending_.emplace(id, std::move(p));
  }
  std::weak_ptr<PendingRequests> weak = weak_from_this();
  uint64_t timer = worker_->PostAfter(timeout, [weak, id] {
    auto self = weak.lock();
    if (!self) return;
    if (auto p = self->Take(id)) {
      Complete(std::move(*p), absl::DeadlineExceededError("request timed out"));
    }
  });
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pending_.find(id);
  if (it != pending_.end()) it->second.timer = timer;
  return id;
}

std::optional<PendingRequests::Pending> PendingRequests::Take(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pending_.find(id);
  if (it == pending_.end()) return std::nullopt;
  Pending p = std::move(it->second);
  pending_.erase(it);
  return p;
}

void PendingRequests::Finish(uint64_t id, absl::StatusOr<Message> result) {
  if (auto p = Take(id)) {
    worker_->Cancel(p->timer);
    Complete(std::move(*p), std::move(result));
  }
}

void PendingRequests::CancelAll(const absl::Status& status) {
  std::map<uint64_t, Pending> pending;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending.swap(pending_);
  }
  for (auto& [id, p] : pending) {
    worker_->Cancel(p.timer);
    Complete(std::move(p), status);
  }
}

void PendingRequests::Complete(Pending p, absl::StatusOr<Message> result) {
  p.executor([done = std::move(p.done), result = std::move(result)]() mutable {
    done(std::move(result));
  });
}

}  // namespace switchboard::bus::internal
