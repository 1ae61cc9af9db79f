#include "edge/engineio/readiness_poller.h"

#include <errno.h>
#include <unistd.h>

#include <system_error>

namespace switchboard::eio {
namespace net = boost::asio;

namespace {
// Events taken per epoll_wait; more stay queued for the next turn.
constexpr int kBatch = 256;

net::io_context& AsIoContext(net::execution_context& context) {
  // Every shard runs an io_context; the service is only made through Of().
  return static_cast<net::io_context&>(context);
}
}  // namespace

ReadinessPoller::ReadinessPoller(net::execution_context& context)
    : net::execution_context::service(context),
      ioc_(AsIoContext(context)),
      epoll_fd_(::epoll_create1(EPOLL_CLOEXEC)),
      watch_(ioc_) {
  if (epoll_fd_ < 0) {
    throw std::system_error(errno, std::generic_category(), "epoll_create1");
  }
  // The stream_descriptor owns its own duplicate, so that closing it (at
  // shutdown) and closing epoll_fd_ (in the destructor) are independent.
  int watched = ::dup(epoll_fd_);
  if (watched < 0) throw std::system_error(errno, std::generic_category(), "dup");
  watch_.assign(watched);
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
  epoll_event event{};
  event.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  event.data.ptr = listener;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) return false;
  if (!listener->is_linked()) listeners_.push_back(*listener);
  Arm();
  return true;
}

void ReadinessPoller::Remove(int fd, Listener* listener) {
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  listener->unlink();
}

void ReadinessPoller::Arm() {
  if (armed_ || stopped_) return;
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
  for (int i = 0; i < n; ++i) {
    static_cast<Listener*>(events[i].data.ptr)->OnReady(events[i].events);
  }
  Arm();
}

}  // namespace switchboard::eio
