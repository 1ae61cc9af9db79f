#include "bus/worker.h"

#include <algorithm>
#include <vector>

namespace switchboard::bus::internal {

Worker::Worker() : thread_([this] { Run(); }) {}

Worker::~Worker() { Shutdown(); }

void Worker::Post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    tasks_.push_back(std::move(fn));
  }
  cv_.notify_one();
}

uint64_t Worker::PostAfter(std::chrono::milliseconds delay, std::function<void()> fn) {
  uint64_t id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return 0;
    id = next_id_++;
    Clock::time_point at = Clock::now() + delay;
    timers_.emplace(std::make_pair(at, id), std::move(fn));
    timer_ids_.emplace(id, at);
  }
  cv_.notify_one();
  return id;
}

void Worker::Cancel(uint64_t id) {
  std::function<void()> dropped;  // destroyed outside the lock
  std::lock_guard<std::mutex> lock(mu_);
  auto it = timer_ids_.find(id);
  if (it == timer_ids_.end()) return;
  auto t = timers_.find({it->second, id});
  dropped = std::move(t->second);
  timers_.erase(t);
  timer_ids_.erase(it);
}

void Worker::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_one();
  if (!thread_.joinable()) return;
  if (thread_.get_id() == std::this_thread::get_id()) {
    thread_.detach();  // shut down from one of our own tasks
  } else {
    thread_.join();
  }
}

void Worker::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    if (!tasks_.empty()) {
      std::function<void()> fn = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      fn();
      fn = nullptr;
      lock.lock();
      continue;
    }
    if (stopping_) break;
    if (!timers_.empty()) {
      auto first = timers_.begin();
      if (first->first.first <= Clock::now()) {
        std::function<void()> fn = std::move(first->second);
        timer_ids_.erase(first->first.second);
        timers_.erase(first);
        lock.unlock();
        fn();
        fn = nullptr;
        lock.lock();
        continue;
      }
      Clock::time_point deadline = first->first.first;  // the node may go
      cv_.wait_until(lock, deadline);
    } else {
      cv_.wait(lock);
    }
  }
  auto timers = std::move(timers_);
  timers_.clear();
  timer_ids_.clear();
  lock.unlock();
}

struct DeliveryBudget::Hold {
  std::shared_ptr<DeliveryBudget> budget;
  uint64_t bytes;
  ~Hold() { budget->held_.fetch_sub(bytes, std::memory_order_relaxed); }
};

std::shared_ptr<const void> DeliveryBudget::TryReserve(uint64_t bytes) {
  uint64_t before = held_.fetch_add(bytes, std::memory_order_relaxed);
  if (max_bytes_ != 0 && before != 0 && before + bytes > max_bytes_) {
    held_.fetch_sub(bytes, std::memory_order_relaxed);
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  // One allocation for the hold and its count (per bus message).
  return std::make_shared<const Hold>(shared_from_this(), bytes);
}

Executor Worker::ExecutorFor(const std::shared_ptr<Worker>& worker) {
  return [w = std::weak_ptr<Worker>(worker)](std::function<void()> fn) {
    if (auto s = w.lock()) s->Post(std::move(fn));
  };
}

namespace {
// The gates whose handler runs on this thread, innermost last.
thread_local std::vector<const HandlerGate*> tl_running;
}  // namespace

void HandlerGate::Deliver(Message msg) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!open_) return;
    ++running_;
  }
  struct Done {
    HandlerGate* gate;
    ~Done() {
      tl_running.pop_back();
      Handler dropped;
      {
        std::lock_guard<std::mutex> lock(gate->mu_);
        --gate->running_;
        if (!gate->open_ && gate->running_ == 0) dropped = std::move(gate->handler_);
        gate->cv_.notify_all();
      }
    }
  };
  tl_running.push_back(this);
  Done done{this};
  handler_(std::move(msg));
}

void HandlerGate::Close() {
  int mine = static_cast<int>(std::count(tl_running.begin(), tl_running.end(), this));
  Handler dropped;
  std::unique_lock<std::mutex> lock(mu_);
  open_ = false;
  cv_.wait(lock, [&] { return running_ <= mine; });
  if (running_ == 0) dropped = std::move(handler_);
}

}  // namespace switchboard::bus::internal
