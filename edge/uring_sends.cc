#include "edge/uring_sends.h"

#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <utility>

#ifdef SB_HAVE_IO_URING
#include <liburing.h>
#endif

#include "absl/strings/str_cat.h"

namespace switchboard::edge {
namespace {

std::atomic<bool> enabled{false};
std::atomic<uint64_t> sent_total{0};
std::atomic<uint64_t> recv_total{0};

}  // namespace

void UringSends::Enable(bool on) { enabled.store(on, std::memory_order_relaxed); }
uint64_t UringSends::sends() { return sent_total.load(std::memory_order_relaxed); }
uint64_t UringSends::recvs() { return recv_total.load(std::memory_order_relaxed); }

#ifdef SB_HAVE_IO_URING

namespace {

// One thread submits, and its completions wait for it to ask (they are reaped
// right after the submit that made them): no task work interrupts it.
// Without those flags on a kernel older than them.
int MakeRing(io_uring& ring) {
  io_uring_params params{};
  params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL;
  int rc = io_uring_queue_init_params(UringSends::kEntries, &ring, &params);
  if (rc != -EINVAL) return rc;
  params = io_uring_params{};
  return io_uring_queue_init_params(UringSends::kEntries, &ring, &params);
}

}  // namespace

struct UringSends::Ring {
  io_uring ring{};
  bool made = false;
  // The kernel refused a submit: nothing is submitted on this ring again
  // (its unsubmitted entries never run) and the thread sends with send().
  bool broken = false;
  // Results by queue index, reused from submit to submit.
  std::vector<int> results;
  ~Ring() {
    if (made) io_uring_queue_exit(&ring);
  }
};

absl::Status UringSends::Probe() {
  io_uring ring{};
  int rc = MakeRing(ring);
  if (rc < 0) return absl::UnavailableError(absl::StrCat("io_uring_setup: ", std::strerror(-rc)));
  io_uring_queue_exit(&ring);
  return absl::OkStatus();
}

UringSends* UringSends::ForThisThread() {
  struct Slot {
    bool tried = false;
    std::unique_ptr<UringSends> sends;
  };
  thread_local Slot slot;
  if (slot.tried) {
    return slot.sends && !slot.sends->ring_->broken ? slot.sends.get() : nullptr;
  }
  if (!enabled.load(std::memory_order_relaxed)) return nullptr;
  slot.tried = true;
  auto ring = std::make_unique<Ring>();
  if (MakeRing(ring->ring) < 0) return nullptr;
  ring->made = true;
  slot.sends.reset(new UringSends(std::move(ring)));
  return slot.sends.get();
}

UringSends::UringSends(std::unique_ptr<Ring> ring) : ring_(std::move(ring)) {
  pending_.reserve(UringSends::kEntries);
  running_.reserve(UringSends::kEntries);
  ring_->results.reserve(UringSends::kEntries);
}

UringSends::~UringSends() { Submit(); }

void UringSends::Queue(int fd, const void* data, Send send) {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_->ring);
  io_uring_prep_send(sqe, fd, data, send.size, MSG_NOSIGNAL | MSG_DONTWAIT);
  io_uring_sqe_set_data64(sqe, pending_.size());
  pending_.push_back(std::move(send));
}

void UringSends::QueueRecv(int fd, void* buffer, uint32_t size, int* result) {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_->ring);
  io_uring_prep_recv(sqe, fd, buffer, size, MSG_DONTWAIT);
  io_uring_sqe_set_data64(sqe, pending_.size());
  Send entry;
  entry.size = size;
  entry.result = result;
  pending_.push_back(std::move(entry));
}

UringSends::Message* UringSends::NextMessage() {
  if (messages_lent_ >= kMessages) return nullptr;
  // Not value-initialised: the pages are touched only as messages are used.
  if (!messages_) messages_.reset(new Message[kMessages]);
  return &messages_[messages_lent_];
}

void UringSends::QueueMessage(int fd, Message* message, size_t iov_count, Send send) {
  ++messages_lent_;
  message->header = msghdr{};
  message->header.msg_iov = message->iov;
  message->header.msg_iovlen = iov_count;
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_->ring);
  io_uring_prep_sendmsg(sqe, fd, &message->header, MSG_NOSIGNAL | MSG_DONTWAIT);
  io_uring_sqe_set_data64(sqe, pending_.size());
  pending_.push_back(std::move(send));
}

void UringSends::Submit() {
  if (submitting_ || pending_.empty()) return;
  submitting_ = true;
  const size_t count = pending_.size();
  std::vector<int>& results = ring_->results;
  results.assign(count, -ECANCELED);
  size_t submitted = 0;
  for (int failures = 0; submitted < count && !ring_->broken;) {
    int rc = io_uring_submit(&ring_->ring);
    if (rc > 0) {
      submitted += static_cast<size_t>(rc);
    } else if (rc != -EINTR && ++failures > 100) {
      ring_->broken = true;
    }
  }
  // Each submitted send completes once, during the submit (MSG_DONTWAIT);
  // one never submitted (or never reaped) keeps -ECANCELED: its connection
  // is lost.
  size_t seen = 0;
  while (seen < submitted) {
    io_uring_cqe* cqes[64];
    unsigned n = io_uring_peek_batch_cqe(&ring_->ring, cqes, 64);
    if (n == 0) {
      io_uring_cqe* cqe = nullptr;
      int rc = io_uring_wait_cqe(&ring_->ring, &cqe);
      if (rc == -EINTR || rc == -EAGAIN) continue;
      if (rc < 0) {
        // Completions still owed would name the next submit's entries: this
        // ring is not used again.
        ring_->broken = true;
        break;
      }
      continue;
    }
    for (unsigned i = 0; i < n; ++i) {
      const uint64_t index = io_uring_cqe_get_data64(cqes[i]);
      if (index < count) results[index] = cqes[i]->res;
    }
    io_uring_cq_advance(&ring_->ring, n);
    seen += n;
  }
  size_t recvs = 0;
  for (size_t i = 0; i < submitted; ++i) recvs += pending_[i].sent == nullptr ? 1 : 0;
  sent_total.fetch_add(submitted - recvs, std::memory_order_relaxed);
  recv_total.fetch_add(recvs, std::memory_order_relaxed);
  // The kernel is done with the messages (a sendmsg copies its buffers).
  messages_lent_ = 0;
  running_.swap(pending_);
  for (size_t i = 0; i < count; ++i) {
    if (running_[i].sent != nullptr) {
      running_[i].sent(running_[i], results[i]);
    } else {
      *running_[i].result = results[i];
    }
  }
  running_.clear();
  submitting_ = false;
}

#else  // without liburing: never made

struct UringSends::Ring {};

absl::Status UringSends::Probe() {
  return absl::UnimplementedError("built without liburing (scripts/setup installs liburing-dev)");
}
UringSends* UringSends::ForThisThread() { return nullptr; }
UringSends::UringSends(std::unique_ptr<Ring> ring) : ring_(std::move(ring)) {}
UringSends::~UringSends() = default;
void UringSends::Queue(int, const void*, Send) {}
void UringSends::QueueRecv(int, void*, uint32_t, int*) {}
UringSends::Message* UringSends::NextMessage() { return nullptr; }
void UringSends::QueueMessage(int, Message*, size_t, Send) {}
void UringSends::Submit() {}

#endif

}  // namespace switchboard::edge
