#include "edge/runtime.h"

#include <boost/asio/post.hpp>
#include <cstdio>
#include <exception>
#include <latch>

#include "edge/uring_sends.h"

namespace switchboard::edge {
namespace {
thread_local int current_shard = -1;
std::atomic<uint64_t> escaped_exceptions{0};

// Runs `ioc` until it stops. A handler that throws (a bug: handlers report
// errors, they do not throw) costs that handler, not the process: the loop
// goes on with the next one.
void RunShard(boost::asio::io_context& ioc) {
  for (;;) {
    try {
      ioc.run();
      return;
    } catch (const std::exception& e) {
      escaped_exceptions.fetch_add(1, std::memory_order_relaxed);
      std::fprintf(stderr, "switchboard: I/O thread %d: handler threw: %s (continuing)\n",
                   current_shard, e.what());
    } catch (...) {
      escaped_exceptions.fetch_add(1, std::memory_order_relaxed);
      std::fprintf(stderr, "switchboard: I/O thread %d: handler threw (continuing)\n",
                   current_shard);
    }
  }
}
}  // namespace

Runtime::Runtime(unsigned threads) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < threads; ++i) {
    auto shard = std::make_unique<Shard>();
    // concurrency_hint 1: each context is run by exactly one thread.
    shard->ioc = std::make_unique<boost::asio::io_context>(1);
    shard->work.emplace(shard->ioc->get_executor());
    shards_.push_back(std::move(shard));
  }
}

Runtime::~Runtime() {
  Stop();
  Join();
}

int Runtime::CurrentShard() { return current_shard; }

uint64_t Runtime::EscapedExceptions() { return escaped_exceptions.load(std::memory_order_relaxed); }

void Runtime::Post(size_t shard, std::function<void()> fn) {
  boost::asio::post(*shards_[shard]->ioc, std::move(fn));
}

void Runtime::Start() {
  // Each thread's io_uring (when enabled) is made before Start returns, not
  // at its first read or write: its descriptor and memory are there from the
  // start (a server that says it is listening holds all it holds idle).
  std::latch rings_made(static_cast<std::ptrdiff_t>(shards_.size()));
  for (size_t i = 0; i < shards_.size(); ++i) {
    threads_.emplace_back([this, i, &rings_made] {
      current_shard = static_cast<int>(i);
      UringSends::ForThisThread();
      rings_made.count_down();
      RunShard(*shards_[i]->ioc);
      current_shard = -1;
    });
  }
  rings_made.wait();
}

void Runtime::Join() {
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

void Runtime::Stop() {
  for (auto& shard : shards_) {
    shard->work.reset();
    shard->ioc->stop();
  }
}

}  // namespace switchboard::edge
