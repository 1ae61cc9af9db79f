#include "broker/acks.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bus/routing.h"

namespace switchboard::broker {

void PendingAcks::Add(const std::string& delivery_id, std::set<std::string> expected_edges,
                      Clock::time_point deadline, Broker::PublishDone done) {
  std::lock_guard lock(mu_);
  Pending& pending = pending_[delivery_id];
  pending.expected = std::move(expected_edges);
  pending.deadline = deadline;
  pending.done = std::move(done);
  deadlines_.insert({deadline, delivery_id});
}

Broker::PublishDone PendingAcks::Remove(const std::string& delivery_id) {
  std::lock_guard lock(mu_);
  auto it = pending_.find(delivery_id);
  if (it == pending_.end()) return nullptr;
  Broker::PublishDone done = std::move(it->second.done);
  deadlines_.erase({it->second.deadline, delivery_id});
  pending_.erase(it);
  return done;
}

void PendingAcks::OnReport(const v1::AckReport& report) {
  Broker::PublishDone done;
  v1::PublishResponse response;
  {
    std::lock_guard lock(mu_);
    auto it = pending_.find(report.delivery_id());
    if (it == pending_.end()) return;  // late, or not ours
    Pending& pending = it->second;
    if (!pending.reported.insert(report.edge_id()).second) return;  // one report per edge
    pending.response.set_recipients(pending.response.recipients() + report.recipients());
    for (const v1::Ack& ack : report.acks()) *pending.response.add_acks() = ack;
    if (!std::includes(pending.reported.begin(), pending.reported.end(), pending.expected.begin(),
                       pending.expected.end())) {
      return;
    }
    done = std::move(pending.done);
    response = std::move(pending.response);
    deadlines_.erase({pending.deadline, it->first});
    pending_.erase(it);
  }
  done(std::move(response));
}

void PendingAcks::ExpireDue(Clock::time_point now) {
  std::vector<Pending> finished;
  {
    std::lock_guard lock(mu_);
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
      auto it = pending_.find(deadlines_.begin()->second);
      deadlines_.erase(deadlines_.begin());
      if (it == pending_.end()) continue;
      finished.push_back(std::move(it->second));
      pending_.erase(it);
    }
  }
  for (Pending& pending : finished) pending.done(std::move(pending.response));
}

std::optional<PendingAcks::Clock::time_point> PendingAcks::NextDeadline() const {
  std::lock_guard lock(mu_);
  if (deadlines_.empty()) return std::nullopt;
  return deadlines_.begin()->first;
}

void PendingAcks::CompleteAll() {
  std::map<std::string, Pending> pending;
  {
    std::lock_guard lock(mu_);
    pending.swap(pending_);
    deadlines_.clear();
  }
  for (auto& [id, ack] : pending) ack.done(std::move(ack.response));
}

void SendForwardAck(bus::Bus& bus, std::chrono::milliseconds timeout, const std::string& edge,
                    const v1::ForwardAck& message, Broker::AckDone done) {
  const std::string& ref = message.ack_ref();
  bus.Request(
      bus::ForwardAckSubject(edge), message.SerializeAsString(), timeout,
      [done = std::move(done), ref, edge](absl::StatusOr<bus::Message> reply) {
        if (!reply.ok()) {
          if (absl::IsNotFound(reply.status())) {
            done(absl::NotFoundError(absl::StrCat("ack_ref ", ref, ": edge ", edge, " is gone")));
          } else {
            done(absl::UnavailableError(absl::StrCat(
                "ack_ref ", ref, ": edge ", edge, " did not confirm: ", reply.status().message())));
          }
          return;
        }
        v1::ForwardAckResult result;
        if (!result.ParseFromString(reply->payload)) {
          done(absl::UnavailableError(absl::StrCat("ack_ref ", ref, ": malformed confirmation")));
        } else if (!result.delivered()) {
          done(absl::NotFoundError(
              absl::StrCat("ack_ref ", ref, " is unknown, already answered or timed out")));
        } else {
          done(absl::OkStatus());
        }
      });
}

}  // namespace switchboard::broker
