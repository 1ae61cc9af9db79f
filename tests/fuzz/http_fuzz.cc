// links: sb_edge
// fuzz-flags: -detect_leaks=0
//
// HTTP request handling, end to end: the input is what one client writes on
// one TCP connection to a real in-process edge.
//
// Why not fuzz the pieces (Beast's parser, ParseQuery, eio::Server routing)?
// The request path is HttpSession (header/body limits, keep-alive,
// pipelining), eio::Server::HandleRequest (query, CORS,
// handshake, sid lookup, upgrade), eio::Session (polling POST/GET, payload
// decoding, WebSocket probe/upgrade), WebSocketTransport and the sio::Client
// behind it; most of it is only callable with a live connection. Loopback
// connections are fast enough (200-500 exec/s with ASan on 2 shared cores,
// most inputs take 1-4 ms), so the target runs the real thing:
//
//   once:       edge::Runtime (1 thread) + edge::HttpServer on 127.0.0.1:0
//               with a sio::Server at /socket.io/ (namespaces "/" and
//               "/custom" with echo, ack, room and broadcast handlers, a
//               middleware that can refuse) and a raw Engine.IO echo server
//               at /engine.io/, like services/conformance_fixture.cc; short
//               ping / upgrade / connect timeouts so sessions the inputs
//               open go away quickly; the handshake rate limit off
//               (everything comes from 127.0.0.1), other limits as in
//               production.
//   per input:  connect, write the bytes, half-close, read until the edge
//               closes or 200 ms pass, close (HTTP_FUZZ_VERBOSE=1 prints
//               the answers).
// One shard, so the cross-shard migration of HttpSession is not exercised.
//
// Two markers make the stateful parts reachable:
//   $SID   replaced by the sid of a fresh polling session (the target makes
//          a handshake on another connection first), so inputs can POST,
//          poll and upgrade an existing session;
//   $WAIT  splits the input: the bytes before it are written, then the
//          target waits for the edge to answer (at most 100 ms) before
//          writing the rest, as a WebSocket client waits for the 101 before
//          sending frames (bytes pipelined behind an upgrade request are
//          dropped, as RFC 6455 allows).
//
// The edge's thread runs only during an input (parked in between, see
// Edge::Park), so a crash or sanitizer report on it is reported with the
// input that caused it.
//
// Invariants: whatever the edge sends starts as an HTTP/1.1 response; after
// each of the first 64 inputs (a whole replay) and every 256th, the edge
// still completes a handshake within 3 s, which also fails when sessions are
// never released (max_connections = 10000 as in production); the edge's
// thread never stays busy for 10 s.
//
// Leaks: the edge lives on across inputs, so memory an input leaves behind
// is not a leak of that input; libFuzzer's per-input leak check
// (-detect_leaks, which also halves the speed) is off for this target
// (fuzz-flags above). LeakSanitizer still checks at exit: memory no longer
// reachable from the edge (e.g. a session kept alive by a reference cycle
// after it closed) is reported then.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "edge/engineio/server.h"
#include "edge/http/server.h"
#include "edge/runtime.h"
#include "edge/socketio/server.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace switchboard;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::string_view kSidMarker = "$SID";
constexpr std::string_view kWaitMarker = "$WAIT";
constexpr auto kReadTimeout = milliseconds(200);
constexpr auto kWaitTimeout = milliseconds(100);
constexpr size_t kMaxKeptResponse = 64 * 1024;

// Options members that may not exist in every version of options.h.
template <class O>
void DisableHandshakeRateLimit(O& options) {
  if constexpr (requires { options.handshake_rate.rate.per_second; }) {
    options.handshake_rate.rate.per_second = 0;
  }
}

eio::Options EngineOptions() {
  eio::Options o;
  o.ping_interval = milliseconds(150);
  o.ping_timeout = milliseconds(150);
  o.upgrade_timeout = milliseconds(150);
  o.cors.origins = {"https://allowed.example", "http://localhost:3000"};
  o.cors.credentials = true;
  DisableHandshakeRateLimit(o);
  return o;
}

void AddHandlers(sio::Namespace& nsp) {
  using sio::Json;
  nsp.OnConnection([](const sio::SocketPtr& socket) {
    socket->Emit("auth", Json::array({socket->auth()}));
  });
  nsp.On("message", [](const sio::SocketPtr& socket, std::string_view, Json& args, sio::Ack) {
    socket->Emit("message-back", std::move(args));
  });
  nsp.On("message-with-ack",
         [](const sio::SocketPtr&, std::string_view, Json& args, sio::Ack ack) {
           if (ack) ack(std::move(args));
         });
  nsp.On("volatile", [](const sio::SocketPtr& socket, std::string_view, Json& args, sio::Ack) {
    socket->EmitVolatile("volatile-back", std::move(args));
  });
  nsp.On("join", [](const sio::SocketPtr& socket, std::string_view, Json& args, sio::Ack ack) {
    if (!args.empty() && args[0].is_string() && args[0].get_ref<const std::string&>().size() < 64) {
      socket->Join(args[0].get_ref<const std::string&>());
    }
    if (ack) ack(Json::array({socket->id()}));
  });
  nsp.On("leave", [](const sio::SocketPtr& socket, std::string_view, Json& args, sio::Ack ack) {
    if (!args.empty() && args[0].is_string()) socket->Leave(args[0].get_ref<const std::string&>());
    if (ack) ack(Json::array());
  });
  nsp.On("to-room", [](const sio::SocketPtr& socket, std::string_view, Json& args, sio::Ack) {
    if (args.empty() || !args[0].is_string()) return;
    const std::string room = args[0].get<std::string>();
    socket->nsp().To(room).Emit("room-message", std::move(args));
  });
  nsp.On("broadcast", [](const sio::SocketPtr& socket, std::string_view, Json& args, sio::Ack) {
    socket->broadcast().Emit("broadcast", std::move(args));
  });
  nsp.On("ask", [](const sio::SocketPtr& socket, std::string_view, Json& args, sio::Ack) {
    socket->EmitWithAck("question", std::move(args), milliseconds(100),
                        [](absl::StatusOr<Json>) {});
  });
  nsp.On("disconnect-me", [](const sio::SocketPtr& socket, std::string_view, Json& args, sio::Ack) {
    socket->Disconnect(!args.empty() && args[0].is_boolean() && args[0].get<bool>());
  });
}

// The edge under test, started once per process.
struct Edge {
  edge::Runtime runtime{2};
  eio::Server echo{runtime, EngineOptions()};
  sio::Server io{runtime, EngineOptions(), [] {
                   sio::ServerOptions o;
                   o.connect_timeout = milliseconds(300);
                   return o;
                 }()};
  edge::HttpServer http{runtime, edge::HttpOptions{"127.0.0.1", 0}};

  Edge() {
    echo.OnConnection([](const eio::SessionPtr& session) {
      std::weak_ptr<eio::Session> weak = session;
      session->OnMessage([weak](eio::Packet&& packet) {
        auto s = weak.lock();
        if (!s) return;
        s->Send(packet.binary ? eio::MakeBinaryFrame(packet.data)
                              : eio::MakeTextFrame(eio::PacketType::kMessage, packet.data));
      });
    });
    AddHandlers(io.Of("/"));
    sio::Namespace& custom = io.Of("/custom");
    custom.Use([](const sio::SocketPtr& socket, sio::Next next) {
      const sio::Json& auth = socket->auth();
      if (auth.is_object() && auth.contains("reject")) {
        return next(sio::ConnectError{"refused", auth["reject"]});
      }
      next(std::nullopt);
    });
    AddHandlers(custom);
    http.Mount("/engine.io/", echo);
    http.Mount("/socket.io/", io.engine());
    FUZZ_CHECK(http.Listen().ok(), "the edge cannot listen on 127.0.0.1");
    runtime.Start();
  }

  // The edge's thread runs only while an input runs: between inputs it is
  // parked in a handler. So whatever an input makes the edge do happens (and
  // crashes) during that input, and when libFuzzer calls exit() the edge is
  // idle: it is never stopped nor destroyed (reachable from g_edge, so no
  // leak report), and exit-time destruction of the library's statics (e.g.
  // the ping / close frames in engineio/session.cc) cannot race with it.
  void Park() {
    {
      std::lock_guard<std::mutex> lock(gate_mutex_);
      hold_ = true;
    }
    for (size_t shard = 0; shard < runtime.size(); ++shard) {
      runtime.Post(shard, [this] {
        std::unique_lock<std::mutex> lock(gate_mutex_);
        ++parked_;
        gate_cv_.notify_all();
        gate_cv_.wait(lock, [this] { return !hold_; });
        --parked_;
      });
    }
    std::unique_lock<std::mutex> lock(gate_mutex_);
    FUZZ_CHECK(gate_cv_.wait_for(lock, std::chrono::seconds(10),
                                 [this] { return parked_ == runtime.size(); }),
               "an edge thread is stuck (busy for 10 s)");
  }
  void Unpark() {
    {
      std::lock_guard<std::mutex> lock(gate_mutex_);
      hold_ = false;
    }
    gate_cv_.notify_all();
  }

 private:
  std::mutex gate_mutex_;
  std::condition_variable gate_cv_;
  bool hold_ = false;
  size_t parked_ = 0;
};

Edge* g_edge = nullptr;

// ---- a loopback client -------------------------------------------------------

class Connection {
 public:
  explicit Connection(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FUZZ_CHECK(fd_ >= 0, "socket()");
    // Close with RST: no lingering state when the edge has not closed yet.
    linger lin{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lin, sizeof lin);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
  }
  ~Connection() { ::close(fd_); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool connected() const { return connected_; }
  bool closed() const { return eof_; }
  const std::string& received() const { return received_; }
  size_t received_bytes() const { return received_bytes_; }

  // Writes everything unless the edge stops reading or resets.
  void Write(std::string_view bytes, Clock::time_point deadline) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n > 0) {
        bytes.remove_prefix(static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        // Keep draining what the edge sends, or both sides could block.
        if (!Wait(POLLOUT | POLLIN, deadline)) return;
        continue;
      }
      return;  // reset, or the edge closed
    }
  }

  void HalfClose() { ::shutdown(fd_, SHUT_WR); }

  // Reads until the edge closes, `deadline`, or (until_any) the first bytes.
  void Read(Clock::time_point deadline, bool until_any) {
    const size_t before = received_bytes_;
    while (!eof_) {
      if (until_any && received_bytes_ > before) return;
      if (!Wait(POLLIN, deadline)) return;
    }
  }

 private:
  // Polls for `events`, reading whatever arrives; false at the deadline,
  // on EOF or on an error.
  bool Wait(short events, Clock::time_point deadline) {
    for (;;) {
      auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return false;
      pollfd p{fd_, events, 0};
      int r = ::poll(&p, 1, static_cast<int>(left));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
        if (!Drain()) return false;
      }
      if ((events & POLLOUT) && (p.revents & POLLOUT)) return true;
      if (events == POLLIN) return true;
    }
  }

  // Reads what is available; false on EOF or an error.
  bool Drain() {
    char buf[16384];
    for (;;) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) {
        received_bytes_ += static_cast<size_t>(n);
        const size_t room = kMaxKeptResponse - std::min(kMaxKeptResponse, received_.size());
        received_.append(buf, std::min(room, static_cast<size_t>(n)));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
      eof_ = true;  // 0: orderly close; < 0: reset
      return false;
    }
  }

  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  std::string received_;
  size_t received_bytes_ = 0;
};

// Opens a polling session; its sid, or "" when the edge refused.
std::string Handshake(uint16_t port) {
  Connection c(port);
  if (!c.connected()) return "";
  c.Write(
      "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Connection: close\r\n\r\n",
      Clock::now() + milliseconds(1000));
  c.Read(Clock::now() + milliseconds(1000), /*until_any=*/false);
  const std::string& r = c.received();
  const size_t key = r.find("\"sid\":\"");
  if (r.rfind("HTTP/1.1 200", 0) != 0 || key == std::string::npos) return "";
  const size_t start = key + 7;
  const size_t end = r.find('"', start);
  return end == std::string::npos ? "" : r.substr(start, end - start);
}

// The edge answers handshakes (sessions that inputs opened get released).
void CheckAlive(Edge& edge) {
  const auto deadline = Clock::now() + std::chrono::seconds(3);
  while (Handshake(edge.http.port()).empty()) {
    if (Clock::now() > deadline) {
      std::fprintf(stderr, "http_fuzz: %zu Engine.IO sessions open\n",
                   edge.io.engine().SessionCount());
      FUZZ_CHECK(false, "the edge stopped completing handshakes");
    }
    std::this_thread::sleep_for(milliseconds(50));
  }
}

std::string ReplaceAll(std::string text, std::string_view from, std::string_view to) {
  for (size_t pos = text.find(from); pos != std::string::npos;
       pos = text.find(from, pos + to.size())) {
    text.replace(pos, from.size(), to);
  }
  return text;
}

size_t g_runs = 0;

// HTTP_FUZZ_VERBOSE=1: print what the edge answered to each input.
bool Verbose() {
  static const bool verbose = std::getenv("HTTP_FUZZ_VERBOSE") != nullptr;
  return verbose;
}

Edge& GetEdge() {
  if (g_edge == nullptr) {
    g_edge = new Edge();
    FUZZ_CHECK(!Handshake(g_edge->http.port()).empty(), "the edge refused the first handshake");
    g_edge->Park();
  }
  return *g_edge;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Edge& edge = GetEdge();
  ++g_runs;
  edge.Unpark();
  std::string input(reinterpret_cast<const char*>(data), size);

  if (input.find(kSidMarker) != std::string::npos) {
    std::string sid = Handshake(edge.http.port());
    input = ReplaceAll(std::move(input), kSidMarker, sid.empty() ? "none" : sid);
  }

  {
    const auto start = Clock::now();
    Connection c(edge.http.port());
    FUZZ_CHECK(c.connected(), "cannot connect to the edge");
    std::string_view rest = input;
    for (;;) {
      const size_t wait = rest.find(kWaitMarker);
      c.Write(rest.substr(0, wait), Clock::now() + kReadTimeout);
      if (wait == std::string_view::npos) break;
      rest.remove_prefix(wait + kWaitMarker.size());
      c.Read(Clock::now() + kWaitTimeout, /*until_any=*/true);
    }
    c.HalfClose();
    c.Read(Clock::now() + kReadTimeout, /*until_any=*/false);
    const std::string& r = c.received();
    if (Verbose()) {
      std::fprintf(stderr, "http_fuzz: sent %zu bytes, got %zu%s in %lld ms:\n%s\n",
                   input.size(), c.received_bytes(), c.closed() ? " and a close" : "",
                   static_cast<long long>(
                       std::chrono::duration_cast<milliseconds>(Clock::now() - start).count()),
                   r.c_str());
    }
    FUZZ_CHECK(r.empty() || std::string_view("HTTP/1.1 ").substr(0, r.size()) ==
                                std::string_view(r).substr(0, 9),
               "the edge sent something that is not an HTTP/1.1 response");
  }

  // Every input of a short replay, then every 256th.
  if (g_runs <= 64 || g_runs % 256 == 0) CheckAlive(edge);
  edge.Park();
  return 0;
}
