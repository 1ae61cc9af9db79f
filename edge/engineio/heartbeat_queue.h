#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/intrusive/list.hpp>
#include <chrono>

#include "edge/engineio/session.h"

namespace switchboard::eio {

// The heartbeat deadlines of one shard's sessions in one phase (waiting to
// send a ping, or waiting for the pong). Every session of a phase waits the
// same span, so the order of arrival is the order of the deadlines: one
// list and one timer serve the whole shard, and a session holds a list hook
// instead of a timer with a pending wait (~200 bytes per connection).
class HeartbeatQueue {
 public:
  using Clock = std::chrono::steady_clock;

  explicit HeartbeatQueue(boost::asio::io_context& ioc);
  ~HeartbeatQueue();
  HeartbeatQueue(const HeartbeatQueue&) = delete;
  HeartbeatQueue& operator=(const HeartbeatQueue&) = delete;

  // Queues `session` (taken out of any queue first) to have
  // Session::OnHeartbeatTimer called at `due`.
  void Schedule(Session& session, Clock::time_point due);

 private:
  void Arm();
  void OnTimer();

  using List = boost::intrusive::list<
      Session, boost::intrusive::member_hook<Session, HeartbeatHook, &Session::heartbeat_hook_>,
      boost::intrusive::constant_time_size<false>>;

  boost::asio::steady_timer timer_;
  List queue_;
  bool armed_ = false;
  Clock::time_point armed_at_;
};

}  // namespace switchboard::eio
