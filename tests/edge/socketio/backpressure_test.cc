// Slow clients: a client that stops reading is disconnected once its send
// queue passes the bound, while the other members of the same room keep
// receiving everything; volatile packets to a client that is behind are
// dropped instead of queued, and that client stays connected.
#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <thread>

#include "edge/socketio/server.h"
#include "edge/uring_sends.h"
#include "tests/edge/test_server.h"

namespace switchboard {
namespace {

using sio::Json;
using testing_support::BlockingClient;
using testing_support::TestServer;

constexpr size_t kBlobBytes = 10'000;
constexpr size_t kBlobs = 1'500;  // 15 MB: far past kernel buffers and the bound
constexpr size_t kQueueBound = 1u << 20;
constexpr size_t kBatch = 4;  // 40 kB: below the volatile drop threshold

// Each test twice: one send() per write, and the writes of a delivery walk
// through io_uring (edge/uring_sends.h), where the kernel allows it.
class BackpressureTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) {
      if (absl::Status uring = edge::UringSends::Probe(); !uring.ok()) GTEST_SKIP() << uring;
    }
    edge::UringSends::Enable(GetParam());
    eio::Options options;
    options.max_send_queue_bytes = kQueueBound;
    options.volatile_drop_bytes = 64 * 1024;
    server_ = std::make_unique<TestServer>(options);
    sio::Namespace& nsp = server_->io().Of("/");
    sio::NamespaceLimits limits;
    limits.event_rate.rate.per_second = 0;  // the reading client asks for batches quickly
    nsp.SetLimits(limits);
    nsp.On("join", [](const sio::SocketPtr& socket, std::string_view, Json&, sio::Ack ack) {
      socket->Join("room");
      if (ack) ack(Json::array());
    });
    // flood(volatile, start): the next kBatch blobs to the room, and "done"
    // after the last. The reading client asks for each batch (flow control),
    // so only a client that does not read falls behind.
    nsp.On("flood", [&nsp](const sio::SocketPtr&, std::string_view, Json& args, sio::Ack) {
      bool is_volatile = args.at(0).get<bool>();
      size_t start = args.at(1).get<size_t>();
      size_t end = std::min(kBlobs, start + kBatch);
      for (size_t i = start; i < end; ++i) {
        sio::Broadcast b = nsp.To("room");
        if (is_volatile) b.Volatile();
        b.Emit("blob", Json::array({i, std::string(kBlobBytes, 'x')}));
      }
      if (end == kBlobs) nsp.To("room").Emit("done");
    });
    nsp.OnDisconnect([this](const sio::SocketPtr&, std::string_view reason) {
      std::lock_guard lock(mu_);
      reasons_.emplace_back(reason);
    });
    server_->Start();
  }

  void TearDown() override {
    server_.reset();
    edge::UringSends::Enable(false);
  }

  // Drives the flood batch by batch, reading each; returns the indices read.
  static std::vector<size_t> Flood(BlockingClient& client, bool is_volatile) {
    std::vector<size_t> got;
    for (size_t start = 0; start < kBlobs; start += kBatch) {
      client.Send(R"(42["flood",)" + std::string(is_volatile ? "true" : "false") + "," +
                  std::to_string(start) + "]");
      size_t end = std::min(kBlobs, start + kBatch);
      while (got.size() < end) got.push_back(BlobIndex(client.Read()));
    }
    EXPECT_EQ(client.Read(), R"(42["done"])");
    return got;
  }

  static size_t BlobIndex(const std::string& message) {
    return Json::parse(message.substr(2)).at(1).get<size_t>();
  }

  // Reads until "done"; returns the blob indices received, in order.
  static std::vector<size_t> ReadBlobs(BlockingClient& client) {
    std::vector<size_t> got;
    for (;;) {
      std::string message = client.Read();
      if (message == R"(42["done"])") return got;
      got.push_back(BlobIndex(message));
    }
  }

  bool WaitFor(const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return done();
  }

  std::vector<std::string> Reasons() {
    std::lock_guard lock(mu_);
    return reasons_;
  }

  std::unique_ptr<TestServer> server_;
  std::mutex mu_;
  std::vector<std::string> reasons_;
};

TEST_P(BackpressureTest, SlowClientIsDisconnectedOthersGetEverything) {
  BlockingClient slow(server_->port(), true);
  BlockingClient fast(server_->port(), false);
  slow.Call(R"(["join"])");
  fast.Call(R"(["join"])");

  std::vector<size_t> got = Flood(fast, false);  // `slow` never reads
  ASSERT_EQ(got.size(), kBlobs);
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], i);

  EXPECT_TRUE(WaitFor([&] { return server_->io().Of("/").SocketCount() == 1; }));
  EXPECT_EQ(Reasons(), std::vector<std::string>{"send queue overflow"});
}

TEST_P(BackpressureTest, VolatilePacketsToABusyClientAreDroppedNotQueued) {
  BlockingClient slow(server_->port(), true);
  BlockingClient fast(server_->port(), false);
  slow.Call(R"(["join"])");
  fast.Call(R"(["join"])");

  std::vector<size_t> fast_got = Flood(fast, true);
  // Now the slow client catches up: it missed blobs, kept its connection,
  // and what it got is in order.
  std::vector<size_t> slow_got = ReadBlobs(slow);
  EXPECT_LT(slow_got.size(), kBlobs);
  EXPECT_TRUE(std::is_sorted(slow_got.begin(), slow_got.end()));
  EXPECT_EQ(fast_got.size(), kBlobs);  // never behind: nothing dropped
  slow.Call(R"(["join"])");            // still served
  EXPECT_EQ(server_->io().Of("/").SocketCount(), 2u);
  EXPECT_TRUE(Reasons().empty());
}

INSTANTIATE_TEST_SUITE_P(Sends, BackpressureTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "IoUring" : "Send";
                         });

}  // namespace
}  // namespace switchboard
