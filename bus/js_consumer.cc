#include "bus/js_consumer.h"

#include <nats/nats.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "bus/nats_status.h"

namespace switchboard::bus {

using internal::JsToStatus;
using internal::ToStatus;

// What the NATS.c callback touches; its closure (a heap shared_ptr) is freed
// by the subscription's on-complete callback, after the last message call.
struct OrderedConsumer::Core {
  std::mutex mu;
  std::condition_variable cv;
  bool open = true;
  bool running = false;    // NATS.c calls one at a time
  std::thread::id runner;  // the thread in the callback, if any
  Callback callback;       // destroyed with the core
  std::atomic<uint64_t> last_seq{0};
};

namespace {

void OnMessage(natsConnection*, natsSubscription*, natsMsg* m, void* closure) {
  auto& core = **static_cast<std::shared_ptr<OrderedConsumer::Core>*>(closure);
  jsMsgMetaData* meta = nullptr;
  if (natsMsg_GetMetaData(&meta, m) != NATS_OK) {
    natsMsg_Destroy(m);
    return;
  }
  StoredMessage out;
  out.seq = meta->Sequence.Stream;
  jsMsgMetaData_Destroy(meta);
  if (const char* s = natsMsg_GetSubject(m)) out.subject = s;
  int len = natsMsg_GetDataLength(m);
  if (len > 0) out.payload.assign(natsMsg_GetData(m), static_cast<size_t>(len));
  natsMsg_Destroy(m);
  {
    std::lock_guard<std::mutex> lock(core.mu);
    if (!core.open) return;
    core.running = true;
    core.runner = std::this_thread::get_id();
  }
  // Before the call: whoever the callback tells sees last_seq() cover it.
  core.last_seq.store(out.seq, std::memory_order_relaxed);
  core.callback(std::move(out));
  std::lock_guard<std::mutex> lock(core.mu);
  core.running = false;
  core.runner = {};
  core.cv.notify_all();
}

void OnComplete(void* closure) {
  delete static_cast<std::shared_ptr<OrderedConsumer::Core>*>(closure);
}

}  // namespace

OrderedConsumer::OrderedConsumer(std::shared_ptr<Core> core, natsSubscription* sub)
    : core_(std::move(core)), sub_(sub) {}

OrderedConsumer::~OrderedConsumer() { Stop(); }

absl::StatusOr<std::unique_ptr<OrderedConsumer>> OrderedConsumer::Start(JetStream& js,
                                                                        Options options,
                                                                        Callback callback) {
  if (options.stream.empty() || options.subject.empty() || !callback) {
    return absl::InvalidArgumentError("an ordered consumer needs a stream, a subject, a callback");
  }
  auto core = std::make_shared<Core>();
  core->callback = std::move(callback);
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = options.stream.c_str();
  so.Ordered = true;
  if (options.start_seq == 0) {
    so.Config.DeliverPolicy = js_DeliverNew;
  } else {
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = options.start_seq;
  }
  so.Config.Heartbeat = static_cast<int64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(options.heartbeat).count());
  auto* closure = new std::shared_ptr<Core>(core);
  natsSubscription* sub = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus s = js_Subscribe(&sub, js.native(), options.subject.c_str(), &OnMessage, closure,
                              nullptr, &so, &code);
  if (s != NATS_OK) {
    delete closure;  // never subscribed: no callback
    return JsToStatus(s, code, absl::StrCat("ordered consumer on ", options.stream));
  }
  s = natsSubscription_SetOnCompleteCB(sub, &OnComplete, closure);
  if (s != NATS_OK) {
    // Closed already: the closure is leaked rather than freed under a
    // message call that may still run.
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    return ToStatus(s, "natsSubscription_SetOnCompleteCB");
  }
  return std::unique_ptr<OrderedConsumer>(new OrderedConsumer(std::move(core), sub));
}

void OrderedConsumer::Stop() {
  if (sub_ == nullptr) return;
  // Fails harmlessly when the connection is closed.
  natsSubscription_Unsubscribe(sub_);
  natsSubscription_Destroy(sub_);
  sub_ = nullptr;
  std::unique_lock<std::mutex> lock(core_->mu);
  core_->open = false;
  if (core_->runner == std::this_thread::get_id()) return;
  core_->cv.wait(lock, [&] { return !core_->running; });
}

uint64_t OrderedConsumer::last_seq() const {
  return core_->last_seq.load(std::memory_order_relaxed);
}

}  // namespace switchboard::bus
