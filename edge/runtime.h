#pragma once

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

namespace switchboard::edge {

// One io_context per thread ("shard"). A connection, its sessions and its
// room memberships live on exactly one shard, so shard-local state needs no
// lock; other threads only post to it.
class Runtime {
 public:
  // threads == 0 picks one per core.
  explicit Runtime(unsigned threads = 0);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  size_t size() const { return shards_.size(); }
  boost::asio::io_context& context(size_t shard) { return *shards_[shard]->ioc; }

  // Index of the shard the calling thread runs, or -1 off the runtime.
  static int CurrentShard();

  void Post(size_t shard, std::function<void()> fn);

  // Exceptions that escaped a handler on any shard since the start: each was
  // logged to stderr and its shard kept running (nothing is meant to throw).
  static uint64_t EscapedExceptions();

  // Starts the threads and returns.
  void Start();
  // Blocks until every shard has stopped.
  void Join();
  // Stops every shard (safe from any thread, including signal handlers' posts).
  void Stop();

 private:
  struct Shard {
    std::unique_ptr<boost::asio::io_context> ioc;
    std::optional<boost::asio::executor_work_guard<
        boost::asio::io_context::executor_type>>
        work;
  };
  std::vector<std::unique_ptr<Shard>> shards_;
  std::vector<std::thread> threads_;
};

}  // namespace switchboard::edge
