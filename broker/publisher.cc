#include "broker/publisher.h"

#include <chrono>
#include <memory>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "broker/validation.h"
#include "bus/routing.h"

namespace switchboard::broker {

Publisher::Publisher(bus::Bus& bus, const BrokerOptions& options, const MembershipFeed& feed,
                     PendingAcks& acks, BrokerCounters& counters, std::function<void()> ack_added)
    : bus_(bus),
      options_(options),
      feed_(feed),
      acks_(acks),
      counters_(counters),
      ack_added_(std::move(ack_added)),
      ack_subject_(bus::AckSubject(options.broker_id)) {}

std::string Publisher::NextId() {
  return absl::StrCat(options_.broker_id, ":", next_message_.fetch_add(1) + 1);
}

absl::Status Publisher::PublishAll(const std::vector<std::string>& subjects,
                                   const std::string& payload) {
  for (const std::string& subject : subjects) {
    absl::Status status = bus_.Publish(subject, payload);
    if (!status.ok()) {
      return absl::UnavailableError(
          absl::StrCat("publish on ", subject, " failed: ", status.message()));
    }
  }
  return absl::OkStatus();
}

void Publisher::Publish(const v1::PublishRequest& request, Broker::PublishDone done) {
  if (absl::Status status = ValidatePublish(request, options_.max_ack_timeout_ms); !status.ok()) {
    done(status);
    return;
  }
  if (!bus_.connected()) {
    done(absl::UnavailableError("the bus is not connected"));
    return;
  }
  const v1::Target& target = request.target();
  const std::string nsp(bus::NamespaceOrDefault(target.namespace_()));
  const bool with_acks = request.ack_timeout_ms() > 0;
  const std::string id = NextId();

  v1::EdgeMessage message;
  v1::Delivery* delivery = message.mutable_delivery();
  delivery->set_id(id);
  *delivery->mutable_target() = target;
  delivery->mutable_target()->set_namespace_(nsp);
  delivery->set_event(request.event());
  *delivery->mutable_args() = request.args();
  delivery->set_volatile_(request.volatile_());
  delivery->set_published_unix_nanos(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count());
  if (with_acks) {
    delivery->set_ack_timeout_ms(request.ack_timeout_ms());
    delivery->set_ack_subject(ack_subject_);
  }
  const std::string payload = message.SerializeAsString();
  // Over the bus's limit no edge would get it: refused as a whole.
  if (const uint64_t limit = bus_.max_payload(); limit != 0 && payload.size() > limit) {
    done(absl::InvalidArgumentError(absl::StrCat("the message is ", payload.size(),
                                                 " bytes on the bus, over its max_payload of ",
                                                 limit, " bytes (nats-server max_payload)")));
    return;
  }
  std::vector<std::string> subjects =
      bus::TargetSubjects(nsp, target.rooms(), target.socket_ids(), target.user_ids());

  // Acks and volatile publishes are never replayed: the core subjects.
  if (options_.event_log != nullptr && !with_acks && !request.volatile_() &&
      feed_.Recoverable(nsp)) {
    AppendToLog(nsp, std::move(subjects), payload, feed_.CountRecipients(target, nsp, nullptr),
                std::move(done));
    return;
  }

  std::set<std::string> edges;
  const uint64_t recipients = feed_.CountRecipients(target, nsp, with_acks ? &edges : nullptr);
  const bool waiting = with_acks && !edges.empty();
  if (waiting) {
    acks_.Add(id, std::move(edges),
              PendingAcks::Clock::now() + std::chrono::milliseconds(request.ack_timeout_ms()) +
                  options_.ack_grace,
              std::move(done));
    ack_added_();
  }

  absl::Status status = PublishAll(subjects, payload);
  if (waiting) {
    if (status.ok()) return;  // completes from the edges' reports or at the deadline
    if (Broker::PublishDone failed = acks_.Remove(id)) failed(status);
    return;
  }
  if (!status.ok()) {
    done(status);
    return;
  }
  v1::PublishResponse response;
  // With acks but no edge holding a recipient, nobody will report.
  response.set_recipients(with_acks ? 0 : recipients);
  done(std::move(response));
}

void Publisher::AppendToLog(const std::string& nsp, std::vector<std::string> subjects,
                            std::string payload, uint64_t recipients, Broker::PublishDone done) {
  {
    std::lock_guard lock(appends_mu_);
    ++appends_in_flight_;
  }
  // Shared: Append either runs the completion or, failing, leaves it unrun,
  // and `done` must run exactly once either way.
  auto answer = std::make_shared<Broker::PublishDone>(std::move(done));
  auto respond = [recipients](const Broker::PublishDone& done) {
    v1::PublishResponse response;
    response.set_recipients(recipients);
    done(std::move(response));
  };
  absl::Status status = options_.event_log->Append(
      nsp, payload,
      [this, nsp, answer, respond, subjects = std::move(subjects),
       payload](absl::StatusOr<uint64_t> seq) {
        if (seq.ok()) {
          counters_.log_stored.fetch_add(1, std::memory_order_relaxed);
          respond(*answer);
        } else if (absl::IsNotFound(seq.status())) {
          // No stream yet (its edge has not created it) or any more: edges
          // deliver the core subjects live, without an offset.
          counters_.log_fallback.fetch_add(1, std::memory_order_relaxed);
          if (absl::Status sent = PublishAll(subjects, payload); sent.ok()) {
            respond(*answer);
          } else {
            (*answer)(sent);
          }
        } else {
          counters_.log_failed.fetch_add(1, std::memory_order_relaxed);
          (*answer)(absl::UnavailableError(
              absl::StrCat("the recovery log of ", nsp,
                           " did not store the publish: ", seq.status().ToString())));
        }
        AppendFinished();
      });
  if (!status.ok()) {
    counters_.log_failed.fetch_add(1, std::memory_order_relaxed);
    (*answer)(absl::UnavailableError(
        absl::StrCat("the recovery log of ", nsp, " refused the publish: ", status.ToString())));
    AppendFinished();
  }
}

void Publisher::AppendFinished() {
  std::lock_guard lock(appends_mu_);
  if (--appends_in_flight_ == 0) appends_done_.notify_all();
}

void Publisher::WaitForAppends() {
  std::unique_lock lock(appends_mu_);
  appends_done_.wait(lock, [&] { return appends_in_flight_ == 0; });
}

absl::StatusOr<uint64_t> Publisher::SendCommand(const v1::Selector& selector, v1::Command command) {
  if (absl::Status status = ValidateSelector(selector); !status.ok()) return status;
  if (!bus_.connected()) return absl::UnavailableError("the bus is not connected");
  const std::string nsp(bus::NamespaceOrDefault(selector.namespace_()));
  command.set_id(NextId());
  *command.mutable_selector() = selector;
  command.mutable_selector()->set_namespace_(nsp);
  v1::EdgeMessage message;
  *message.mutable_command() = std::move(command);
  // all_sockets has no other criterion: TargetSubjects picks the namespace.
  const std::vector<std::string> subjects =
      bus::TargetSubjects(nsp, selector.rooms(), selector.socket_ids(), selector.user_ids());
  const uint64_t matched = feed_.CountMatched(selector, nsp);
  if (absl::Status status = PublishAll(subjects, message.SerializeAsString()); !status.ok()) {
    return status;
  }
  return matched;
}

}  // namespace switchboard::broker
