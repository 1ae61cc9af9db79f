// sb-loadgen — a cheap Socket.IO v5 / Engine.IO v4 load generator for the
// benchmark suite.
//
// Speaks the protocol itself over raw non-blocking sockets and epoll (no client
// library), one thread per process; --procs forks worker processes (each holds
// clients/procs sockets) that report to the parent over a pipe. Loopback only;
// every phase is bounded by --duration.
//
//   sb-loadgen --url 127.0.0.1:3000 --clients 10000 --procs 2 --join bench
//   --scenario listen
//              --expect 100
//
// Scenarios (after every client is connected, and has joined --join when
// given):
//   idle    hold the connections until stopped (SIGTERM/SIGINT, or a line / EOF
//   on stdin with
//           --stdin-stop) or --duration passes
//   listen  count received events (each stamped with its send time, "t":
//   microseconds since the
//           epoch) until every client got --expect of them, or --duration
//           passes
//   echo    every client emits "echo" with an ack, closed loop (--echo-rate 0)
//   or paced
//           (--echo-rate per client per second), for --duration seconds
//   storm   --clients connections at once, each: connect, handshake, CONNECT,
//   then reset and
//           again, for --duration seconds (new connections per second)
//   polling transport: --transport polling (listen / idle only): Engine.IO
//   long-polling, one
//           HTTP/1.1 keep-alive connection for the GETs and one for the POSTs
//           per client
//
// Output: one JSON line {"event":"ready",...} when all clients are connected,
// then one JSON line
// {"event":"done",...} with the totals and the latency histogram's p50 / p99 /
// max (us).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "bench/common/histogram.h"
#include "bench/common/wire.h"

namespace bench {
namespace {

struct Options {
  std::vector<std::string> urls{"127.0.0.1:3000"};
  int clients = 100;
  int procs = 1;
  int max_pending = 200;
  std::string join;
  std::string scenario = "listen";
  std::string transport = "websocket";
  std::string path = "/socket.io/";
  double duration = 30;
  double connect_timeout = 60;
  int64_t expect = 0;
  double echo_rate = 0;
  int payload = 100;
  bool stdin_stop = false;
  // Loopback source addresses to spread the connections over (127.0.0.1 ..
  // 127.0.0.N): past ~14,000 connections to one server, Linux's connect()
  // scans every used even port before it tries an odd one, and the load
  // generator, not the server, sets the pace (bench/results/scale.md).
  int source_addrs = 1;
};

struct Target {
  sockaddr_in addr{};
  std::string host;
};

// What a worker tells its parent (raw bytes over a pipe).
struct Report {
  uint64_t connected = 0;
  uint64_t failed = 0;
  uint64_t received = 0;
  uint64_t sent = 0;
  uint64_t disconnected = 0;
  int64_t first_recv_us = 0;  // realtime
  int64_t last_recv_us = 0;
  int64_t elapsed_ms = 0;  // from go to the end of the scenario
  Histogram hist;
};

enum State : uint8_t {
  kFree,
  kConnecting,
  kUpgrading,  // websocket: waiting for 101; polling: waiting for the handshake
               // response
  kOpening,    // websocket: waiting for Engine.IO open
  kNsp,        // waiting for the Socket.IO CONNECT answer
  kJoining,    // waiting for the join ack
  kReady,
  kClosed,
};

struct Conn {
  int fd = -1;
  int post_fd = -1;  // polling: the POST connection
  State st = kFree;
  bool want_out = false;
  bool post_want_out = false;
  bool get_pending = false;  // polling: a GET is outstanding
  int posts_pending = 0;     // polling: POSTs sent, responses not yet read
  uint32_t next_ack = 1;
  uint32_t outstanding = 0;
  int64_t t0_us = 0;
  uint64_t sent = 0;
  std::string in, out, post_in, post_out, sid;
};

constexpr uint64_t kPipeTag = ~uint64_t{0};
constexpr uint64_t kPostBit = uint64_t{1} << 62;

class Worker {
 public:
  Worker(const Options& opt, std::vector<Target> targets, int first, int count, int up, int down)
      : opt_(opt),
        targets_(std::move(targets)),
        first_(first),
        conns_(count),
        up_(up),
        down_(down) {}

  int Run() {
    ep_ = epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kPipeTag;
    epoll_ctl(ep_, EPOLL_CTL_ADD, down_, &ev);
    storm_ = opt_.scenario == "storm";
    polling_ = opt_.transport == "polling";
    join_frame_ = "421[\"join\"," + Quote(opt_.join) + "]";
    pad_.assign(static_cast<size_t>(std::max(0, opt_.payload - 30)), 'x');

    // Phase 1: connect everybody (storm: nobody yet).
    const int64_t connect_end = NowMonoMs() + static_cast<int64_t>(opt_.connect_timeout * 1000);
    if (!storm_) {
      while (done_connecting() < conns_.size() && NowMonoMs() < connect_end && !stop_) {
        FillPending();
        Poll(10);
      }
    }
    report_.connected = ready_;
    report_.failed = failed_;
    WriteAll(up_, &report_, sizeof(report_));  // "ready"
    // Wait for go (one byte) or stop.
    while (!go_ && !stop_) Poll(50);
    const int64_t go = NowMonoMs();
    const int64_t end = go + static_cast<int64_t>(opt_.duration * 1000);
    if (opt_.scenario == "echo") {
      RunEcho(go, end);
    } else if (storm_) {
      RunStorm(end);
    } else {
      const uint64_t want = static_cast<uint64_t>(opt_.expect) * ready_;
      while (!stop_ && NowMonoMs() < end &&
             (opt_.scenario != "listen" || report_.received < want)) {
        Poll(10);
      }
    }
    report_.elapsed_ms = NowMonoMs() - go;
    report_.connected = storm_ ? report_.received : report_.connected;
    WriteAll(up_, &report_, sizeof(report_));
    for (auto& c : conns_) CloseConn(c, false);
    return 0;
  }

 private:
  static std::string Quote(const std::string& s) { return "\"" + s + "\""; }

  size_t done_connecting() const { return ready_ + failed_; }

  static void WriteAll(int fd, const void* p, size_t n) {
    const char* b = static_cast<const char*>(p);
    while (n > 0) {
      ssize_t w = write(fd, b, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return;
      b += w;
      n -= static_cast<size_t>(w);
    }
  }

  void FillPending() {
    while (pending_ < opt_.max_pending && next_ < conns_.size()) {
      Start(next_++);
    }
  }

  int Connect(size_t i) {
    const Target& t = targets_[(first_ + i) % targets_.size()];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    // Closed by a reset (also when the process dies): no TIME_WAIT, so
    // back-to-back rounds of 19k clients do not run out of loopback ports.
    linger lg{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    if (opt_.source_addrs > 1 && (ntohl(t.addr.sin_addr.s_addr) >> 24) == 127) {
      // The port is picked at connect() for the whole 4-tuple.
      setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
      sockaddr_in src{};
      src.sin_family = AF_INET;
      src.sin_addr.s_addr =
          htonl(0x7F000001u + static_cast<uint32_t>((i / targets_.size()) % opt_.source_addrs));
      if (bind(fd, reinterpret_cast<const sockaddr*>(&src), sizeof(src)) < 0) {
        close(fd);
        return -1;
      }
    }
    if (connect(fd, reinterpret_cast<const sockaddr*>(&t.addr), sizeof(t.addr)) < 0 &&
        errno != EINPROGRESS) {
      close(fd);
      return -1;
    }
    return fd;
  }

  void Start(size_t i) {
    Conn& c = conns_[i];
    c = Conn{};
    c.t0_us = NowRealtimeUs();
    c.fd = Connect(i);
    if (c.fd < 0) {
      c.st = kClosed;
      failed_++;
      return;
    }
    c.st = kConnecting;
    pending_++;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u64 = i;
    epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &ev);
    c.want_out = true;
  }

  const std::string& HostOf(size_t i) const {
    return targets_[(first_ + i) % targets_.size()].host;
  }

  // A connection attempt ended (ok or not) before the scenario.
  void Settle(Conn& c, bool ok) {
    if (c.st < kReady && c.st != kFree) {
      pending_--;
      if (ok) {
        ready_++;
      } else {
        failed_++;
      }
    }
  }

  void Fail(size_t i) {
    Conn& c = conns_[i];
    if (c.st == kReady) {
      report_.disconnected++;
    } else if (c.st != kClosed && c.st != kFree) {
      Settle(c, false);
    }
    CloseConn(c, false);
    c.st = kClosed;
  }

  void CloseConn(Conn& c, bool reset) {
    for (int* fd : {&c.fd, &c.post_fd}) {
      if (*fd < 0) continue;
      if (reset) {
        linger lg{1, 0};
        setsockopt(*fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
      }
      close(*fd);  // also leaves epoll
      *fd = -1;
    }
  }

  void SetOut(Conn& c, size_t i, bool post, bool want) {
    bool& cur = post ? c.post_want_out : c.want_out;
    if (cur == want) return;
    cur = want;
    epoll_event ev{};
    ev.events = want ? (EPOLLIN | EPOLLOUT) : EPOLLIN;
    ev.data.u64 = i | (post ? kPostBit : 0);
    epoll_ctl(ep_, EPOLL_CTL_MOD, post ? c.post_fd : c.fd, &ev);
  }

  // Sends what is queued on one of the connection's sockets; false on a dead
  // socket.
  bool Flush(Conn& c, size_t i, bool post) {
    std::string& out = post ? c.post_out : c.out;
    const int fd = post ? c.post_fd : c.fd;
    while (!out.empty()) {
      ssize_t w = send(fd, out.data(), out.size(), MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EAGAIN || errno == EINTR) break;
        return false;
      }
      out.erase(0, static_cast<size_t>(w));
    }
    SetOut(c, i, post, !out.empty());
    return true;
  }

  // One Engine.IO packet to the server (a WebSocket frame, or a polling POST).
  void SendPacket(Conn& c, size_t i, std::string_view pkt) {
    if (polling_) {
      SendPost(c, i, pkt);
      return;
    }
    seed_ = seed_ * 6364136223846793005ULL + 1442695040888963407ULL;
    AppendFrame(c.out, kText, pkt, static_cast<uint32_t>(seed_ >> 33) | 1);
    if (!Flush(c, i, false)) Fail(i);
  }

  void HandleEvent(size_t i, bool post, uint32_t events) {
    Conn& c = conns_[i];
    if (c.fd < 0) return;
    if (c.st == kConnecting) {
      if (events & (EPOLLERR | EPOLLHUP)) return Fail(i);
      if (!(events & EPOLLOUT)) return;
      int err = 0;
      socklen_t len = sizeof(err);
      getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) return Fail(i);
      c.st = kUpgrading;
      if (polling_) {
        SendGet(c, i, "");
      } else {
        c.out = "GET " + opt_.path + "?EIO=4&transport=websocket HTTP/1.1\r\nHost: " + HostOf(i) +
                "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: "
                "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
      }
      if (!Flush(c, i, false)) return Fail(i);
      return;
    }
    if (events & EPOLLOUT) {
      if (!Flush(c, i, post)) return Fail(i);
    }
    if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP))) return;
    std::string& in = post ? c.post_in : c.in;
    const int fd = post ? c.post_fd : c.fd;
    char buf[65536];
    for (int rounds = 0; rounds < 4; ++rounds) {
      ssize_t r = recv(fd, buf, sizeof(buf), 0);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) break;
      if (r <= 0) {
        // A server may close an idle keep-alive POST connection (Node: after 5 s); the next
        // POST opens a new one. Anything else closed is a lost client.
        if (post && c.posts_pending == 0 && c.post_out.empty()) return DropPost(c);
        return Fail(i);
      }
      in.append(buf, static_cast<size_t>(r));
      if (r < static_cast<ssize_t>(sizeof(buf))) break;
    }
    if (polling_) {
      ParseHttp(i, post);
    } else {
      ParseWs(i);
    }
  }

  void ParseWs(size_t i) {
    Conn& c = conns_[i];
    if (c.st == kUpgrading) {
      size_t e = c.in.find("\r\n\r\n");
      if (e == std::string::npos) return;
      if (c.in.compare(0, 12, "HTTP/1.1 101") != 0) return Fail(i);
      c.in.erase(0, e + 4);
      c.st = kOpening;
    }
    size_t off = 0;
    Frame f;
    while (c.fd >= 0 && ParseFrame(c.in, off, f)) {
      off += f.size;
      if (f.op == kText) {
        OnPacket(i, f.payload);
      } else if (f.op == kClose) {
        return Fail(i);
      } else if (f.op == kPing) {
        AppendFrame(c.out, kPong, f.payload, 0x01020304);
        if (!Flush(c, i, false)) return Fail(i);
      }
    }
    if (c.fd >= 0) c.in.erase(0, off);
  }

  // One Engine.IO packet from the server.
  void OnPacket(size_t i, std::string_view p) {
    Conn& c = conns_[i];
    if (p.empty()) return;
    switch (p[0]) {
      case '0':
        if (c.st == kOpening || c.st == kUpgrading) {
          c.st = kNsp;
          SendPacket(c, i, "40");
        }
        return;
      case '2': SendPacket(c, i, "3"); return;
      case '1': return Fail(i);
      case '4': break;
      default: return;
    }
    if (p.size() < 2) return;
    switch (p[1]) {
      case '0':  // CONNECT answer
        if (c.st != kNsp) return;
        if (storm_) return StormDone(i);
        if (!opt_.join.empty()) {
          c.st = kJoining;
          c.next_ack = 2;
          SendPacket(c, i, join_frame_);
        } else {
          Settle(c, true);
          c.st = kReady;
        }
        return;
      case '4':  // CONNECT_ERROR
        return Fail(i);
      case '1': return Fail(i);
      case '2': {  // EVENT
        if (c.st != kReady) return;
        Received(FindStamp(p));
        return;
      }
      case '3': {  // ACK
        if (c.st == kJoining) {
          if (p.find("\"ok\":true") == std::string_view::npos) return Fail(i);
          Settle(c, true);
          c.st = kReady;
          return;
        }
        if (c.st != kReady || c.outstanding == 0) return;
        c.outstanding--;
        Received(FindStamp(p));
        if (echo_closed_loop_ && NowMonoMs() < echo_end_) SendEcho(c, i);
        return;
      }
      default: return;
    }
  }

  void Received(int64_t stamp) {
    const int64_t now = NowRealtimeUs();
    report_.received++;
    if (report_.first_recv_us == 0) report_.first_recv_us = now;
    report_.last_recv_us = now;
    if (stamp >= 0) report_.hist.Add(now - stamp);
  }

  void SendEcho(Conn& c, size_t i) {
    std::string pkt = "42" + std::to_string(c.next_ack++) +
                      "[\"echo\",{\"t\":" + std::to_string(NowRealtimeUs()) + ",\"p\":\"" + pad_ +
                      "\"}]";
    c.outstanding++;
    c.sent++;
    report_.sent++;
    SendPacket(c, i, pkt);
  }

  void RunEcho(int64_t go, int64_t end) {
    echo_end_ = end;
    echo_closed_loop_ = opt_.echo_rate <= 0;
    if (echo_closed_loop_) {
      for (size_t i = 0; i < conns_.size(); ++i) {
        if (conns_[i].st == kReady) SendEcho(conns_[i], i);
      }
    }
    while (!stop_ && NowMonoMs() < end) {
      if (!echo_closed_loop_) {
        const double elapsed = static_cast<double>(NowMonoMs() - go) / 1000.0;
        const uint64_t due = static_cast<uint64_t>(elapsed * opt_.echo_rate) + 1;
        for (size_t i = 0; i < conns_.size(); ++i) {
          Conn& c = conns_[i];
          for (int k = 0; c.st == kReady && c.sent < due && k < 1000; ++k) SendEcho(c, i);
        }
      }
      Poll(echo_closed_loop_ ? 50 : 5);
    }
    // Wait (bounded) for the acks still on their way.
    const int64_t grace = NowMonoMs() + 3000;
    while (!stop_ && NowMonoMs() < grace && Outstanding() > 0) Poll(10);
  }

  uint64_t Outstanding() const {
    uint64_t n = 0;
    for (const auto& c : conns_) {
      if (c.st == kReady) n += c.outstanding;
    }
    return n;
  }

  void StormDone(size_t i) {
    Conn& c = conns_[i];
    Received(c.t0_us);
    pending_--;
    CloseConn(c, true);
    c.st = kClosed;
  }

  void RunStorm(int64_t end) {
    pending_ = 0;
    for (size_t i = 0; i < conns_.size(); ++i) Start(i);
    while (!stop_ && NowMonoMs() < end) {
      Poll(5);
      for (size_t i = 0; i < conns_.size() && NowMonoMs() < end; ++i) {
        if (conns_[i].st == kClosed) Start(i);
      }
    }
    report_.failed = failed_;
  }

  // --- polling transport
  // ---------------------------------------------------------------------

  void SendGet(Conn& c, size_t i, std::string_view sid) {
    c.out += "GET " + opt_.path + "?EIO=4&transport=polling" +
             (sid.empty() ? std::string() : "&sid=" + std::string(sid)) +
             " HTTP/1.1\r\nHost: " + HostOf(i) + "\r\n\r\n";
    c.get_pending = true;
    if (c.st != kUpgrading && !Flush(c, i, false)) Fail(i);
  }

  void DropPost(Conn& c) {
    close(c.post_fd);
    c.post_fd = -1;
    c.post_in.clear();
    c.post_want_out = false;
  }

  void SendPost(Conn& c, size_t i, std::string_view pkt) {
    if (c.post_fd < 0) {
      c.post_fd = Connect(i);
      if (c.post_fd < 0) return Fail(i);
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLOUT;
      ev.data.u64 = i | kPostBit;
      epoll_ctl(ep_, EPOLL_CTL_ADD, c.post_fd, &ev);
      c.post_want_out = true;
    }
    c.post_out += "POST " + opt_.path + "?EIO=4&transport=polling&sid=" + c.sid +
                  " HTTP/1.1\r\nHost: " + HostOf(i) +
                  "\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: " +
                  std::to_string(pkt.size()) + "\r\n\r\n";
    c.post_out.append(pkt);
    c.posts_pending++;
    // The socket may still be connecting: EPOLLOUT flushes it.
    SetOut(c, i, true, true);
  }

  // Splits HTTP/1.1 responses (Content-Length or chunked bodies) off the
  // buffer.
  void ParseHttp(size_t i, bool post) {
    Conn& c = conns_[i];
    std::string& in = post ? c.post_in : c.in;
    for (int guard = 0; guard < 1000 && (post ? c.post_fd : c.fd) >= 0; ++guard) {
      size_t e = in.find("\r\n\r\n");
      if (e == std::string::npos) return;
      std::string_view head(in.data(), e);
      if (head.compare(0, 12, "HTTP/1.1 200") != 0) return Fail(i);
      std::string body;
      size_t consumed;
      size_t cl = FindHeader(head, "content-length:");
      if (cl != std::string::npos) {
        size_t n = std::strtoul(in.c_str() + cl, nullptr, 10);
        if (in.size() < e + 4 + n) return;
        body = in.substr(e + 4, n);
        consumed = e + 4 + n;
      } else if (FindHeader(head, "transfer-encoding:") != std::string::npos) {
        size_t pos = e + 4;
        bool complete = false;
        while (true) {
          size_t le = in.find("\r\n", pos);
          if (le == std::string::npos) break;
          size_t n = std::strtoul(in.c_str() + pos, nullptr, 16);
          if (in.size() < le + 2 + n + 2) break;
          body.append(in, le + 2, n);
          pos = le + 2 + n + 2;
          if (n == 0) {
            complete = true;
            break;
          }
        }
        if (!complete) return;
        consumed = pos;
      } else {
        return Fail(i);
      }
      in.erase(0, consumed);
      if (post) {
        c.posts_pending--;
        continue;
      }
      c.get_pending = false;
      // Engine.IO payload: packets separated by 0x1e.
      size_t s = 0;
      while (s <= body.size()) {
        size_t t = body.find('\x1e', s);
        if (t == std::string::npos) t = body.size();
        std::string_view pkt(body.data() + s, t - s);
        if (c.st == kUpgrading && !pkt.empty() && pkt[0] == '0') {
          size_t k = pkt.find("\"sid\":\"");
          if (k == std::string_view::npos) return Fail(i);
          size_t q = pkt.find('"', k + 7);
          c.sid = std::string(pkt.substr(k + 7, q - k - 7));
        }
        OnPacket(i, pkt);
        if (c.fd < 0) return;
        s = t + 1;
      }
      if (!c.get_pending && c.st != kClosed) SendGet(c, i, c.sid);
    }
  }

  static size_t FindHeader(std::string_view head, std::string_view name) {
    for (size_t p = head.find("\r\n"); p != std::string_view::npos; p = head.find("\r\n", p + 2)) {
      if (head.size() - p - 2 < name.size()) return std::string_view::npos;
      bool eq = true;
      for (size_t k = 0; k < name.size() && eq; ++k) {
        eq = std::tolower(static_cast<unsigned char>(head[p + 2 + k])) == name[k];
      }
      if (eq) {
        size_t v = p + 2 + name.size();
        while (v < head.size() && head[v] == ' ') ++v;
        return v;
      }
    }
    return std::string_view::npos;
  }

  // -------------------------------------------------------------------------------------------

  void Poll(int timeout_ms) {
    epoll_event evs[512];
    int n = epoll_wait(ep_, evs, 512, timeout_ms);
    for (int k = 0; k < n; ++k) {
      const uint64_t tag = evs[k].data.u64;
      if (tag == kPipeTag) {
        char b = 0;
        ssize_t r = read(down_, &b, 1);
        if (r <= 0 || b == 's') stop_ = true;
        if (b == 'g') go_ = true;
        continue;
      }
      HandleEvent(tag & ~kPostBit, (tag & kPostBit) != 0, evs[k].events);
    }
    if (!storm_) FillPending();
  }

  const Options& opt_;
  std::vector<Target> targets_;
  int first_;
  std::vector<Conn> conns_;
  int up_, down_;
  int ep_ = -1;
  bool storm_ = false;
  bool polling_ = false;
  bool go_ = false;
  bool stop_ = false;
  bool echo_closed_loop_ = false;
  int64_t echo_end_ = 0;
  size_t next_ = 0;
  int pending_ = 0;
  size_t ready_ = 0;
  size_t failed_ = 0;
  uint64_t seed_ = 88172645463325252ULL;
  std::string join_frame_, pad_;
  Report report_;
};

bool ReadAll(int fd, void* p, size_t n, int64_t deadline_ms) {
  char* b = static_cast<char*>(p);
  while (n > 0) {
    pollfd pfd{fd, POLLIN, 0};
    const int64_t left = deadline_ms - NowMonoMs();
    if (left <= 0) return false;
    if (poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left, 1000))) <= 0) continue;
    ssize_t r = read(fd, b, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    b += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

int Main(int argc, char** argv) {
  Options opt;
  CLI::App app{"sb-loadgen: Socket.IO load generator for the benchmark suite"};
  app.add_option("--url", opt.urls, "server HOST:PORT (repeat: clients are spread round-robin)");
  app.add_option("--clients", opt.clients, "clients (storm: connections at once)");
  app.add_option("--procs", opt.procs, "worker processes");
  app.add_option("--max-pending", opt.max_pending, "handshakes in flight per worker");
  app.add_option("--join", opt.join, "room every client joins (emit \"join\" with an ack)");
  app.add_option("--scenario", opt.scenario, "idle | listen | echo | storm")
      ->check(CLI::IsMember({"idle", "listen", "echo", "storm"}));
  app.add_option("--transport", opt.transport, "websocket | polling")
      ->check(CLI::IsMember({"websocket", "polling"}));
  app.add_option("--path", opt.path, "Engine.IO path");
  app.add_option("--duration", opt.duration, "seconds: bound of the scenario phase");
  app.add_option("--connect-timeout", opt.connect_timeout, "seconds: bound of the connect phase");
  app.add_option("--expect", opt.expect, "listen: events per client to wait for");
  app.add_option("--echo-rate", opt.echo_rate,
                 "echo: emits per client per second (0: closed loop)");
  app.add_option("--payload", opt.payload, "echo: approximate payload bytes");
  app.add_flag("--stdin-stop", opt.stdin_stop, "stop on a line or EOF on stdin");
  app.add_option("--source-addrs", opt.source_addrs,
                 "spread connections to a loopback server over source addresses 127.0.0.1..N")
      ->check(CLI::Range(1, 254));
  CLI11_PARSE(app, argc, argv);
  RaiseFileLimit();
  signal(SIGPIPE, SIG_IGN);

  std::vector<Target> targets;
  for (const auto& u : opt.urls) {
    std::string hp = u.rfind("http://", 0) == 0 ? u.substr(7) : u;
    size_t colon = hp.rfind(':');
    Target t;
    t.host = hp;
    t.addr.sin_family = AF_INET;
    t.addr.sin_port = htons(static_cast<uint16_t>(std::atoi(hp.c_str() + colon + 1)));
    if (colon == std::string::npos ||
        inet_pton(AF_INET, hp.substr(0, colon).c_str(), &t.addr.sin_addr) != 1) {
      std::fprintf(stderr, "sb-loadgen: bad --url %s (want IPv4:PORT)\n", u.c_str());
      return 2;
    }
    targets.push_back(t);
  }
  const int procs = std::max(1, std::min(opt.procs, opt.clients > 0 ? opt.clients : 1));

  // Signals: the parent forwards a stop to the workers; workers ignore them
  // (the pipe stops them).
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigprocmask(SIG_BLOCK, &mask, nullptr);

  struct Child {
    pid_t pid;
    int up, down;
  };
  std::vector<Child> kids;
  int first = 0;
  for (int p = 0; p < procs; ++p) {
    const int count = opt.clients / procs + (p < opt.clients % procs ? 1 : 0);
    int up[2], down[2];
    if (pipe(up) != 0 || pipe(down) != 0) return 1;
    pid_t pid = fork();
    if (pid == 0) {
      close(up[0]);
      close(down[1]);
      for (const auto& k : kids) {
        close(k.up);
        close(k.down);
      }
      Worker w(opt, targets, first, count, up[1], down[0]);
      _exit(w.Run());
    }
    close(up[1]);
    close(down[0]);
    kids.push_back({pid, up[0], down[1]});
    first += count;
  }
  const int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
  const int64_t t_start = NowMonoMs();

  auto reports = std::make_unique<std::vector<Report>>(kids.size());
  const int64_t ready_deadline = t_start + static_cast<int64_t>(opt.connect_timeout * 1000) + 5000;
  Report total;
  bool ok = true;
  for (size_t k = 0; k < kids.size(); ++k) {
    ok = ReadAll(kids[k].up, &(*reports)[k], sizeof(Report), ready_deadline) && ok;
    total.connected += (*reports)[k].connected;
    total.failed += (*reports)[k].failed;
  }
  std::printf(
      "{\"event\":\"ready\",\"connected\":%llu,\"failed\":%llu,"
      "\"connect_ms\":%lld,\"ok\":%s}\n",
      static_cast<unsigned long long>(total.connected),
      static_cast<unsigned long long>(total.failed), static_cast<long long>(NowMonoMs() - t_start),
      ok ? "true" : "false");
  std::fflush(stdout);
  for (auto& k : kids) {
    if (write(k.down, "g", 1) != 1) ok = false;
  }

  // Wait for the workers' reports; a signal or stdin (with --stdin-stop) stops
  // them first.
  const int64_t run_deadline = NowMonoMs() + static_cast<int64_t>(opt.duration * 1000) + 10000;
  std::vector<bool> have(kids.size(), false);
  size_t got = 0;
  bool stopped = false;
  while (got < kids.size() && NowMonoMs() < run_deadline) {
    std::vector<pollfd> pfds;
    for (auto& k : kids) pfds.push_back({k.up, POLLIN, 0});
    pfds.push_back({sfd, POLLIN, 0});
    pfds.push_back({opt.stdin_stop ? 0 : -1, POLLIN, 0});
    if (poll(pfds.data(), pfds.size(), 200) <= 0) continue;
    bool stop_now = (pfds[kids.size()].revents & POLLIN) != 0;
    if (pfds[kids.size() + 1].revents & (POLLIN | POLLHUP)) stop_now = true;
    if (stop_now && !stopped) {
      stopped = true;
      for (auto& k : kids) {
        if (write(k.down, "s", 1) != 1) ok = false;
      }
    }
    for (size_t k = 0; k < kids.size(); ++k) {
      if (have[k] || !(pfds[k].revents & (POLLIN | POLLHUP))) continue;
      have[k] = ReadAll(kids[k].up, &(*reports)[k], sizeof(Report), NowMonoMs() + 5000);
      ok = ok && have[k];
      got++;
    }
  }
  if (got < kids.size()) ok = false;
  total = Report{};
  for (size_t k = 0; k < kids.size(); ++k) {
    if (!have[k]) continue;
    const Report& r = (*reports)[k];
    total.connected += r.connected;
    total.failed += r.failed;
    total.received += r.received;
    total.sent += r.sent;
    total.disconnected += r.disconnected;
    total.elapsed_ms = std::max(total.elapsed_ms, r.elapsed_ms);
    if (r.first_recv_us && (!total.first_recv_us || r.first_recv_us < total.first_recv_us)) {
      total.first_recv_us = r.first_recv_us;
    }
    total.last_recv_us = std::max(total.last_recv_us, r.last_recv_us);
    total.hist.Merge(r.hist);
  }
  for (auto& k : kids) {
    close(k.down);
    kill(k.pid,
         SIGKILL);  // they have reported; do not wait for their socket teardown
    waitpid(k.pid, nullptr, 0);
  }
  std::printf(
      "{\"event\":\"done\",\"scenario\":\"%s\",\"connected\":%llu,\"failed\":%"
      "llu,"
      "\"received\":%llu,\"sent\":%llu,\"expected\":%llu,\"disconnected\":%llu,"
      "\"elapsed_ms\":%lld,\"first_recv_us\":%lld,\"last_recv_us\":%lld,"
      "\"p50_us\":%lld,\"p99_us\":%lld,\"max_us\":%lld,\"ok\":%s}\n",
      opt.scenario.c_str(), static_cast<unsigned long long>(total.connected),
      static_cast<unsigned long long>(total.failed),
      static_cast<unsigned long long>(total.received), static_cast<unsigned long long>(total.sent),
      static_cast<unsigned long long>(opt.scenario == "listen" ? opt.expect * total.connected
                                                               : total.sent),
      static_cast<unsigned long long>(total.disconnected), static_cast<long long>(total.elapsed_ms),
      static_cast<long long>(total.first_recv_us), static_cast<long long>(total.last_recv_us),
      static_cast<long long>(total.hist.Quantile(0.5)),
      static_cast<long long>(total.hist.Quantile(0.99)), static_cast<long long>(total.hist.max()),
      ok ? "true" : "false");
  std::fflush(stdout);
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) { return bench::Main(argc, argv); }
