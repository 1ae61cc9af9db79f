#include "bus/jetstream.h"

#include <nats/nats.h>

#include "absl/strings/str_cat.h"
#include "bus/nats_status.h"

namespace switchboard::bus {

using internal::JsToStatus;
using internal::ToStatus;

JetStream::JetStream(std::shared_ptr<natsConnection> conn, Options options)
    : conn_(std::move(conn)), options_(options), js_(nullptr, &jsCtx_Destroy) {}

JetStream::~JetStream() = default;

absl::StatusOr<std::unique_ptr<JetStream>> JetStream::Create(std::shared_ptr<natsConnection> conn,
                                                             Options options) {
  if (conn == nullptr) return absl::InvalidArgumentError("no NATS connection");
  std::unique_ptr<JetStream> out(new JetStream(std::move(conn), options));
  jsOptions opts;
  jsOptions_Init(&opts);
  opts.Wait = options.api_timeout.count();
  jsCtx* raw = nullptr;
  if (natsStatus s = natsConnection_JetStream(&raw, out->conn_.get(), &opts); s != NATS_OK) {
    return ToStatus(s, "natsConnection_JetStream");
  }
  out->js_.reset(raw);
  return out;
}

std::string JetStream::server_url() const {
  char buf[256] = {0};
  if (natsConnection_GetConnectedUrl(conn_.get(), buf, sizeof(buf)) != NATS_OK || buf[0] == 0) {
    return "(not connected)";
  }
  return buf;
}

absl::Status JetStream::Check() {
  jsAccountInfo* raw = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_GetAccountInfo(&raw, js_.get(), nullptr, &code);
  std::unique_ptr<jsAccountInfo, void (*)(jsAccountInfo*)> info(raw, &jsAccountInfo_Destroy);
  if (s == NATS_OK) return absl::OkStatus();
  // Without JetStream nobody serves $JS.API.INFO: "no responders" (or the
  // server says so itself when JetStream is off for the account).
  if (s == NATS_NO_RESPONDERS || code == JSNotEnabledErr || code == JSNotEnabledForAccountErr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the NATS server at ", server_url(),
        " has no JetStream: start nats-server with -js (or `jetstream: enabled` in its "
        "configuration, and JetStream enabled for this account)"));
  }
  return JsToStatus(s, code, absl::StrCat("JetStream account info from ", server_url()));
}

absl::StatusOr<uint64_t> JetStream::Publish(std::string_view subject, std::string_view payload) {
  std::string subj(subject);
  jsPubAck* raw = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_Publish(&raw, js_.get(), subj.c_str(), payload.data(),
                            static_cast<int>(payload.size()), nullptr, &code);
  std::unique_ptr<jsPubAck, void (*)(jsPubAck*)> ack(raw, &jsPubAck_Destroy);
  if (s != NATS_OK) {
    if (s == NATS_NO_RESPONDERS) {
      return absl::NotFoundError(absl::StrCat("JetStream publish to ", subj,
                                              ": no stream takes this subject (or no JetStream)"));
    }
    return JsToStatus(s, code, absl::StrCat("JetStream publish to ", subj));
  }
  return ack->Sequence;
}

absl::Status CheckJetStream(std::shared_ptr<natsConnection> conn) {
  absl::StatusOr<std::unique_ptr<JetStream>> js = JetStream::Create(std::move(conn));
  if (!js.ok()) return js.status();
  return (*js)->Check();
}

}  // namespace switchboard::bus
