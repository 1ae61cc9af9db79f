// The admin port (services/admin_server.h) over real HTTP on 127.0.0.1: /metrics reflects real
// Socket.IO traffic on a live edge, /healthz, /readyz follow the Health state; plus the JSON log
// escaping.

#include "services/admin_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "bus/inproc_bus.h"
#include "services/health.h"
#include "services/logging.h"
#include "services/metrics.h"
#include "tests/edge/test_server.h"

namespace switchboard::services {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;
using ::testing::HasSubstr;

struct Reply {
  int status = 0;
  std::string body;
  std::string content_type;
};

Reply Get(uint16_t port, const std::string& target) {
  boost::asio::io_context ioc;
  tcp::socket socket(ioc);
  socket.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, "127.0.0.1");
  http::write(socket, req);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(socket, buffer, res);
  return {static_cast<int>(res.result_int()), res.body(),
          std::string(res[http::field::content_type])};
}

// The value of the sample `series` (name{labels} exactly as serialized), or nullopt.
std::optional<double> Sample(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return std::nullopt;
}

// Polls /metrics until `series` has `value` (or 5 s pass); returns the last value seen.
std::optional<double> AwaitSample(uint16_t port, const std::string& series, double value) {
  std::optional<double> seen;
  for (int i = 0; i < 100; ++i) {
    seen = Sample(Get(port, "/metrics").body, series);
    if (seen == value) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return seen;
}

class AdminServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing_support::AddJoinLeaveHandlers(server_.io().Of("/"));
    server_.Start();
    metrics_.AddCollector(EdgeCollector(server_.io(), nullptr));
    metrics_.AddCollector(BusCollector(bus_));
    metrics_.AddCollector(HealthCollector(health_));
    auto admin = AdminServer::Start({.host = "127.0.0.1", .port = 0},
                                    [this] { return metrics_.Serialize(); },
                                    [this] { return health_.Check(); });
    ASSERT_TRUE(admin.ok()) << admin.status();
    admin_ = std::move(*admin);
  }
  void TearDown() override {
    admin_.reset();
    server_.Stop();
  }

  testing_support::TestServer server_;
  bus::InProcessBus bus_;
  Health health_{&bus_, 0};
  Metrics metrics_;
  std::unique_ptr<AdminServer> admin_;
};

TEST_F(AdminServerTest, MetricsFollowRealTraffic) {
  const uint16_t port = admin_->port();
  Reply first = Get(port, "/metrics");
  EXPECT_EQ(first.status, 200);
  EXPECT_THAT(first.content_type, HasSubstr("text/plain; version=0.0.4"));
  EXPECT_THAT(first.body, HasSubstr("# TYPE switchboard_handshakes_total counter"));
  EXPECT_THAT(first.body, HasSubstr("switchboard_build_info{version=\""));
  EXPECT_EQ(Sample(first.body, R"(switchboard_connections{transport="websocket"})"), 0);
  EXPECT_EQ(Sample(first.body, "switchboard_ready"), 1);
  EXPECT_EQ(Sample(first.body, "switchboard_bus_connected"), 1);
  EXPECT_GT(Sample(first.body, "switchboard_resident_memory_bytes").value_or(0), 0);

  {
    testing_support::BlockingClient client(server_.port());
    testing_support::JoinRoom(client, "lobby");
    std::string text = Get(port, "/metrics").body;
    EXPECT_EQ(Sample(text, R"(switchboard_connections{transport="websocket"})"), 1);
    EXPECT_EQ(Sample(text, R"(switchboard_handshakes_total{result="accepted",reason="",transport="websocket"})"),
              1);
    EXPECT_EQ(Sample(text, R"(switchboard_sockets{namespace="/"})"), 1);
    EXPECT_GE(Sample(text, R"(switchboard_packets_total{direction="in"})").value_or(0), 2);
    EXPECT_GT(Sample(text, R"(switchboard_bytes_total{direction="in"})").value_or(0), 0);
    EXPECT_EQ(Sample(text, R"(switchboard_messages_total{direction="in",namespace="/"})"), 1);

    server_.io().Of("/").To("lobby").Emit("news", sio::Json::array({"hello"}));
    EXPECT_THAT(client.Read(), HasSubstr("news"));
    // Counted once the delivery loop ends, which may be after the client
    // has the message.
    EXPECT_EQ(AwaitSample(port, R"(switchboard_broadcasts_total{namespace="/"})", 1), 1);
    EXPECT_EQ(AwaitSample(port, R"(switchboard_deliveries_total{namespace="/"})", 1), 1);
    client.Close();
  }
  EXPECT_EQ(AwaitSample(port, R"(switchboard_connections{transport="websocket"})", 0), 0);
  EXPECT_EQ(AwaitSample(port, R"(switchboard_disconnects_total{reason="transport close"})", 1), 1);
}

TEST_F(AdminServerTest, HealthAndReadiness) {
  const uint16_t port = admin_->port();
  EXPECT_EQ(Get(port, "/healthz").status, 200);
  Reply ready = Get(port, "/readyz");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(ready.body, "ready\n");
  EXPECT_EQ(Get(port, "/nope").status, 404);

  std::vector<bool> seen;
  health_.Watch([&seen](bool r) { seen.push_back(r); }, std::chrono::milliseconds(20));
  health_.SetDraining();
  Reply draining = Get(port, "/readyz");
  EXPECT_EQ(draining.status, 503);
  EXPECT_THAT(draining.body, HasSubstr("draining"));
  EXPECT_EQ(Get(port, "/healthz").status, 200) << "alive while draining";
  std::string text = Get(port, "/metrics").body;
  EXPECT_EQ(Sample(text, "switchboard_ready"), 0);
  EXPECT_EQ(Sample(text, "switchboard_draining"), 1);
  health_.StopWatch();
  EXPECT_EQ(seen, (std::vector<bool>{true, false}));
}

TEST(HealthTest, MemoryThreshold) {
  Health tiny(nullptr, 1);  // one byte: always over
  EXPECT_THAT(std::string(tiny.Check().message()), HasSubstr("memory"));
  Health roomy(nullptr, uint64_t{1} << 50);
  EXPECT_TRUE(roomy.Check().ok());
}

TEST(AdminServerStartTest, PortInUse) {
  auto first = AdminServer::Start({.host = "127.0.0.1", .port = 0}, [] { return std::string(); },
                                  [] { return absl::OkStatus(); });
  ASSERT_TRUE(first.ok());
  auto second = AdminServer::Start({.host = "127.0.0.1", .port = (*first)->port()},
                                   [] { return std::string(); }, [] { return absl::OkStatus(); });
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
}

TEST(LoggingTest, JsonEscaping) {
  spdlog::memory_buf_t out;
  AppendJsonEscaped("a\"b\\c\nd\x01", out);
  EXPECT_EQ(std::string(out.data(), out.size()), "a\\\"b\\\\c\\nd\\u0001");
}

}  // namespace
}  // namespace switchboard::services
