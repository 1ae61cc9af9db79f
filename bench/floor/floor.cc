// sb-bench-floor — the kernel floor of the benchmark: a minimal single-threaded
// epoll server that does only what the load generator needs (Engine.IO v4 over
// WebSocket directly, Socket.IO CONNECT to "/", the "join" event with ack, the
// "echo" event answered by its ack) and, on POST /publish
// {"room","event","payload"} (as the Node reference script), encodes the frame
// once and writes it with one send() per recipient. Whatever Switchboard or
// Node spend beyond this is their own overhead.
//
// --io-uring: the same, but a publish's sends go to the kernel through one
// io_uring (up to kRingEntries per io_uring_enter), not one send() each:
// what batching the system calls of a fan-out can save (issue 19).
//
//   sb-bench-floor [--listen 127.0.0.1:0] [--io-uring]     prints "listening on
//   http://HOST:PORT"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#ifdef SB_FLOOR_IO_URING
#include <liburing.h>
#endif

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "bench/common/wire.h"

namespace bench {
namespace {

struct Conn {
  int fd = -1;
  bool ws = false;
  bool want_out = false;
  std::string in, out;
  std::string room;
  size_t room_pos = 0;
};

#ifdef SB_FLOOR_IO_URING
constexpr unsigned kRingEntries = 4096;
#endif

class Floor {
 public:
  explicit Floor(int listen_fd) : lfd_(listen_fd) {}
#ifdef SB_FLOOR_IO_URING
  ~Floor() {
    if (uring_) io_uring_queue_exit(&ring_);
  }

  bool UseIoUring() {
    io_uring_params params{};
    params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN;
    int rc = io_uring_queue_init_params(kRingEntries, &ring_, &params);
    if (rc < 0) {
      std::fprintf(stderr, "sb-bench-floor: io_uring_queue_init: %s\n", std::strerror(-rc));
      return false;
    }
    uring_ = true;
    return true;
  }
#else
  bool UseIoUring() {
    std::fprintf(stderr, "sb-bench-floor: built without liburing (scripts/setup installs liburing-dev)\n");
    return false;
  }
#endif

  void Run() {
    ep_ = epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = lfd_;
    epoll_ctl(ep_, EPOLL_CTL_ADD, lfd_, &ev);
    epoll_event evs[1024];
    // Runs until killed (the bench runner stops it by PID).
    while (true) {
      int n = epoll_wait(ep_, evs, 1024, 1000);
      for (int k = 0; k < n; ++k) {
        const int fd = evs[k].data.fd;
        if (fd == lfd_) {
          Accept();
        } else {
          Handle(fd, evs[k].events);
        }
      }
    }
  }

 private:
  void Accept() {
    for (int k = 0; k < 256; ++k) {
      int fd = accept4(lfd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      if (static_cast<size_t>(fd) >= conns_.size()) conns_.resize(fd + 1024);
      conns_[fd] = Conn{};
      conns_[fd].fd = fd;
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = fd;
      epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
    }
  }

  void Close(Conn& c) {
    if (c.fd < 0) return;
    if (!c.room.empty()) {
      auto& members = rooms_[c.room];
      const int last = members.back();
      members[c.room_pos] = last;
      conns_[last].room_pos = c.room_pos;
      members.pop_back();
    }
    close(c.fd);
    c = Conn{};
  }

  // Queues bytes behind anything pending, or sends them at once (one send()).
  void Write(Conn& c, std::string_view data) {
    if (c.out.empty()) {
      ssize_t w = send(c.fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w == static_cast<ssize_t>(data.size())) return;
      if (w < 0) {
        if (errno != EAGAIN) return;  // the read side sees the error and closes
        w = 0;
      }
      data.remove_prefix(static_cast<size_t>(w));
    }
    c.out.append(data);
    if (!c.want_out) {
      c.want_out = true;
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLOUT;
      ev.data.fd = c.fd;
      epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
    }
  }

  void Handle(int fd, uint32_t events) {
    Conn& c = conns_[fd];
    if (c.fd < 0) return;
    if (events & EPOLLOUT) {
      while (!c.out.empty()) {
        ssize_t w = send(fd, c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w <= 0) break;
        c.out.erase(0, static_cast<size_t>(w));
      }
      if (c.out.empty()) {
        c.want_out = false;
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = fd;
        epoll_ctl(ep_, EPOLL_CTL_MOD, fd, &ev);
      }
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
    char buf[65536];
    ssize_t r = recv(fd, buf, sizeof(buf), 0);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) return Close(c);
    if (r < 0) return;
    c.in.append(buf, static_cast<size_t>(r));
    if (c.ws) {
      ParseWs(c);
    } else {
      ParseHttp(c);
    }
  }

  static std::string Header(std::string_view head, std::string_view name) {
    for (size_t p = head.find("\r\n"); p != std::string_view::npos; p = head.find("\r\n", p + 2)) {
      if (head.size() - p - 2 > name.size() &&
          strncasecmp(head.data() + p + 2, name.data(), name.size()) == 0 &&
          head[p + 2 + name.size()] == ':') {
        size_t v = p + 3 + name.size();
        while (v < head.size() && head[v] == ' ') ++v;
        size_t e = head.find("\r\n", v);
        return std::string(head.substr(v, (e == std::string_view::npos ? head.size() : e) - v));
      }
    }
    return {};
  }

  static std::string WsAccept(const std::string& key) {
    const std::string s = key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(s.data(), s.size(), md, &n, EVP_sha1(), nullptr);
    unsigned char b64[64];
    const int len = EVP_EncodeBlock(b64, md, static_cast<int>(n));
    return std::string(reinterpret_cast<char*>(b64), static_cast<size_t>(len));
  }

  void ParseHttp(Conn& c) {
    for (int guard = 0; guard < 1000 && c.fd >= 0 && !c.ws; ++guard) {
      const size_t e = c.in.find("\r\n\r\n");
      if (e == std::string::npos) return;
      const std::string_view head(c.in.data(), e);
      if (head.starts_with("GET /socket.io/") && !Header(head, "Sec-WebSocket-Key").empty()) {
        const std::string resp =
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: "
            "websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: " +
            WsAccept(Header(head, "Sec-WebSocket-Key")) + "\r\n\r\n";
        c.in.erase(0, e + 4);
        c.ws = true;
        Write(c, resp);
        std::string frame;
        AppendFrame(frame, kText,
                    "0{\"sid\":\"f" + std::to_string(++ids_) +
                        "\",\"upgrades\":[],\"pingInterval\":300000,"
                        "\"pingTimeout\":60000,"
                        "\"maxPayload\":1000000}",
                    0);
        Write(c, frame);
        return ParseWs(c);
      }
      if (head.starts_with("POST /publish")) {
        const size_t n = std::strtoul(Header(head, "Content-Length").c_str(), nullptr, 10);
        if (c.in.size() < e + 4 + n) return;
        const bool ok = Publish(std::string_view(c.in).substr(e + 4, n));
        c.in.erase(0, e + 4 + n);
        Write(c, ok ? "HTTP/1.1 200 OK\r\nContent-Type: "
                      "application/json\r\nContent-Length: "
                      "11\r\n\r\n{\"ok\":true}"
                    : "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        continue;
      }
      Write(c,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: "
            "close\r\n\r\n");
      return Close(c);
    }
  }

  bool Publish(std::string_view body) {
    nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("room") || !j["room"].is_string() ||
        !j.contains("event") || !j["event"].is_string()) {
      return false;
    }
    auto it = rooms_.find(j["room"].get<std::string>());
    if (it == rooms_.end()) return true;
    std::string frame;
    AppendFrame(frame, kText,
                "42[" + nlohmann::json(j["event"]).dump() + "," +
                    (j.contains("payload") ? j["payload"].dump() : "null") + "]",
                0);
#ifdef SB_FLOOR_IO_URING
    if (uring_) {
      SendAll(it->second, frame);
      return true;
    }
#endif
    for (int fd : it->second) Write(conns_[fd], frame);
    return true;
  }

#ifdef SB_FLOOR_IO_URING
  // One send per recipient, submitted kRingEntries at a time; what the
  // kernel could not take at once is queued as Write does.
  void SendAll(const std::vector<int>& fds, const std::string& frame) {
    size_t queued = 0;
    for (int fd : fds) {
      Conn& c = conns_[fd];
      if (!c.out.empty()) {
        Write(c, frame);
        continue;
      }
      io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
      if (sqe == nullptr) {
        Reap(frame, queued);
        queued = 0;
        sqe = io_uring_get_sqe(&ring_);
      }
      io_uring_prep_send(sqe, fd, frame.data(), frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      io_uring_sqe_set_data64(sqe, static_cast<uint64_t>(fd));
      ++queued;
    }
    Reap(frame, queued);
  }

  // Submits the queued sends and waits for their completions (a
  // non-blocking send completes during the submit).
  void Reap(const std::string& frame, size_t queued) {
    if (queued == 0) return;
    io_uring_submit_and_wait(&ring_, static_cast<unsigned>(queued));
    size_t seen = 0;
    while (seen < queued) {
      io_uring_cqe* cqes[256];
      unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, 256);
      if (n == 0) {
        io_uring_cqe* cqe = nullptr;
        if (io_uring_wait_cqe(&ring_, &cqe) < 0) return;
        continue;
      }
      for (unsigned i = 0; i < n; ++i) {
        const int fd = static_cast<int>(io_uring_cqe_get_data64(cqes[i]));
        const int res = cqes[i]->res;
        Conn& c = conns_[fd];
        if (c.fd >= 0 && res < static_cast<int>(frame.size()) && (res >= 0 || res == -EAGAIN)) {
          Write(c, std::string_view(frame).substr(res > 0 ? static_cast<size_t>(res) : 0));
        }
      }
      io_uring_cq_advance(&ring_, n);
      seen += n;
    }
  }
#endif

  void Send(Conn& c, std::string_view text) {
    std::string frame;
    AppendFrame(frame, kText, text, 0);
    Write(c, frame);
  }

  void ParseWs(Conn& c) {
    size_t off = 0;
    Frame f;
    while (c.fd >= 0 && ParseFrame(c.in, off, f)) {
      off += f.size;
      if (f.op == kClose) return Close(c);
      if (f.op == kPing) {
        std::string frame;
        AppendFrame(frame, kPong, f.payload, 0);
        Write(c, frame);
        continue;
      }
      if (f.op != kText) continue;
      OnPacket(c, f.payload);
    }
    if (c.fd >= 0) c.in.erase(0, off);
  }

  void OnPacket(Conn& c, std::string_view p) {
    if (p == "40") return Send(c, "40{\"sid\":\"s" + std::to_string(++ids_) + "\"}");
    if (p.size() < 3 || p[0] != '4' || p[1] != '2') return;
    size_t i = 2;
    while (i < p.size() && p[i] >= '0' && p[i] <= '9') ++i;
    const std::string_view id = p.substr(2, i - 2);
    const std::string_view rest = p.substr(i);
    if (rest.starts_with("[\"join\",\"") && rest.ends_with("\"]")) {
      if (!c.room.empty()) return;
      c.room = std::string(rest.substr(9, rest.size() - 11));
      auto& members = rooms_[c.room];
      c.room_pos = members.size();
      members.push_back(c.fd);
      if (!id.empty()) Send(c, "43" + std::string(id) + "[{\"ok\":true}]");
      return;
    }
    if (rest.starts_with("[\"echo\",") && !id.empty()) {
      Send(c, "43" + std::string(id) + "[" + std::string(rest.substr(8)));
    }
  }

  int lfd_;
  int ep_ = -1;
  uint64_t ids_ = 0;
  std::vector<Conn> conns_;
  std::unordered_map<std::string, std::vector<int>> rooms_;
#ifdef SB_FLOOR_IO_URING
  io_uring ring_{};
  bool uring_ = false;
#endif
};

int Main(int argc, char** argv) {
  std::string listen = "127.0.0.1:0";
  CLI::App app{
      "sb-bench-floor: minimal epoll fan-out server (the benchmark's "
      "kernel floor)"};
  app.add_option("--listen", listen, "IPv4:PORT (0: a free port)");
  bool io_uring = false;
  app.add_flag("--io-uring", io_uring, "a publish's sends through one io_uring (batched submits)");
  CLI11_PARSE(app, argc, argv);
  RaiseFileLimit();
  signal(SIGPIPE, SIG_IGN);
  const size_t colon = listen.rfind(':');
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::atoi(listen.c_str() + colon + 1)));
  if (colon == std::string::npos ||
      inet_pton(AF_INET, listen.substr(0, colon).c_str(), &addr.sin_addr) != 1) {
    std::fprintf(stderr, "sb-bench-floor: bad --listen %s\n", listen.c_str());
    return 2;
  }
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(lfd, 4096) != 0) {
    std::perror("sb-bench-floor: bind");
    return 1;
  }
  socklen_t len = sizeof(addr);
  getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
  char host[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &addr.sin_addr, host, sizeof(host));
  Floor floor(lfd);
  if (io_uring && !floor.UseIoUring()) return 1;
  std::printf("listening on http://%s:%d\n", host, ntohs(addr.sin_port));
  std::fflush(stdout);
  floor.Run();
  return 0;
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) { return bench::Main(argc, argv); }
