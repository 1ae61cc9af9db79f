#include "bus/inproc_bus.h"

#include <atomic>
#include <map>
#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bus/pending_requests.h"
#include "bus/subject.h"
#include "bus/worker.h"

namespace switchboard::bus {

using internal::HandlerGate;
using internal::PendingRequests;
using internal::Worker;

struct InProcessBus::Core {
  struct Sub {
    std::string pattern;
    std::string queue;
    Executor executor;
    std::shared_ptr<HandlerGate> gate;
  };

  std::shared_ptr<Worker> worker = std::make_shared<Worker>();
  std::shared_ptr<PendingRequests> requests = std::make_shared<PendingRequests>(worker);
  Executor default_executor;
  std::string inbox_prefix;
  std::shared_ptr<internal::DeliveryBudget> budget;

  std::mutex mu;
  uint64_t next_sub ABSL_GUARDED_BY(mu) = 1;
  std::map<uint64_t, Sub> subs ABSL_GUARDED_BY(mu);
  std::map<std::string, uint64_t> rr ABSL_GUARDED_BY(mu);  // queue -> counter
  bool closed ABSL_GUARDED_BY(mu) = false;

  Executor Resolve(Executor e) const { return e ? std::move(e) : default_executor; }

  void Remove(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu);
    subs.erase(id);
  }

  // Delivers to every matching subscriber; returns how many got it.
  size_t Route(const Message& msg) {
    struct Target {
      Executor executor;
      std::shared_ptr<HandlerGate> gate;
      bool bounded;  // not the inline reply inbox
    };
    std::vector<Target> targets;
    {
      std::lock_guard<std::mutex> lock(mu);
      std::map<std::string, std::vector<const Sub*>> groups;
      for (const auto& [id, sub] : subs) {
        if (!SubjectMatches(sub.pattern, msg.subject)) continue;
        if (sub.queue.empty()) {
          targets.push_back({sub.executor, sub.gate, id != 0});
        } else {
          groups[sub.queue].push_back(&sub);
        }
      }
      for (auto& [queue, members] : groups) {
        const Sub* chosen = members[rr[queue]++ % members.size()];
        targets.push_back({chosen->executor, chosen->gate, true});
      }
    }
    for (auto& t : targets) {
      internal::Dispatch(t.executor, t.gate, msg, t.bounded ? budget.get() : nullptr);
    }
    return targets.size();
  }
};

namespace {

class InProcSubscription : public Subscription {
 public:
  InProcSubscription(std::weak_ptr<InProcessBus::Core> core, uint64_t id, std::string subject,
                     std::shared_ptr<HandlerGate> gate)
      : core_(std::move(core)), id_(id), subject_(std::move(subject)), gate_(std::move(gate)) {}
  ~InProcSubscription() override { Unsubscribe(); }
  void Unsubscribe() override {
    if (!gate_) return;
    if (auto core = core_.lock()) core->Remove(id_);
    gate_->Close();
    gate_.reset();
  }
  const std::string& subject() const override { return subject_; }

 private:
  std::weak_ptr<InProcessBus::Core> core_;
  uint64_t id_;
  std::string subject_;
  std::shared_ptr<HandlerGate> gate_;
};

uint64_t NextBusId() {
  static std::atomic<uint64_t> next{1};
  return next++;
}

}  // namespace

InProcessBus::InProcessBus() : InProcessBus(Options{}) {}

InProcessBus::InProcessBus(Options options) : core_(std::make_shared<Core>()) {
  core_->default_executor = options.default_executor ? std::move(options.default_executor)
                                                     : Worker::ExecutorFor(core_->worker);
  core_->inbox_prefix = absl::StrCat("_INBOX.inproc", NextBusId(), ".");
  core_->budget = std::make_shared<internal::DeliveryBudget>(options.max_pending_bytes);
  // Replies to our requests: an internal subscription, handled inline on
  // the replying thread, that completes the pending request.
  std::weak_ptr<Core> weak = core_;
  auto gate = std::make_shared<HandlerGate>([weak](Message msg) {
    auto core = weak.lock();
    if (!core) return;
    uint64_t id = 0;
    std::string_view tail = std::string_view(msg.subject).substr(core->inbox_prefix.size());
    for (char c : tail) id = id * 10 + static_cast<uint64_t>(c - '0');
    core->requests->Finish(id, std::move(msg));  // nothing if late
  });
  std::lock_guard<std::mutex> lock(core_->mu);
  core_->subs.emplace(0,
                      Core::Sub{absl::StrCat(core_->inbox_prefix, "*"), "", InlineExecutor, gate});
}

InProcessBus::~InProcessBus() {
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    core_->closed = true;
    core_->subs.erase(0);
  }
  core_->requests->CancelAll(absl::CancelledError("bus destroyed"));
  core_->worker->Shutdown();
}

absl::Status InProcessBus::Publish(std::string_view subject, std::string_view payload,
                                   std::string_view reply_to) {
  if (absl::Status s = CheckSubject(subject); !s.ok()) return s;
  if (!reply_to.empty() && !ValidSubject(reply_to)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid reply subject: ", std::string(reply_to)));
  }
  core_->Route(Message{std::string(subject), std::string(payload), std::string(reply_to), nullptr});
  return absl::OkStatus();
}

absl::StatusOr<SubscriptionPtr> InProcessBus::Subscribe(std::string_view subject_pattern,
                                                        Handler handler,
                                                        std::string_view queue_group,
                                                        Executor executor) {
  if (!ValidSubject(subject_pattern, /*allow_wildcards=*/true)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid subject pattern: ", std::string(subject_pattern)));
  }
  if (!handler) return absl::InvalidArgumentError("empty handler");
  for (unsigned char c : queue_group) {
    if (c <= ' ') return absl::InvalidArgumentError("invalid queue group");
  }
  auto gate = std::make_shared<HandlerGate>(std::move(handler));
  uint64_t id;
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    id = core_->next_sub++;
    core_->subs.emplace(id, Core::Sub{std::string(subject_pattern), std::string(queue_group),
                                      core_->Resolve(std::move(executor)), gate});
  }
  return std::make_unique<InProcSubscription>(core_, id, std::string(subject_pattern),
                                              std::move(gate));
}

void InProcessBus::Request(std::string_view subject, std::string_view payload,
                           std::chrono::milliseconds timeout, RequestCallback done,
                           Executor executor) {
  PendingRequests::Pending p{std::move(done), core_->Resolve(std::move(executor))};
  if (absl::Status s = CheckSubject(subject); !s.ok()) {
    PendingRequests::Complete(std::move(p), std::move(s));
    return;
  }
  uint64_t id = core_->requests->Add(std::move(p), timeout);
  Message msg{std::string(subject), std::string(payload), absl::StrCat(core_->inbox_prefix, id),
              nullptr};
  if (core_->Route(msg) == 0) {
    core_->requests->Finish(
        id, absl::NotFoundError(absl::StrCat("no responders for ", std::string(subject))));
  }
}

Bus::Stats InProcessBus::stats() const {
  Stats out;
  out.dropped = core_->budget->dropped();
  out.pending_bytes = core_->budget->held_bytes();
  return out;
}

}  // namespace switchboard::bus
