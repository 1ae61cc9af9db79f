#pragma once

// Acks both ways: the edges' reports for a Publish with ack_timeout_ms
// (sb.v1.ack.<broker>), and the API's answers to forwarded client events'
// acks sent to the edge the ack_ref names (sb.v1.fack.<edge>).

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "broker/broker.h"
#include "bus/bus.h"
#include "switchboard/v1/bus.pb.h"

namespace switchboard::broker {

// The publishes waiting for their edges' AckReports, by delivery id. Each
// `done` runs exactly once, outside the lock: when every expected edge
// reported, at its deadline with what arrived, or at CompleteAll.
class PendingAcks {
 public:
  using Clock = std::chrono::steady_clock;

  // Before the delivery is published: an inline bus may report at once.
  void Add(const std::string& delivery_id, std::set<std::string> expected_edges,
           Clock::time_point deadline, Broker::PublishDone done);
  // For a delivery whose publish failed: its `done`, or null when the edges'
  // reports completed it already.
  Broker::PublishDone Remove(const std::string& delivery_id);
  void OnReport(const v1::AckReport& report);
  // Completes those whose deadline passed.
  void ExpireDue(Clock::time_point now);
  std::optional<Clock::time_point> NextDeadline() const;
  // Shutdown: completes every one with what arrived.
  void CompleteAll();

 private:
  struct Pending {
    std::set<std::string> expected;  // edges the index says hold recipients
    std::set<std::string> reported;
    Clock::time_point deadline;
    v1::PublishResponse response;
    Broker::PublishDone done;
  };

  mutable std::mutex mu_;
  std::map<std::string, Pending> pending_ ABSL_GUARDED_BY(mu_);
  std::set<std::pair<Clock::time_point, std::string>> deadlines_ ABSL_GUARDED_BY(mu_);
};

// Asks `edge` to answer a client's ack; `done` gets OK once the edge confirms
// it did, else Broker::Ack's statuses (NotFound: unknown ref or edge gone;
// Unavailable: no confirmation within `timeout`).
void SendForwardAck(bus::Bus& bus, std::chrono::milliseconds timeout, const std::string& edge,
                    const v1::ForwardAck& message, Broker::AckDone done);

}  // namespace switchboard::broker
