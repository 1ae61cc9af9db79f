#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace switchboard::edge {

// Non-blocking sends batched through one io_uring per I/O thread: the writes
// of a delivery walk (one frame to each of thousands of clients) are queued,
// then handed to the kernel in a few io_uring_enter calls at the end of the
// walk instead of one send() each; so are the sendmsg calls of a loop turn's
// flush, and the reads of a batch of readiness events (QueueRecv). All carry
// MSG_DONTWAIT, so each completes during the submit: with what the socket
// took (or held), or -EAGAIN.
//
// Off unless Enable(true) ran before the I/O threads first use it, and on a
// thread whose ring could not be made (an old kernel, a seccomp profile that
// forbids io_uring, as container runtimes' defaults do): ForThisThread() is
// then null and the caller sends as before.
class UringSends {
 public:
  // Sends queued before a submit: a walk of thousands of clients takes a
  // few io_uring_enter calls. (The completion queue is twice as large, so
  // it never overflows.)
  static constexpr unsigned kEntries = 1024;

  struct Send;
  // Told of a send inside Submit: `result` is the bytes the kernel took, or
  // -errno. (A function, not an interface: a connection carries no extra
  // vtable pointer for it.)
  using Sent = void (*)(const Send& send, int result);
  struct Send {
    std::shared_ptr<void> owner;  // held until `sent` has run
    // What the bytes were made of, held too (e.g. to queue what the kernel
    // did not take).
    std::shared_ptr<const std::string> content;
    Sent sent = nullptr;
    uint32_t size = 0;  // bytes to send
    uint32_t tag = 0;   // the owner's own
    int* result = nullptr;  // a recv's: where its result goes (`sent` is null)
  };

  // Makes and drops one ring: whether this process may use io_uring (to say
  // so at start; a thread that cannot make its ring later sends as before).
  static absl::Status Probe();
  // Process-wide; threads that already made (or failed to make) their ring
  // keep it.
  static void Enable(bool on);
  // Sends that went through io_uring since the start, all threads.
  static uint64_t sends();
  // Reads (QueueRecv) that went through io_uring since the start, all threads.
  static uint64_t recvs();
  // This thread's batcher, made on the first call; null when off, when the
  // ring could not be made, or after the kernel refused a submit or a wait
  // (the sends it could not finish failed: their connections are lost).
  static UringSends* ForThisThread();

  ~UringSends();
  UringSends(const UringSends&) = delete;
  UringSends& operator=(const UringSends&) = delete;

  // Queues send(fd, data, send.size); not when full(). `data` and the
  // descriptor must stay valid until Submit.
  void Queue(int fd, const void* data, Send send);

  // Queues recv(fd, buffer, size), MSG_DONTWAIT too: the bytes read, 0 at
  // the end of the stream or -errno, are stored in *result during Submit.
  // Same rules as Queue.
  void QueueRecv(int fd, void* buffer, uint32_t size, int* result);

  // Gathered buffers for one sendmsg (a connection's queued frames), lent
  // until the next Submit: the caller points iov at its bytes, may keep small
  // ones of its own (frame headers) in scratch, and queues it.
  static constexpr size_t kMessageIov = 16;
  static constexpr size_t kMessageScratch = 128;
  static constexpr unsigned kMessages = 256;
  struct Message {
    msghdr header;
    iovec iov[kMessageIov];
    uint8_t scratch[kMessageScratch];
  };
  // A message to fill, or null when all are lent (Submit first) or there is
  // no ring.
  Message* NextMessage();
  // Queues sendmsg(fd, message's first `iov_count` buffers): `message` is the
  // one NextMessage returned; not when full(). The buffers and the
  // descriptor must stay valid until Submit.
  void QueueMessage(int fd, Message* message, size_t iov_count, Send send);
  // Submit before the next Queue.
  bool full() const { return pending_.size() >= kEntries; }
  // Sends everything queued, then tells each owner, in queue order.
  void Submit();
  bool empty() const { return pending_.empty(); }
  // Inside Submit (telling the owners): nothing may be queued now.
  bool busy() const { return submitting_; }

 private:
  struct Ring;
  explicit UringSends(std::unique_ptr<Ring> ring);

  std::unique_ptr<Ring> ring_;
  std::vector<Send> pending_;
  std::vector<Send> running_;  // the ones being told, inside Submit
  // kMessages, made on first use; the first messages_lent_ are queued.
  std::unique_ptr<Message[]> messages_;
  unsigned messages_lent_ = 0;
  // An OnSent that closes a socket may call Submit again.
  bool submitting_ = false;
};

}  // namespace switchboard::edge
