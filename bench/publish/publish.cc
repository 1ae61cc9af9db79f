// sb-bench-publish — K publishes of a ~100-byte JSON payload to one room, each
// stamped with its send time ({"t": microseconds since the epoch, "p":
// padding}), at maximum rate or paced.
//
//   sb-bench-publish --grpc 127.0.0.1:50051 --room bench --count 1000 [--rate
//   500] sb-bench-publish --http 127.0.0.1:3000 --room bench --count 1000
//   [--rate 500]
//
// --grpc: Switchboard's API, PublishStream (one stream, fire and forget: the
// fastest path).
// --http: POST /publish {"room","event","payload"} on one keep-alive connection
// (the Node reference server and the floor server), pipelined up to --window
// requests in flight. Prints one JSON line:
// {"sent":K,"start_us":..,"end_us":..,"recipients":..,"ok":true}.

#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <string>

#include "bench/common/wire.h"
#include "switchboard/v1/switchboard.grpc.pb.h"

namespace bench {
namespace {

namespace pb = switchboard::v1;

struct Options {
  std::string grpc_addr;
  std::string http_addr;
  std::string room = "bench";
  std::string event = "msg";
  std::string nsp = "/";
  int count = 100;
  double rate = 0;
  int payload = 100;
  int window = 32;
};

std::string Payload(const std::string& pad) {
  return "{\"t\":" + std::to_string(NowRealtimeUs()) + ",\"p\":\"" + pad + "\"}";
}

// Sleeps until message k's turn when paced.
void Pace(const Options& opt, const timespec& start, int k) {
  if (opt.rate <= 0) return;
  const double at = static_cast<double>(k) / opt.rate;
  timespec t = start;
  t.tv_sec += static_cast<time_t>(at);
  t.tv_nsec += static_cast<long>((at - static_cast<double>(static_cast<int64_t>(at))) * 1e9);
  if (t.tv_nsec >= 1000000000) {
    t.tv_sec++;
    t.tv_nsec -= 1000000000;
  }
  clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, nullptr);
}

int RunGrpc(const Options& opt, const std::string& pad) {
  auto stub = pb::Switchboard::NewStub(
      grpc::CreateChannel(opt.grpc_addr, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(600));
  pb::PublishStreamResponse resp;
  auto writer = stub->PublishStream(&ctx, &resp);
  pb::PublishRequest req;
  req.mutable_target()->set_namespace_(opt.nsp);
  req.mutable_target()->add_rooms(opt.room);
  req.set_event(opt.event);
  auto* arg = req.add_args();
  timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  const int64_t start_us = NowRealtimeUs();
  int sent = 0;
  for (int k = 0; k < opt.count; ++k) {
    Pace(opt, start, k);
    arg->set_json(Payload(pad));
    if (!writer->Write(req)) break;
    sent++;
  }
  writer->WritesDone();
  grpc::Status st = writer->Finish();
  const int64_t end_us = NowRealtimeUs();
  std::printf(
      "{\"sent\":%d,\"start_us\":%lld,\"end_us\":%lld,\"recipients\":%llu,"
      "\"ok\":%s,"
      "\"error\":\"%s\"}\n",
      sent, static_cast<long long>(start_us), static_cast<long long>(end_us),
      static_cast<unsigned long long>(resp.recipients()), st.ok() ? "true" : "false",
      st.ok() ? "" : st.error_message().c_str());
  return st.ok() && sent == opt.count ? 0 : 1;
}

// Reads and counts complete HTTP responses in `buf` (Content-Length bodies
// only).
int TakeResponses(std::string& buf, bool& bad) {
  int n = 0;
  while (true) {
    size_t e = buf.find("\r\n\r\n");
    if (e == std::string::npos) return n;
    if (buf.compare(0, 12, "HTTP/1.1 200") != 0) bad = true;
    size_t cl = 0;
    for (size_t p = 0; p < e;) {
      size_t q = buf.find("\r\n", p);
      if (q == std::string::npos || q > e) q = e;
      if (q - p > 15 && strncasecmp(buf.c_str() + p, "content-length:", 15) == 0) {
        cl = std::strtoul(buf.c_str() + p + 15, nullptr, 10);
      }
      p = q + 2;
    }
    if (buf.size() < e + 4 + cl) return n;
    buf.erase(0, e + 4 + cl);
    n++;
  }
}

int RunHttp(const Options& opt, const std::string& pad) {
  const size_t colon = opt.http_addr.rfind(':');
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::atoi(opt.http_addr.c_str() + colon + 1)));
  if (colon == std::string::npos ||
      inet_pton(AF_INET, opt.http_addr.substr(0, colon).c_str(), &addr.sin_addr) != 1) {
    std::fprintf(stderr, "sb-bench-publish: bad --http %s\n", opt.http_addr.c_str());
    return 2;
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    std::perror("sb-bench-publish: connect");
    return 1;
  }
  timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  const int64_t start_us = NowRealtimeUs();
  const int64_t deadline = NowMonoMs() + 600000;
  std::string in;
  bool bad = false;
  int sent = 0, answered = 0;
  char buf[16384];
  // Reads what is there (waiting up to wait_ms for something).
  auto read_some = [&](int wait_ms) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, wait_ms) <= 0) return;
    ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (r <= 0) {
      bad = bad || r == 0;
      return;
    }
    in.append(buf, static_cast<size_t>(r));
    answered += TakeResponses(in, bad);
  };
  for (int k = 0; k < opt.count && !bad && NowMonoMs() < deadline; ++k) {
    Pace(opt, start, k);
    while (sent - answered >= opt.window && !bad && NowMonoMs() < deadline) read_some(100);
    std::string body = "{\"room\":\"" + opt.room + "\",\"event\":\"" + opt.event +
                       "\",\"payload\":" + Payload(pad) + "}";
    std::string req =
        "POST /publish HTTP/1.1\r\nHost: " + opt.http_addr +
        "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\n\r\n" + body;
    if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
      bad = true;
      break;
    }
    sent++;
    read_some(0);
  }
  while (answered < sent && !bad && NowMonoMs() < deadline) read_some(100);
  close(fd);
  const bool ok = !bad && answered == opt.count;
  std::printf(
      "{\"sent\":%d,\"start_us\":%lld,\"end_us\":%lld,\"recipients\":0,"
      "\"ok\":%s}\n",
      sent, static_cast<long long>(start_us), static_cast<long long>(NowRealtimeUs()),
      ok ? "true" : "false");
  return ok ? 0 : 1;
}

int Main(int argc, char** argv) {
  Options opt;
  CLI::App app{"sb-bench-publish: stamped publishes to a room, for the benchmark suite"};
  auto* g = app.add_option("--grpc", opt.grpc_addr, "Switchboard gRPC API HOST:PORT");
  auto* h = app.add_option("--http", opt.http_addr, "HTTP publish endpoint HOST:PORT");
  g->excludes(h);
  app.add_option("--room", opt.room, "room");
  app.add_option("--event", opt.event, "event name");
  app.add_option("--namespace", opt.nsp, "namespace (gRPC)");
  app.add_option("--count", opt.count, "publishes");
  app.add_option("--rate", opt.rate, "publishes per second (0: as fast as possible)");
  app.add_option("--payload", opt.payload, "approximate payload bytes");
  app.add_option("--window", opt.window, "HTTP: requests in flight");
  CLI11_PARSE(app, argc, argv);
  const std::string pad(static_cast<size_t>(std::max(0, opt.payload - 30)), 'x');
  if (!opt.grpc_addr.empty()) return RunGrpc(opt, pad);
  if (!opt.http_addr.empty()) return RunHttp(opt, pad);
  std::fprintf(stderr, "sb-bench-publish: --grpc or --http is required\n");
  return 2;
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) { return bench::Main(argc, argv); }
