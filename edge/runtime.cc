#include "edge/runtime.h"

#include <boost/asio/post.hpp>

namespace switchboard::edge {
namespace {
thread_local int current_shard = -1;
}

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

void Runtime::Post(size_t shard, std::function<void()> fn) {
  boost::asio::post(*shards_[shard]->ioc, std::move(fn));
}

void Runtime::Start() {
  for (size_t i = 0; i < shards_.size(); ++i) {
    threads_.emplace_back([this, i] {
      current_shard = static_cast<int>(i);
      shards_[i]->ioc->run();
      current_shard = -1;
    });
  }
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
