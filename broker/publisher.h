#pragma once

// API calls turned into bus messages: Publish builds one Delivery, Join /
// Leave / Disconnect one Command, each sent unchanged on every subject its
// target needs (bus::TargetSubjects); the index says how many sockets match
// and which edges must report acks. A recoverable publish (its namespace
// announced by an edge, no acks, not volatile) is written once to the
// namespace's log instead (BrokerOptions::event_log), answered after the
// log's ack.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "broker/acks.h"
#include "broker/broker.h"
#include "broker/counters.h"
#include "broker/membership_feed.h"
#include "bus/bus.h"
#include "switchboard/v1/bus.pb.h"

namespace switchboard::broker {

class Publisher {
 public:
  // `ack_added` runs after a publish with acks registered its deadline (the
  // ticker's wake-up may need to come sooner).
  Publisher(bus::Bus& bus, const BrokerOptions& options, const MembershipFeed& feed,
            PendingAcks& acks, BrokerCounters& counters, std::function<void()> ack_added);

  // See Broker::Publish.
  void Publish(const v1::PublishRequest& request, Broker::PublishDone done);
  // Sends `command` (its action set) to the sockets `selector` matches;
  // returns the number the index matched.
  absl::StatusOr<uint64_t> SendCommand(const v1::Selector& selector, v1::Command command);
  // Returns once the completion of every append to the log has returned
  // (the log answers each: bus::AsyncPublisher within its ack timeout).
  void WaitForAppends();

 private:
  // "<broker-id>:<n>": delivery and command ids.
  std::string NextId();
  // The same bytes on every subject; Unavailable on the first failure.
  absl::Status PublishAll(const std::vector<std::string>& subjects, const std::string& payload);
  // Writes a recoverable publish to nsp's log; `done` from the log's answer.
  void AppendToLog(const std::string& nsp, std::vector<std::string> subjects, std::string payload,
                   uint64_t recipients, Broker::PublishDone done);
  void AppendFinished();

  bus::Bus& bus_;
  const BrokerOptions& options_;
  const MembershipFeed& feed_;
  PendingAcks& acks_;
  BrokerCounters& counters_;
  const std::function<void()> ack_added_;
  const std::string ack_subject_;
  std::atomic<uint64_t> next_message_{0};

  std::mutex appends_mu_;
  std::condition_variable appends_done_;
  uint64_t appends_in_flight_ = 0;  // guarded by appends_mu_
};

}  // namespace switchboard::broker
