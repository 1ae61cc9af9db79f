// Polling through any edge (issue 16): the round trip of a long-polling
// request served by the session's own edge vs passed on by another edge over
// a real nats-server (cluster/poll_relay.h). Two edges in this process, each
// with its own runtime, listener and NATS connection (as two processes would
// have); one client over keep-alive HTTP/1.1. Per round and path: N POSTs of
// one message (POST round trip) each followed by a GET that finds it queued
// (a GET answered at once). Prints median and p99 per round, then the median
// of the rounds.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench/common/nats.h"
#include "bus/nats_bus.h"
#include "cluster/poll_relay.h"
#include "edge/engineio/server.h"
#include "edge/http/server.h"
#include "edge/runtime.h"
#include "tests/bus/nats_server.h"

namespace {

using namespace switchboard;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Edge {
  Edge(std::unique_ptr<bus::Bus> b, const std::string& id)
      : bus(std::move(b)),
        runtime(2),
        server(runtime, Options(id)),
        listener(runtime, {"127.0.0.1", 0}) {
    listener.Mount("/engine.io/", server);
    // An echo: each POSTed message is queued for the next GET.
    server.OnConnection([](const eio::SessionPtr& session) {
      std::weak_ptr<eio::Session> weak = session;
      session->OnMessage([weak](eio::Packet&& packet) {
        if (auto s = weak.lock())
          s->Send(eio::MakeTextFrame(eio::PacketType::kMessage, packet.data));
      });
    });
    auto started = cluster::PollRelay::Start(*bus, runtime, server, {.edge_id = id});
    if (!started.ok()) {
      std::fprintf(stderr, "relay: %s\n", started.status().ToString().c_str());
      std::exit(1);
    }
    relay = std::move(*started);
    if (!listener.Listen().ok()) std::exit(1);
    runtime.Start();
  }
  ~Edge() {
    server.CloseAll();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    runtime.Stop();
    runtime.Join();
    relay.reset();
  }
  static eio::Options Options(const std::string& id) {
    eio::Options options;
    options.node_id = id;
    options.ping_interval = std::chrono::minutes(5);  // no ping in a measured GET
    return options;
  }
  std::unique_ptr<bus::Bus> bus;
  edge::Runtime runtime;
  eio::Server server;
  edge::HttpServer listener;
  std::unique_ptr<cluster::PollRelay> relay;
};

// One keep-alive HTTP/1.1 connection.
class Client {
 public:
  explicit Client(uint16_t port) : stream_(ioc_) {
    stream_.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
    stream_.socket().set_option(tcp::no_delay(true));
  }
  std::string Do(http::verb method, const std::string& target, std::string body = {}) {
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "127.0.0.1");
    if (method == http::verb::post) {
      req.set(http::field::content_type, "text/plain;charset=UTF-8");
      req.body() = std::move(body);
      req.prepare_payload();
    }
    http::write(stream_, req);
    http::response<http::string_body> res;
    http::read(stream_, buffer_, res);
    if (res.result_int() != 200) {
      std::fprintf(stderr, "%s %s: %d %s\n", std::string(http::to_string(method)).c_str(),
                   target.c_str(), res.result_int(), res.body().c_str());
      std::exit(1);
    }
    return res.body();
  }

 private:
  boost::asio::io_context ioc_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
};

struct Figures {
  double p50_us = 0;
  double p99_us = 0;
};
Figures Summarize(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  return {us[us.size() / 2], us[std::min(us.size() - 1, us.size() * 99 / 100)]};
}
double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Polling round trips: local vs through another edge over NATS"};
  int requests = 2000;
  int rounds = 3;
  std::string nats_url;
  bool send_asap = true;
  app.add_option("--requests", requests, "POST+GET pairs per path and round");
  app.add_option("--rounds", rounds, "rounds");
  app.add_option("--nats", nats_url, "a running nats-server (default: start one on a free port)");
  app.add_option("--send-asap", send_asap,
                 "the edges' NATS connections write each publish at once, as edges do; false: "
                 "NATS.c's flusher batches for up to 1 ms");
  CLI11_PARSE(app, argc, argv);

  std::unique_ptr<bus::testing::NatsServer> nats;
  nats_url = bench::NatsUrlOrStart(nats_url, nats);
  auto connect = [&](const std::string& name) {
    return bench::ConnectEdgeBus(nats_url, name, send_asap);
  };
  Edge a(connect("bench-edge-a"), "edge-a");
  Edge b(connect("bench-edge-b"), "edge-b");
  Client to_a(a.listener.port());
  Client to_b(b.listener.port());

  std::string open = to_a.Do(http::verb::get, "/engine.io/?EIO=4&transport=polling");
  size_t start = open.find("\"sid\":\"") + 7;
  std::string sid = open.substr(start, open.find('"', start) - start);
  const std::string url = "/engine.io/?EIO=4&transport=polling&sid=" + sid;

  std::printf(
      "polling round trips, %d POST+GET per path per round, nats-server on loopback, "
      "send_asap %s\n",
      requests, send_asap ? "true" : "false");
  std::vector<double> med[2][2], p99[2][2];  // [path][post/get]
  for (int round = 0; round < rounds; ++round) {
    for (int path = 0; path < 2; ++path) {
      Client& client = path == 0 ? to_a : to_b;
      std::vector<double> post_us, get_us;
      // Warm-up.
      for (int i = 0; i < 50; ++i) {
        client.Do(http::verb::post, url, "4w");
        client.Do(http::verb::get, url);
      }
      for (int i = 0; i < requests; ++i) {
        auto t0 = Clock::now();
        client.Do(http::verb::post, url, "4m");
        auto t1 = Clock::now();
        std::string got = client.Do(http::verb::get, url);
        auto t2 = Clock::now();
        if (got != "4m") {
          std::fprintf(stderr, "unexpected GET body %s\n", got.c_str());
          return 1;
        }
        post_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
        get_us.push_back(std::chrono::duration<double, std::micro>(t2 - t1).count());
      }
      Figures post = Summarize(post_us), get = Summarize(get_us);
      std::printf("round %d %-9s POST p50 %7.1f us p99 %7.1f us | GET p50 %7.1f us p99 %7.1f us\n",
                  round + 1, path == 0 ? "local" : "forwarded", post.p50_us, post.p99_us,
                  get.p50_us, get.p99_us);
      med[path][0].push_back(post.p50_us);
      p99[path][0].push_back(post.p99_us);
      med[path][1].push_back(get.p50_us);
      p99[path][1].push_back(get.p99_us);
    }
  }
  std::printf("\nmedian of %d rounds (us)   p50 local  p50 fwd  +p50  | p99 local  p99 fwd  +p99\n",
              rounds);
  for (int kind = 0; kind < 2; ++kind) {
    double l50 = Median(med[0][kind]), f50 = Median(med[1][kind]);
    double l99 = Median(p99[0][kind]), f99 = Median(p99[1][kind]);
    std::printf("%-26s %9.1f %8.1f %6.1f | %9.1f %8.1f %6.1f\n",
                kind == 0 ? "POST round trip" : "GET answered at once", l50, f50, f50 - l50, l99,
                f99, f99 - l99);
  }
  return 0;
}
