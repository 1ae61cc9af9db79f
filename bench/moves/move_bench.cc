// Session moves (issue 16): how long an upgrade takes when it lands on
// another edge (the session moves there, cluster/session_mover.h) vs on the
// session's own edge, over a real nats-server. Two edges in this process,
// each with its own runtime, listener and NATS connections (as two processes
// would have). Per upgrade: a polling session with one Socket.IO socket is
// opened on edge A; then, timed, from the WebSocket upgrade request (on B, or
// on A itself) through the probe and the upgrade packet to the first frame
// the session sends on its new transport (the ack of an emit sent right
// after the upgrade packet). Empty send queue. Prints median and p99 per
// round, then the median of the rounds.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench/common/nats.h"
#include "cluster/edge_link.h"
#include "cluster/session_mover.h"
#include "edge/http/server.h"
#include "edge/runtime.h"
#include "edge/socketio/server.h"

namespace {

using namespace switchboard;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Edge {
  Edge(const std::string& nats_url, const std::string& id, bool send_asap)
      : bus(bench::ConnectEdgeBus(nats_url, "bench-" + id, send_asap)),
        runtime(2),
        io(runtime, Engine(id), Sockets(id)),
        listener(runtime, {"127.0.0.1", 0}) {
    listener.Mount("/socket.io/", io.engine());
    io.Of("/").On("ping", [](const sio::SocketPtr&, std::string_view, sio::Json&, sio::Ack ack) {
      if (ack) ack(sio::Json::array());
    });
    link = *cluster::EdgeLink::Start(*bus, io, {.edge_id = id});
    mover = *cluster::SessionMover::Start(*bus, io, *link, {.edge_id = id});
    io.engine().OnForeignUpgrade(
        [m = mover.get()](const std::shared_ptr<edge::HttpSession>& h, std::string_view owner,
                          std::string_view sid) { m->ArriveFrom(h, owner, sid); });
    if (!listener.Listen().ok()) std::exit(1);
    runtime.Start();
  }
  ~Edge() {
    io.engine().CloseAll();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    runtime.Stop();
    runtime.Join();
    mover.reset();
    link.reset();
  }
  static eio::Options Engine(const std::string& id) {
    eio::Options options;
    options.node_id = id;
    options.ping_interval = std::chrono::minutes(5);
    options.max_connections = 0;
    options.handshake_rate.rate = {};  // one client address, many handshakes
    return options;
  }
  static sio::ServerOptions Sockets(const std::string& id) {
    sio::ServerOptions options;
    options.edge_id = id;
    return options;
  }
  std::unique_ptr<bus::Bus> bus;
  edge::Runtime runtime;
  sio::Server io;
  edge::HttpServer listener;
  std::unique_ptr<cluster::EdgeLink> link;
  std::unique_ptr<cluster::SessionMover> mover;
};

std::string Exchange(uint16_t port, http::verb method, const std::string& target,
                     std::string body = {}) {
  boost::asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  stream.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
  http::request<http::string_body> req{method, target, 11};
  req.set(http::field::host, "127.0.0.1");
  if (method == http::verb::post) {
    req.body() = std::move(body);
    req.prepare_payload();
  }
  http::write(stream, req);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(stream, buffer, res);
  if (res.result_int() != 200) {
    std::fprintf(stderr, "%s: %d %s\n", target.c_str(), res.result_int(), res.body().c_str());
    std::exit(1);
  }
  return res.body();
}

// A polling session on `port` with its socket on "/": returns the sid.
std::string OpenSession(uint16_t port) {
  std::string open = Exchange(port, http::verb::get, "/socket.io/?EIO=4&transport=polling");
  size_t start = open.find("\"sid\":\"") + 7;
  std::string sid = open.substr(start, open.find('"', start) - start);
  const std::string url = "/socket.io/?EIO=4&transport=polling&sid=" + sid;
  Exchange(port, http::verb::post, url, "40");
  if (Exchange(port, http::verb::get, url).rfind("40", 0) != 0) std::exit(1);
  return sid;
}

// The timed part: upgrade on `port`, first frame of the session there.
double UpgradeMicros(uint16_t port, const std::string& sid) {
  boost::asio::io_context ioc;
  beast::websocket::stream<tcp::socket> ws(ioc);
  auto t0 = Clock::now();
  ws.next_layer().connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
  ws.next_layer().set_option(tcp::no_delay(true));
  ws.handshake("127.0.0.1", "/socket.io/?EIO=4&transport=websocket&sid=" + sid);
  auto read = [&ws] {
    beast::flat_buffer buffer;
    ws.read(buffer);
    return beast::buffers_to_string(buffer.data());
  };
  ws.text(true);
  ws.write(boost::asio::buffer(std::string("2probe")));
  if (read() != "3probe") std::exit(1);
  ws.write(boost::asio::buffer(std::string("5")));
  ws.write(boost::asio::buffer(std::string("421[\"ping\"]")));
  while (read().rfind("431", 0) != 0) {
  }
  auto t1 = Clock::now();
  beast::error_code ec;
  ws.close(beast::websocket::close_code::normal, ec);
  return std::chrono::duration<double, std::micro>(t1 - t0).count();
}

double Quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(static_cast<double>(v.size()) * q))];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Upgrades: the session moving to another edge vs staying on its own"};
  int upgrades = 300;
  int rounds = 3;
  std::string nats_url;
  bool send_asap = true;
  app.add_option("--send-asap", send_asap,
                 "the edges' NATS connections write each publish at once, as edges do; false: "
                 "NATS.c's flusher batches for up to 1 ms");
  app.add_option("--upgrades", upgrades, "upgrades per path and round");
  app.add_option("--rounds", rounds, "rounds");
  app.add_option("--nats", nats_url, "a running nats-server (default: start one on a free port)");
  CLI11_PARSE(app, argc, argv);

  std::unique_ptr<bus::testing::NatsServer> nats;
  nats_url = bench::NatsUrlOrStart(nats_url, nats);
  Edge a(nats_url, "edge-a", send_asap);
  Edge b(nats_url, "edge-b", send_asap);

  std::printf("upgrade request -> first frame on the new transport, %d per path per round\n",
              upgrades);
  std::vector<double> p50[2], p99[2];  // [local, moved]
  for (int round = 0; round < rounds; ++round) {
    for (int path = 0; path < 2; ++path) {
      uint16_t port = path == 0 ? a.listener.port() : b.listener.port();
      std::vector<double> us;
      for (int i = 0; i < upgrades + 20; ++i) {
        double t = UpgradeMicros(port, OpenSession(a.listener.port()));
        if (i >= 20) us.push_back(t);  // the first ones warm up
      }
      p50[path].push_back(Quantile(us, 0.5));
      p99[path].push_back(Quantile(us, 0.99));
      std::printf("round %d %-6s p50 %8.1f us  p99 %8.1f us\n", round + 1,
                  path == 0 ? "local" : "moved", p50[path].back(), p99[path].back());
    }
  }
  std::printf("\nmedian of %d rounds (us)  p50 local  p50 moved  | p99 local  p99 moved\n", rounds);
  std::printf("upgrade to first frame     %9.1f  %9.1f  | %9.1f  %9.1f\n", Quantile(p50[0], 0.5),
              Quantile(p50[1], 0.5), Quantile(p99[0], 0.5), Quantile(p99[1], 0.5));
  return 0;
}
