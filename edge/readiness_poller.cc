#include "edge/readiness_poller.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/post.hpp>

#include "edge/uring_sends.h"

namespace switchboard::edge {
namespace net = boost::asio;

namespace {
// Events taken per epoll_wait; more stay queued for the next turn.
constexpr int kBatch = 256;
// A batch this large means the shard is busy: Drain looks again soon.
constexpr int kBusyBatch = 4;

net::io_context& AsIoContext(net::execution_context& context) {
  // Every shard runs an io_context; the service is only made through Of().
  return static_cast<net::io_context&>(context);
}
}  // namespace

ReadinessPoller::ReadinessPoller(net::execution_context& context)
    : net::execution_context::service(context), ioc_(AsIoContext(context)), watch_(ioc_) {
  // Out of descriptors now (this may run inside a request handler): Add()
  // tries again, and fails the one socket it is asked to watch.
  Open();
}

bool ReadinessPoller::Open() {
  if (epoll_fd_ >= 0) return true;
  int fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) return false;
  // The stream_descriptor owns its own duplicate, so that closing it (at
  // shutdown) and closing epoll_fd_ (in the destructor) are independent.
  int watched = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (watched < 0) {
    int error = errno;
    ::close(fd);
    errno = error;
    return false;
  }
  boost::system::error_code ec;
  watch_.assign(watched, ec);
  if (ec) {
    ::close(watched);
    ::close(fd);
    errno = EINVAL;
    return false;
  }
  epoll_fd_ = fd;
  return true;
}

ReadinessPoller::~ReadinessPoller() {
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

void ReadinessPoller::shutdown() {
  stopped_ = true;
  boost::system::error_code ignored;
  watch_.close(ignored);
  while (!listeners_.empty()) {
    Listener& listener = listeners_.front();
    listeners_.pop_front();
    listener.OnShutdown();
  }
}

bool ReadinessPoller::Add(int fd, Listener* listener) {
  if (stopped_) {
    errno = ESHUTDOWN;
    return false;
  }
  if (!Open()) return false;
  epoll_event event{};
  event.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  event.data.ptr = listener;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) return false;
  if (!listener->is_linked()) listeners_.push_back(*listener);
  Arm();
  return true;
}

void ReadinessPoller::Remove(int fd, Listener* listener) {
  if (epoll_fd_ >= 0) ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  listener->unlink();
}

void ReadinessPoller::Arm() {
  // A posted Drain arms when it finds the set quiet.
  if (armed_ || stopped_ || drain_posted_) return;
  armed_ = true;
  watch_.async_wait(net::posix::stream_descriptor::wait_read,
                    [this](boost::system::error_code ec) {
                      armed_ = false;
                      if (ec || stopped_) return;
                      Drain();
                    });
}

void ReadinessPoller::Drain() {
  epoll_event events[kBatch];
  int n;
  do {
    n = ::epoll_wait(epoll_fd_, events, kBatch, 0);
  } while (n < 0 && errno == EINTR);
  in_batch_ = true;
  for (int i = 0; i < n; ++i) {
    static_cast<Listener*>(events[i].data.ptr)->OnReady(events[i].events);
  }
  in_batch_ = false;
  if (!reads_.empty()) RunReads();
  // Busy (several sockets were ready): look again once the work this batch
  // queued has run (the turn's flush first), instead of waiting on the set
  // again, which costs an epoll_ctl each time (asio re-registers a
  // descriptor for every wait). The first look that finds little waits.
  if (n >= kBusyBatch && !stopped_) {
    drain_posted_ = true;
    net::post(ioc_, [this] {
      drain_posted_ = false;
      if (!stopped_) Drain();
    });
    return;
  }
  Arm();
}

bool ReadinessPoller::QueueRead(int fd, Listener* listener, std::shared_ptr<void> keep_alive) {
  if (!in_batch_ || reads_.size() >= kReadSlots) return false;
  UringSends* uring = UringSends::ForThisThread();
  if (uring == nullptr || uring->busy()) return false;
  if (uring->full()) uring->Submit();
  // Not value-initialised: a page is touched only when a read lands in it.
  if (!read_buffers_) read_buffers_.reset(new char[kReadSlots * kReadBytes]);
  // Reserved up front: the results' addresses stay put while reads are added.
  if (reads_.capacity() < kReadSlots) reads_.reserve(kReadSlots);
  const size_t slot = reads_.size();
  reads_.push_back({listener, std::move(keep_alive), -ECANCELED});
  uring->QueueRecv(fd, &read_buffers_[slot * kReadBytes], kReadBytes, &reads_[slot].result);
  return true;
}

void ReadinessPoller::RunReads() {
  if (UringSends* uring = UringSends::ForThisThread()) uring->Submit();
  for (size_t i = 0; i < reads_.size(); ++i) {
    Read read = std::move(reads_[i]);
    read.listener->OnRead(&read_buffers_[i * kReadBytes], read.result);
  }
  reads_.clear();
}

}  // namespace switchboard::edge
