#include "bus/js_range.h"

#include <nats/nats.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "bus/nats_status.h"

namespace switchboard::bus {

using internal::JsToStatus;
using internal::ToStatus;

namespace {

using MsgHandle = std::unique_ptr<natsMsg, void (*)(natsMsg*)>;
using MetaHandle = std::unique_ptr<jsMsgMetaData, void (*)(jsMsgMetaData*)>;

// Unsubscribing deletes the ephemeral consumer at once (destroying alone
// would leave it to its inactivity threshold).
struct SubscriptionCloser {
  void operator()(natsSubscription* sub) const {
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
  }
};

StoredMessage CopyOut(natsMsg* m, uint64_t seq) {
  StoredMessage out;
  out.seq = seq;
  if (const char* s = natsMsg_GetSubject(m)) out.subject = s;
  int len = natsMsg_GetDataLength(m);
  if (len > 0) out.payload.assign(natsMsg_GetData(m), static_cast<size_t>(len));
  return out;
}

}  // namespace

// How: the first message of the range comes from a direct get
// ("next message matching `subject` at or after after+1"): one request,
// answered from the stream's index, and it is all an empty range costs
// (the common restore). It also skips a trimmed start for free. The rest
// comes from an ordered push consumer starting right after that message,
// filtered on `subject`: the server streams the messages in order with
// flow control, and each carries how many matching messages follow it
// (NumPending), so the read stops at `upto` or at the last matching message
// without a timeout. A direct get per message would cost a round trip per
// message (1,000 missed packets: 1,000 round trips); nats-server 2.9 has no
// batched direct get. The consumer is ephemeral, in memory, and deleted on
// return. When the stream goes on past `upto`, what the server has already
// pushed beyond it (at most its flow-control window) is dropped unread; a
// restore usually reads up to the end, where there is nothing more.
absl::StatusOr<Range> ReadRange(JetStream& js, std::string_view stream, std::string_view subject,
                                uint64_t after, uint64_t upto, const RangeOptions& options) {
  Range range;
  if (upto <= after || options.max_messages == 0) return range;
  const std::string stream_name(stream);
  const std::string filter(subject);
  if (filter.empty()) return absl::InvalidArgumentError("ReadRange needs a subject");

  jsOptions opts;
  jsOptions_Init(&opts);
  opts.Wait = options.timeout.count();
  jsDirectGetMsgOptions dg;
  jsDirectGetMsgOptions_Init(&dg);
  dg.Sequence = after + 1;
  dg.NextBySubject = filter.c_str();
  natsMsg* raw = nullptr;
  natsStatus s = js_DirectGetMsg(&raw, js.native(), stream_name.c_str(), &opts, &dg);
  MsgHandle first(raw, &natsMsg_Destroy);
  if (s == NATS_NOT_FOUND) return range;  // nothing after `after`
  if (s == NATS_NO_RESPONDERS) {
    return absl::NotFoundError(absl::StrCat("stream ", stream_name, " not found"));
  }
  if (s == NATS_TIMEOUT) {
    // JetStream's API takes the request but ignores a direct get for a
    // stream that does not exist (or does not allow direct get): tell which.
    jsStreamInfo* info = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    natsStatus is = js_GetStreamInfo(&info, js.native(), stream_name.c_str(), nullptr, &code);
    jsStreamInfo_Destroy(info);
    if (is != NATS_OK) return JsToStatus(is, code, absl::StrCat("stream info of ", stream_name));
    return absl::DeadlineExceededError(absl::StrCat(
        "direct get from stream ", stream_name, ": no answer (does the stream allow direct get?)"));
  }
  if (s != NATS_OK) return JsToStatus(s, static_cast<jsErrCode>(0), "direct get");
  const uint64_t first_seq = natsMsg_GetSequence(first.get());
  if (first_seq > upto) return range;
  range.messages.push_back(CopyOut(first.get(), first_seq));
  first.reset();
  if (first_seq == upto) return range;
  if (range.messages.size() >= options.max_messages) {
    range.complete = false;
    return range;
  }

  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream_name.c_str();
  so.Ordered = true;
  so.Config.OptStartSeq = first_seq + 1;
  so.Config.DeliverPolicy = js_DeliverByStartSequence;
  natsSubscription* raw_sub = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  s = js_SubscribeSync(&raw_sub, js.native(), filter.c_str(), &opts, &so, &code);
  if (s != NATS_OK) return JsToStatus(s, code, absl::StrCat("read range of ", stream_name));
  std::unique_ptr<natsSubscription, SubscriptionCloser> sub(raw_sub);
  while (true) {
    natsMsg* raw_msg = nullptr;
    s = natsSubscription_NextMsg(&raw_msg, sub.get(), options.timeout.count());
    MsgHandle m(raw_msg, &natsMsg_Destroy);
    if (s == NATS_TIMEOUT) {
      // The server went away, or (rarely) the rest was trimmed between the
      // direct get and the consumer's start: the caller cannot tell a
      // complete range, so neither claims one.
      return absl::DeadlineExceededError(
          absl::StrCat("read range of ", stream_name, ": no message within the timeout"));
    }
    if (s != NATS_OK) return ToStatus(s, absl::StrCat("read range of ", stream_name));
    jsMsgMetaData* raw_meta = nullptr;
    s = natsMsg_GetMetaData(&raw_meta, m.get());
    MetaHandle meta(raw_meta, &jsMsgMetaData_Destroy);
    if (s != NATS_OK) return ToStatus(s, "message metadata");
    const uint64_t seq = meta->Sequence.Stream;
    if (seq > upto) return range;
    range.messages.push_back(CopyOut(m.get(), seq));
    if (seq == upto || meta->NumPending == 0) return range;
    if (range.messages.size() >= options.max_messages) {
      range.complete = false;
      return range;
    }
  }
}

}  // namespace switchboard::bus
