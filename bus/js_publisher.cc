#include "bus/js_publisher.h"

#include <nats/nats.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bus/nats_status.h"
#include "bus/worker.h"

namespace switchboard::bus {

using internal::JsToStatus;
using internal::ToStatus;
using internal::Worker;

struct AsyncPublisher::Core : std::enable_shared_from_this<AsyncPublisher::Core> {
  struct Slot {
    Done done;
    std::optional<absl::StatusOr<uint64_t>> result;
  };

  std::shared_ptr<natsConnection> conn;  // outlives js
  std::unique_ptr<jsCtx, void (*)(jsCtx*)> js{nullptr, &jsCtx_Destroy};
  std::shared_ptr<Worker> worker;  // when no executor was given
  Executor executor;
  size_t max_pending = 0;
  std::chrono::milliseconds ack_timeout{0};

  mutable std::mutex mu;
  std::condition_variable cv;
  uint64_t next_index = 0;
  // NATS.c took at least one publish: it makes its table of pending
  // publishes then, and js_PublishAsyncGetPendingList crashes without one
  // (libnats 3.4 counts a NULL table).
  bool any_taken = false;
  // PublishUnacknowledged sent something: the destructor flushes.
  bool any_unacknowledged = false;
  // Publishes whose completion has not returned yet (max_pending, Flush).
  size_t unfinished = 0;
  // Publish order -> completion; the front ones that are answered leave for
  // the executor together, so that completions keep publish order however
  // the acks and timeouts arrive.
  std::map<uint64_t, Slot> slots;
  // NATS.c gives the ack handler the published message back: its address
  // names the publish (erased before the message is destroyed).
  std::unordered_map<natsMsg*, uint64_t> by_msg;

  // Records `result` for `msg` and hands every completion now in order to
  // the executor. NATS.c calls the ack handler from one thread (the reply
  // subscription's, which also gets the timeouts), so handing over outside
  // the lock keeps the order.
  void Complete(natsMsg* msg, absl::StatusOr<uint64_t> result) {
    std::vector<std::pair<Done, absl::StatusOr<uint64_t>>> ready;
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = by_msg.find(msg);
      if (it == by_msg.end()) return;
      auto slot = slots.find(it->second);
      by_msg.erase(it);
      if (slot == slots.end()) return;
      slot->second.result = std::move(result);
      while (!slots.empty() && slots.begin()->second.result.has_value()) {
        ready.emplace_back(std::move(slots.begin()->second.done),
                           std::move(*slots.begin()->second.result));
        slots.erase(slots.begin());
      }
    }
    for (auto& [done, r] : ready) Post(std::move(done), std::move(r));
  }

  // Runs `done` on the executor, then counts it finished.
  void Post(Done done, absl::StatusOr<uint64_t> r) {
    executor([self = shared_from_this(), done = std::move(done), r = std::move(r)]() mutable {
      done(std::move(r));
      done = nullptr;
      std::lock_guard<std::mutex> lock(self->mu);
      if (--self->unfinished == 0) self->cv.notify_all();
    });
  }
};

namespace {

void OnAck(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
  auto* core = static_cast<AsyncPublisher::Core*>(closure);
  absl::StatusOr<uint64_t> result = absl::InternalError("no ack and no error");
  if (pa != nullptr) {
    result = pa->Sequence;
  } else if (pae != nullptr) {
    std::string what = "JetStream publish";
    if (pae->ErrText != nullptr) absl::StrAppend(&what, " (", pae->ErrText, ")");
    if (pae->Err == NATS_TIMEOUT) {
      result = absl::DeadlineExceededError(absl::StrCat(what, ": no ack within the timeout"));
    } else {
      result = JsToStatus(pae->Err == NATS_OK ? NATS_ERR : pae->Err, pae->ErrCode, what);
    }
  }
  core->Complete(msg, std::move(result));
  natsMsg_Destroy(msg);
}

}  // namespace

AsyncPublisher::AsyncPublisher(std::shared_ptr<Core> core) : core_(std::move(core)) {}

absl::StatusOr<std::unique_ptr<AsyncPublisher>> AsyncPublisher::Create(const JetStream& js,
                                                                       Options options) {
  if (options.max_pending == 0) return absl::InvalidArgumentError("max_pending must be > 0");
  auto core = std::make_shared<Core>();
  core->conn = js.shared_connection();
  core->max_pending = options.max_pending;
  core->ack_timeout = options.ack_timeout;
  if (options.executor) {
    core->executor = std::move(options.executor);
  } else {
    core->worker = std::make_shared<Worker>();
    core->executor = Worker::ExecutorFor(core->worker);
  }
  jsOptions opts;
  jsOptions_Init(&opts);
  opts.Wait = js.options().api_timeout.count();
  // NATS.c's own bound stays above ours (it may still count a publish whose
  // completion we already handed over), so js_PublishMsgAsync never stalls.
  opts.PublishAsync.MaxPending = static_cast<int64_t>(options.max_pending) + 64;
  opts.PublishAsync.AckHandler = &OnAck;
  opts.PublishAsync.AckHandlerClosure = core.get();
  jsCtx* raw = nullptr;
  if (natsStatus s = natsConnection_JetStream(&raw, core->conn.get(), &opts); s != NATS_OK) {
    return ToStatus(s, "natsConnection_JetStream");
  }
  core->js.reset(raw);
  return std::unique_ptr<AsyncPublisher>(new AsyncPublisher(std::move(core)));
}

AsyncPublisher::~AsyncPublisher() {
  bool flush;
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    flush = core_->any_unacknowledged;
  }
  // A PING answered: the server has everything sent before it.
  if (flush && !natsConnection_IsClosed(core_->conn.get())) {
    (void)natsConnection_FlushTimeout(core_->conn.get(), core_->ack_timeout.count());
  }
  // Every publish carries MaxWait, so NATS.c answers each (ack or timeout)
  // within ack_timeout while the connection is open.
  if (!natsConnection_IsClosed(core_->conn.get())) {
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = (core_->ack_timeout + std::chrono::seconds(1)).count();
    (void)js_PublishAsyncComplete(core_->js.get(), &po);
  }
  // Whatever is left will not be answered: take the messages back (NATS.c
  // then drops their acks: the handler is not called for them).
  bool any_taken;
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    any_taken = core_->any_taken;
  }
  natsMsgList left{};
  if (any_taken && js_PublishAsyncGetPendingList(&left, core_->js.get()) == NATS_OK) {
    for (int i = 0; i < left.Count; ++i) {
      core_->Complete(left.Msgs[i], absl::CancelledError("publisher destroyed before the ack"));
    }
    natsMsgList_Destroy(&left);
  }
  // A handler call that took its message before that is finished once
  // NATS.c's count of pending publishes is zero.
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 1000;
  (void)js_PublishAsyncComplete(core_->js.get(), &po);
  core_->js.reset();
  if (core_->worker) core_->worker->Shutdown();  // runs the completions posted
}

absl::Status AsyncPublisher::Publish(std::string_view subject, std::string_view payload,
                                     Done done) {
  if (!done) return absl::InvalidArgumentError("empty completion");
  std::string subj(subject);
  natsMsg* msg = nullptr;
  if (natsStatus s = natsMsg_Create(&msg, subj.c_str(), nullptr, payload.data(),
                                    static_cast<int>(payload.size()));
      s != NATS_OK) {
    return ToStatus(s, absl::StrCat("JetStream publish to ", subj));
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = core_->ack_timeout.count();
  natsStatus s;
  {
    // Held across the send: the wire order is the index order, and the ack
    // handler (which takes this lock) finds the message registered.
    std::lock_guard<std::mutex> lock(core_->mu);
    if (core_->unfinished >= core_->max_pending) {
      natsMsg_Destroy(msg);
      return absl::ResourceExhaustedError(absl::StrCat("JetStream publish to ", subj, ": ",
                                                       core_->max_pending,
                                                       " publishes already await their ack"));
    }
    const uint64_t index = core_->next_index++;
    core_->slots.emplace(index, Core::Slot{std::move(done), std::nullopt});
    ++core_->unfinished;
    core_->by_msg.emplace(msg, index);
    natsMsg* sent = msg;
    s = js_PublishMsgAsync(core_->js.get(), &msg, &po);
    if (s == NATS_OK) core_->any_taken = true;
    if (s != NATS_OK) {
      // Not taken by NATS.c (msg still set): the last slot, so nothing
      // behind it waits for it.
      core_->by_msg.erase(sent);
      core_->slots.erase(index);
      if (--core_->unfinished == 0) core_->cv.notify_all();
    }
  }
  natsMsg_Destroy(msg);  // no-op when NATS.c took it
  return ToStatus(s, absl::StrCat("JetStream publish to ", subj));
}

absl::Status AsyncPublisher::PublishUnacknowledged(std::string_view subject,
                                                   std::string_view payload) {
  std::string subj(subject);
  natsStatus s;
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    s = natsConnection_Publish(core_->conn.get(), subj.c_str(), payload.data(),
                               static_cast<int>(payload.size()));
    if (s == NATS_OK) core_->any_unacknowledged = true;
  }
  return ToStatus(s, absl::StrCat("JetStream publish (unacknowledged) to ", subj));
}

absl::Status AsyncPublisher::Flush(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(core_->mu);
  if (!core_->cv.wait_for(lock, timeout, [&] { return core_->unfinished == 0; })) {
    return absl::DeadlineExceededError(absl::StrCat(
        core_->unfinished, " JetStream publishes still await their ack or completion"));
  }
  return absl::OkStatus();
}

size_t AsyncPublisher::pending() const {
  std::lock_guard<std::mutex> lock(core_->mu);
  return core_->unfinished;
}

}  // namespace switchboard::bus
