#pragma once

#include <sys/epoll.h>

#include <boost/asio/execution_context.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/intrusive/list.hpp>
#include <cstdint>
#include <memory>
#include <vector>

namespace switchboard::edge {

// Readiness of many sockets through one epoll set of our own, itself watched
// by the io_context (one service per io_context, i.e. per shard).
//
// Why not a wait on each asio socket: an idle connection would then hold a
// reactor descriptor state and a pending wait operation (~300 bytes), and
// every readiness event would allocate and dispatch an operation. Here a
// socket is registered once, edge-triggered, and costs the kernel's epoll
// entry only.
class ReadinessPoller : public boost::asio::execution_context::service {
 public:
  // Told of a registered socket's readiness (EPOLLIN, EPOLLOUT, EPOLLERR...
  // bits). Runs on the io_context's thread; may Remove() any socket, itself
  // included, but must stay alive until the current handler returns (events
  // of one batch may still name it).
  class Listener : public boost::intrusive::list_base_hook<
                       boost::intrusive::link_mode<boost::intrusive::auto_unlink>> {
   public:
    virtual void OnReady(uint32_t events) = 0;
    // The read it asked for with QueueRead: `result` bytes in `data`, 0 at
    // the end of the stream, or -errno. Runs after the batch's OnReady calls.
    virtual void OnRead(char* data, int result) = 0;
    // The io_context shuts down: drop whatever keeps the listener alive.
    virtual void OnShutdown() = 0;

   protected:
    ~Listener() = default;
  };

  using key_type = ReadinessPoller;
  static inline boost::asio::execution_context::id id;

  explicit ReadinessPoller(boost::asio::execution_context& context);
  ~ReadinessPoller() override;

  // The poller of the io_context behind `executor`.
  template <typename Executor>
  static ReadinessPoller& Of(const Executor& executor) {
    return boost::asio::use_service<ReadinessPoller>(
        boost::asio::query(executor, boost::asio::execution::context));
  }

  boost::asio::io_context::executor_type executor() { return ioc_.get_executor(); }

  // Watches `fd` (edge-triggered: in, out, hang-up, error) for `listener`.
  // False when epoll refuses it, or when the poller's own epoll set could not
  // be made (out of descriptors: EMFILE / ENFILE), errno set. Never throws.
  bool Add(int fd, Listener* listener);
  // Stops watching `fd` (closing the descriptor does too).
  void Remove(int fd, Listener* listener);

  // From a listener's OnReady: one read of `fd`, up to kReadBytes, done
  // with the batch's others in one io_uring submit (edge/uring_sends.h)
  // once every listener of the batch has been told; OnRead follows, and
  // `keep_alive` is held until then. False when the read is the caller's to
  // do (outside OnReady, no io_uring on this thread, every buffer taken).
  // `fd` must stay open until OnRead (or until UringSends::Submit ran).
  static constexpr size_t kReadBytes = 16 * 1024;
  bool QueueRead(int fd, Listener* listener, std::shared_ptr<void> keep_alive);

 private:
  void shutdown() override;
  // Makes the epoll set if there is none yet; false (errno set) if it cannot.
  bool Open();
  void Arm();
  void Drain();
  // Submits the batch's queued reads and tells their listeners.
  void RunReads();

  boost::asio::io_context& ioc_;
  int epoll_fd_ = -1;
  // The epoll descriptor as the io_context sees it (wait for readable).
  boost::asio::posix::stream_descriptor watch_;
  // Every registered listener, told at shutdown.
  boost::intrusive::list<Listener, boost::intrusive::constant_time_size<false>> listeners_;
  bool armed_ = false;
  bool stopped_ = false;
  bool drain_posted_ = false;  // a Drain is posted: it arms when done
  bool in_batch_ = false;  // telling a batch's listeners (QueueRead works)
  // The batch's reads, in the order asked; buffers made on first use.
  static constexpr size_t kReadSlots = 16;
  struct Read {
    Listener* listener = nullptr;
    std::shared_ptr<void> keep_alive;
    int result = 0;
  };
  std::vector<Read> reads_;
  std::unique_ptr<char[]> read_buffers_;
};

}  // namespace switchboard::edge
