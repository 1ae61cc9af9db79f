#include "bus/nats_bus.h"

#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <limits>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "bus/nats_status.h"
#include "bus/pending_requests.h"
#include "bus/subject.h"
#include "bus/worker.h"

namespace switchboard::bus {

using internal::HandlerGate;
using internal::PendingRequests;
using internal::ToStatus;
using internal::Worker;

namespace {

// NATS.c's default per-subscription message limit (its byte limit is ours).
constexpr int kMaxPendingMessages = 65536;

using ConnectionHandle = std::unique_ptr<natsConnection, decltype(&natsConnection_Destroy)>;
using SubscriptionHandle = std::unique_ptr<natsSubscription, decltype(&natsSubscription_Destroy)>;
using OptionsHandle = std::unique_ptr<natsOptions, decltype(&natsOptions_Destroy)>;

Message CopyOut(natsMsg* m) {
  Message msg;
  if (const char* s = natsMsg_GetSubject(m)) msg.subject = s;
  if (const char* r = natsMsg_GetReply(m)) msg.reply_to = r;
  int len = natsMsg_GetDataLength(m);
  if (len > 0) msg.payload.assign(natsMsg_GetData(m), static_cast<size_t>(len));
  return msg;
}

// Closure of a user subscription: NATS owns it until its on-complete callback.
struct SubCtx {
  std::shared_ptr<HandlerGate> gate;
  Executor executor;
  std::shared_ptr<internal::DeliveryBudget> budget;
};

void OnMessage(natsConnection*, natsSubscription*, natsMsg* m, void* closure) {
  auto* ctx = static_cast<SubCtx*>(closure);
  // Held before the copy: over the bound, the message is dropped uncopied.
  const char* subject = natsMsg_GetSubject(m);
  uint64_t bytes = static_cast<uint64_t>(std::max(natsMsg_GetDataLength(m), 0)) +
                   (subject != nullptr ? strlen(subject) : 0);
  std::shared_ptr<const void> hold = ctx->budget->TryReserve(bytes);
  if (!hold) {
    natsMsg_Destroy(m);
    return;
  }
  Message msg = CopyOut(m);
  natsMsg_Destroy(m);
  msg.hold = std::move(hold);
  internal::Dispatch(ctx->executor, ctx->gate, std::move(msg));
}

void OnSubComplete(void* closure) { delete static_cast<SubCtx*>(closure); }

}  // namespace

// State the NATS connection callbacks touch; outlives the bus if needed.
struct ConnShared {
  std::mutex mu;
  std::condition_variable cv;
  bool closed = false;
  StateCallback cb;
  Executor executor;
  // The server's max_payload, read at connect and at every reconnect (the
  // server may have changed).
  std::atomic<int64_t> max_payload{0};
  std::atomic<uint64_t> slow_consumer{0};

  void Notify(ConnectionState state) {
    std::lock_guard<std::mutex> lock(mu);
    if (state == ConnectionState::kClosed) {
      closed = true;
      cv.notify_all();
    }
    if (cb && executor) executor([cb = cb, state] { cb(state); });
  }
};

namespace {

// Closure of the reply inbox subscription.
struct ReplyCtx {
  std::shared_ptr<PendingRequests> requests;
  std::string inbox_prefix;  // "_INBOX.<nuid>."
};

void OnReply(natsConnection*, natsSubscription*, natsMsg* m, void* closure) {
  auto& ctx = *static_cast<ReplyCtx*>(closure);
  bool no_responders = natsMsg_IsNoResponders(m);
  Message msg = CopyOut(m);
  natsMsg_Destroy(m);
  std::string_view tail = msg.subject;
  if (tail.size() <= ctx.inbox_prefix.size()) return;
  tail.remove_prefix(ctx.inbox_prefix.size());
  uint64_t id = 0;
  for (char c : tail) {
    if (c < '0' || c > '9') return;
    id = id * 10 + static_cast<uint64_t>(c - '0');
  }
  // Nothing if late: already timed out.
  if (no_responders) {
    ctx.requests->Finish(id, absl::NotFoundError("no responders"));
  } else {
    ctx.requests->Finish(id, std::move(msg));
  }
}

void OnReplyComplete(void* closure) { delete static_cast<ReplyCtx*>(closure); }

// Connection callbacks. The closure (a heap shared_ptr) is freed by the
// closed callback, the last one NATS.c makes.
void OnDisconnected(natsConnection*, void* closure) {
  (*static_cast<std::shared_ptr<ConnShared>*>(closure))->Notify(ConnectionState::kDisconnected);
}
void OnReconnected(natsConnection* nc, void* closure) {
  auto& shared = *static_cast<std::shared_ptr<ConnShared>*>(closure);
  shared->max_payload.store(natsConnection_GetMaxPayload(nc), std::memory_order_relaxed);
  shared->Notify(ConnectionState::kConnected);
}
// Asynchronous errors: a subscription's pending queue over its limits
// (NATS.c dropped messages) is counted; the others are logged by the state
// they lead to (disconnects).
void OnAsyncError(natsConnection*, natsSubscription*, natsStatus err, void* closure) {
  if (err == NATS_SLOW_CONSUMER) {
    (*static_cast<std::shared_ptr<ConnShared>*>(closure))
        ->slow_consumer.fetch_add(1, std::memory_order_relaxed);
  }
}
void OnClosed(natsConnection*, void* closure) {
  auto* shared = static_cast<std::shared_ptr<ConnShared>*>(closure);
  (*shared)->Notify(ConnectionState::kClosed);
  delete shared;
}

class NatsSubscription : public Subscription {
 public:
  NatsSubscription(SubscriptionHandle sub, std::shared_ptr<HandlerGate> gate, std::string subject)
      : sub_(std::move(sub)), gate_(std::move(gate)), subject_(std::move(subject)) {}
  ~NatsSubscription() override { Unsubscribe(); }
  void Unsubscribe() override {
    if (!gate_) return;
    // Fails harmlessly when the connection is already closed.
    natsSubscription_Unsubscribe(sub_.get());
    gate_->Close();
    gate_.reset();
    sub_.reset();
  }
  const std::string& subject() const override { return subject_; }

 private:
  SubscriptionHandle sub_;
  std::shared_ptr<HandlerGate> gate_;
  std::string subject_;
};

}  // namespace

struct NatsBus::Core {
  std::shared_ptr<Worker> worker = std::make_shared<Worker>();
  Executor default_executor;
  std::chrono::milliseconds drain_timeout{0};
  std::shared_ptr<ConnShared> shared = std::make_shared<ConnShared>();
  std::shared_ptr<PendingRequests> requests = std::make_shared<PendingRequests>(worker);
  std::string inbox_prefix;  // "_INBOX.<nuid>."
  ConnectionHandle conn{nullptr, &natsConnection_Destroy};
  SubscriptionHandle inbox_sub{nullptr, &natsSubscription_Destroy};
  std::atomic<uint64_t> publish_errors{0};
  std::atomic<uint64_t> too_large{0};
  std::shared_ptr<internal::DeliveryBudget> budget;
  int max_pending_bytes = 0;  // NATS.c's own per-subscription limit

  Executor Resolve(Executor e) const { return e ? std::move(e) : default_executor; }
  bool Connected() const { return natsConnection_Status(conn.get()) == NATS_CONN_STATUS_CONNECTED; }
};

NatsBus::NatsBus(std::shared_ptr<Core> core) : core_(std::move(core)) {}

absl::StatusOr<std::unique_ptr<NatsBus>> NatsBus::Connect(Options options) {
  auto core = std::make_shared<Core>();
  core->default_executor = options.default_executor ? std::move(options.default_executor)
                                                    : Worker::ExecutorFor(core->worker);
  core->drain_timeout = options.drain_timeout;
  core->shared->executor = core->default_executor;
  core->budget = std::make_shared<internal::DeliveryBudget>(options.max_pending_bytes);
  core->max_pending_bytes = static_cast<int>(std::min<uint64_t>(
      options.max_pending_bytes == 0 ? std::numeric_limits<int>::max() : options.max_pending_bytes,
      std::numeric_limits<int>::max()));

  natsOptions* raw_opts = nullptr;
  if (natsStatus s = natsOptions_Create(&raw_opts); s != NATS_OK) {
    return ToStatus(s, "natsOptions_Create");
  }
  OptionsHandle opts(raw_opts, &natsOptions_Destroy);
  std::vector<const char*> urls;
  for (const auto& u : options.urls) urls.push_back(u.c_str());
  natsStatus s = natsOptions_SetServers(opts.get(), urls.data(), static_cast<int>(urls.size()));
  if (s == NATS_OK) s = natsOptions_SetName(opts.get(), options.name.c_str());
  if (s == NATS_OK) s = natsOptions_SetTimeout(opts.get(), options.connect_timeout.count());
  if (s == NATS_OK) s = natsOptions_SetAllowReconnect(opts.get(), true);
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts.get(), options.max_reconnect);
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(opts.get(), options.reconnect_wait.count());
  if (s == NATS_OK && options.no_echo) s = natsOptions_SetNoEcho(opts.get(), true);
  if (s == NATS_OK && options.send_asap) s = natsOptions_SetSendAsap(opts.get(), true);
  // A pool of delivery threads rather than one thread per subscription.
  if (s == NATS_OK) s = natsOptions_UseGlobalMessageDelivery(opts.get(), true);
  if (s != NATS_OK) return ToStatus(s, "natsOptions");

  auto* closure = new std::shared_ptr<ConnShared>(core->shared);
  s = natsOptions_SetDisconnectedCB(opts.get(), &OnDisconnected, closure);
  if (s == NATS_OK) s = natsOptions_SetReconnectedCB(opts.get(), &OnReconnected, closure);
  if (s == NATS_OK) s = natsOptions_SetClosedCB(opts.get(), &OnClosed, closure);
  if (s == NATS_OK) s = natsOptions_SetErrorHandler(opts.get(), &OnAsyncError, closure);
  natsConnection* raw_conn = nullptr;
  if (s == NATS_OK) s = natsConnection_Connect(&raw_conn, opts.get());
  if (s != NATS_OK) {
    delete closure;  // no callback is made for a connection that never was
    return ToStatus(s, "connect to NATS");
  }
  core->conn.reset(raw_conn);
  core->shared->max_payload.store(natsConnection_GetMaxPayload(raw_conn),
                                  std::memory_order_relaxed);

  natsInbox* inbox = nullptr;
  s = natsInbox_Create(&inbox);
  if (s != NATS_OK) return ToStatus(s, "natsInbox_Create");
  core->inbox_prefix = absl::StrCat(inbox, ".");
  natsInbox_Destroy(inbox);

  auto* reply_ctx = new ReplyCtx{core->requests, core->inbox_prefix};
  natsSubscription* raw_sub = nullptr;
  s = natsConnection_Subscribe(&raw_sub, core->conn.get(),
                               absl::StrCat(core->inbox_prefix, "*").c_str(), &OnReply, reply_ctx);
  if (s != NATS_OK) {
    delete reply_ctx;
    return ToStatus(s, "subscribe to the reply inbox");
  }
  core->inbox_sub.reset(raw_sub);
  s = natsSubscription_SetOnCompleteCB(raw_sub, &OnReplyComplete, reply_ctx);
  if (s != NATS_OK) return ToStatus(s, "natsSubscription_SetOnCompleteCB");
  return std::unique_ptr<NatsBus>(new NatsBus(std::move(core)));
}

NatsBus::~NatsBus() {
  {
    std::lock_guard<std::mutex> lock(core_->shared->mu);
    core_->shared->cb = nullptr;
  }
  core_->requests->CancelAll(absl::CancelledError("bus destroyed"));
  // Drain: unsubscribe everything, deliver what is in flight, flush, close.
  // Closing without draining when drain is impossible (disconnected).
  bool drained = false;
  if (core_->Connected() &&
      natsConnection_DrainTimeout(core_->conn.get(), core_->drain_timeout.count()) == NATS_OK) {
    std::unique_lock<std::mutex> lock(core_->shared->mu);
    drained = core_->shared->cv.wait_for(lock, core_->drain_timeout + std::chrono::seconds(1),
                                         [&] { return core_->shared->closed; });
  }
  if (!drained) natsConnection_Close(core_->conn.get());
  core_->inbox_sub.reset();
  // The handle itself goes with the last owner of core_ (native_connection()
  // may have lent it out); calls on a closed connection fail harmlessly.
  core_->worker->Shutdown();
}

absl::Status NatsBus::CheckSize(std::string_view payload) const {
  uint64_t limit = max_payload();
  if (limit == 0 || payload.size() <= limit) return absl::OkStatus();
  core_->too_large.fetch_add(1, std::memory_order_relaxed);
  return absl::InvalidArgumentError(absl::StrCat("message of ", payload.size(),
                                                 " bytes exceeds the bus's max_payload of ", limit,
                                                 " bytes (nats-server max_payload)"));
}

absl::Status NatsBus::Publish(std::string_view subject, std::string_view payload,
                              std::string_view reply_to) {
  if (absl::Status s = CheckSubject(subject); !s.ok()) return s;
  if (!reply_to.empty() && !ValidSubject(reply_to)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid reply subject: ", std::string(reply_to)));
  }
  if (absl::Status s = CheckSize(payload); !s.ok()) return s;
  if (!core_->Connected()) {
    core_->publish_errors.fetch_add(1, std::memory_order_relaxed);
    return absl::UnavailableError("not connected to NATS");
  }
  std::string subj(subject);
  natsStatus s;
  if (reply_to.empty()) {
    s = natsConnection_Publish(core_->conn.get(), subj.c_str(), payload.data(),
                               static_cast<int>(payload.size()));
  } else {
    s = natsConnection_PublishRequest(core_->conn.get(), subj.c_str(),
                                      std::string(reply_to).c_str(), payload.data(),
                                      static_cast<int>(payload.size()));
  }
  if (s != NATS_OK) core_->publish_errors.fetch_add(1, std::memory_order_relaxed);
  return ToStatus(s, "publish");
}

absl::StatusOr<SubscriptionPtr> NatsBus::Subscribe(std::string_view subject_pattern,
                                                   Handler handler, std::string_view queue_group,
                                                   Executor executor) {
  if (!ValidSubject(subject_pattern, /*allow_wildcards=*/true)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid subject pattern: ", std::string(subject_pattern)));
  }
  if (!handler) return absl::InvalidArgumentError("empty handler");
  auto gate = std::make_shared<HandlerGate>(std::move(handler));
  auto* ctx = new SubCtx{gate, core_->Resolve(std::move(executor)), core_->budget};
  std::string subj(subject_pattern);
  natsSubscription* raw = nullptr;
  natsStatus s;
  if (queue_group.empty()) {
    s = natsConnection_Subscribe(&raw, core_->conn.get(), subj.c_str(), &OnMessage, ctx);
  } else {
    s = natsConnection_QueueSubscribe(&raw, core_->conn.get(), subj.c_str(),
                                      std::string(queue_group).c_str(), &OnMessage, ctx);
  }
  if (s != NATS_OK) {
    delete ctx;
    return ToStatus(s, "subscribe");
  }
  SubscriptionHandle sub(raw, &natsSubscription_Destroy);
  // NATS.c's own queue (before OnMessage) bounded in bytes too; past it
  // NATS.c drops and reports a slow consumer (OnAsyncError).
  // At least two of the largest messages, so that a bound smaller than
  // max_payload does not drop every large message there.
  const int nats_limit = static_cast<int>(std::min<uint64_t>(
      std::max<uint64_t>(static_cast<uint64_t>(core_->max_pending_bytes), 2 * max_payload()),
      std::numeric_limits<int>::max()));
  (void)natsSubscription_SetPendingLimits(raw, kMaxPendingMessages, nats_limit);
  s = natsSubscription_SetOnCompleteCB(raw, &OnSubComplete, ctx);
  if (s != NATS_OK) {
    // Closed already (connection closing): the closure is leaked rather
    // than freed under a message callback that may still be running.
    gate->Close();
    return ToStatus(s, "natsSubscription_SetOnCompleteCB");
  }
  return std::make_unique<NatsSubscription>(std::move(sub), std::move(gate), std::move(subj));
}

void NatsBus::Request(std::string_view subject, std::string_view payload,
                      std::chrono::milliseconds timeout, RequestCallback done, Executor executor) {
  PendingRequests::Pending p{std::move(done), core_->Resolve(std::move(executor))};
  absl::Status status = CheckSubject(subject);
  if (status.ok()) status = CheckSize(payload);
  if (status.ok() && !core_->Connected()) {
    status = absl::UnavailableError("not connected to NATS");
  }
  if (!status.ok()) {
    PendingRequests::Complete(std::move(p), std::move(status));
    return;
  }
  uint64_t id = core_->requests->Add(std::move(p), timeout);
  std::string subj(subject);
  std::string reply = absl::StrCat(core_->inbox_prefix, id);
  natsStatus s = natsConnection_PublishRequest(core_->conn.get(), subj.c_str(), reply.c_str(),
                                               payload.data(), static_cast<int>(payload.size()));
  if (s != NATS_OK) core_->requests->Finish(id, ToStatus(s, "request"));
}

bool NatsBus::connected() const { return core_->Connected(); }

std::shared_ptr<natsConnection> NatsBus::native_connection() const {
  return std::shared_ptr<natsConnection>(core_, core_->conn.get());
}

Bus::Stats NatsBus::stats() const {
  Stats out;
  out.publish_errors = core_->publish_errors.load(std::memory_order_relaxed);
  out.dropped = core_->budget->dropped();
  out.pending_bytes = core_->budget->held_bytes();
  out.slow_consumer = core_->shared->slow_consumer.load(std::memory_order_relaxed);
  out.too_large = core_->too_large.load(std::memory_order_relaxed);
  natsStatistics* raw = nullptr;
  if (natsStatistics_Create(&raw) != NATS_OK) return out;
  if (natsConnection_GetStats(core_->conn.get(), raw) == NATS_OK) {
    natsStatistics_GetCounts(raw, &out.messages_in, &out.bytes_in, &out.messages_out,
                             &out.bytes_out, &out.reconnects);
  }
  natsStatistics_Destroy(raw);
  return out;
}

uint64_t NatsBus::max_payload() const {
  int64_t limit = core_->shared->max_payload.load(std::memory_order_relaxed);
  return limit > 0 ? static_cast<uint64_t>(limit) : 0;
}

void NatsBus::SetStateCallback(StateCallback cb) {
  std::lock_guard<std::mutex> lock(core_->shared->mu);
  core_->shared->cb = std::move(cb);
}

}  // namespace switchboard::bus
