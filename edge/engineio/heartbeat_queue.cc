#include "edge/engineio/heartbeat_queue.h"

#include <memory>

namespace switchboard::eio {

HeartbeatQueue::HeartbeatQueue(boost::asio::io_context& ioc) : timer_(ioc) {}

// Sessions still queued are unlinked by the list (auto-unlink hooks).
HeartbeatQueue::~HeartbeatQueue() = default;

void HeartbeatQueue::Schedule(Session& session, Clock::time_point due) {
  session.heartbeat_hook_.unlink();
  session.heartbeat_due_ = due;
  // Nearly always the last: walk back past the few that are due later.
  auto pos = queue_.end();
  while (pos != queue_.begin() && std::prev(pos)->heartbeat_due_ > due) --pos;
  queue_.insert(pos, session);
  Arm();
}

void HeartbeatQueue::Arm() {
  if (queue_.empty()) return;
  Clock::time_point first = queue_.front().heartbeat_due_;
  // An armed timer that fires no later than the first deadline re-arms then.
  if (armed_ && armed_at_ <= first) return;
  armed_ = true;
  armed_at_ = first;
  timer_.expires_at(first);
  timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;  // re-armed earlier, or the queue is gone
    armed_ = false;
    OnTimer();
  });
}

void HeartbeatQueue::OnTimer() {
  Clock::time_point now = Clock::now();
  while (!queue_.empty() && queue_.front().heartbeat_due_ <= now) {
    Session& session = queue_.front();
    queue_.pop_front();
    // The session may end (and go) inside its own call.
    auto keep = session.shared_from_this();
    session.OnHeartbeatTimer();
  }
  Arm();
}

}  // namespace switchboard::eio
