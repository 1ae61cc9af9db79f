#include "cluster/broker_api_client.h"

#include "absl/strings/str_cat.h"
#include "bus/routing.h"
#include "switchboard/v1/bus.pb.h"

namespace switchboard::cluster {
namespace {

// The status an ApiReply carries (codes outside absl's: Unknown).
absl::Status ReplyStatus(const v1::ApiReply& reply) {
  int code = reply.code();
  if (code < 0 || code > static_cast<int>(absl::StatusCode::kUnauthenticated)) {
    return absl::UnknownError(absl::StrCat("code ", code, ": ", reply.message()));
  }
  return absl::Status(static_cast<absl::StatusCode>(code), reply.message());
}

}  // namespace

absl::Status BrokerApiClient::Unreadable(const std::string& message_name) {
  return absl::InternalError(absl::StrCat("a broker's reply is not a ", message_name, " message"));
}

void BrokerApiClient::Call(std::string_view method, const google::protobuf::Message& request,
                           Done<std::string> done, bus::Executor executor,
                           std::chrono::milliseconds extra_time) const {
  std::string subject = bus::ApiSubject(method);
  std::chrono::milliseconds timeout = timeout_ + extra_time;
  bus_.Request(
      subject, request.SerializeAsString(), timeout,
      [done = std::move(done), subject, timeout](absl::StatusOr<bus::Message> answer) {
        if (!answer.ok()) {
          const absl::Status& status = answer.status();
          if (status.code() == absl::StatusCode::kNotFound) {
            return done(absl::UnavailableError(
                absl::StrCat("no broker answers ", subject, " (no responders on the bus)")));
          }
          if (status.code() == absl::StatusCode::kDeadlineExceeded) {
            return done(absl::DeadlineExceededError(
                absl::StrCat("no broker answered ", subject, " within ", timeout.count(), " ms")));
          }
          return done(status);
        }
        v1::ApiReply reply;
        if (!reply.ParseFromString(answer->payload)) {
          return done(Unreadable(std::string(v1::ApiReply::descriptor()->full_name())));
        }
        if (reply.code() != 0) return done(ReplyStatus(reply));
        done(std::move(*reply.mutable_response()));
      },
      std::move(executor));
}

void BrokerApiClient::Publish(const v1::PublishRequest& request, Done<v1::PublishResponse> done,
                              bus::Executor executor) const {
  // The broker answers after ack_timeout_ms (and its grace) at the latest.
  Typed("Publish", request, std::move(done), std::move(executor),
        std::chrono::milliseconds(request.ack_timeout_ms()));
}

}  // namespace switchboard::cluster
