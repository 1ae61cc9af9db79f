// Broadcasts handed in from off the shards (as the gRPC API and the bus hand
// them) to a room whose members sit on both shards. A broadcast alone in a
// shard's queue is written to each client during the room walk; a burst waits
// for the end of the loop turn and is coalesced. Either way every client gets
// every packet whole and in order, also when its kernel buffer is full and the
// rest of a packet waits in its queue.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "edge/socketio/server.h"
#include "edge/uring_sends.h"
#include "tests/edge/test_server.h"

namespace switchboard {
namespace {

using sio::Json;
using testing_support::BlockingClient;
using testing_support::JoinRoom;
using testing_support::TestServer;

// Each test twice: one send() per write, and the writes of a delivery walk
// through io_uring (edge/uring_sends.h), where the kernel allows it.
class DeliveryTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) {
      if (absl::Status uring = edge::UringSends::Probe(); !uring.ok()) GTEST_SKIP() << uring;
    }
    edge::UringSends::Enable(GetParam());
    uring_sends_before_ = edge::UringSends::sends();
    uring_recvs_before_ = edge::UringSends::recvs();
    eio::Options options;
    options.max_send_queue_bytes = 64u << 20;  // the slow reader below stays connected
    server_ = std::make_unique<TestServer>(options);
    testing_support::AddJoinLeaveHandlers(server_->io().Of("/"));
    server_->Start();
  }
  void TearDown() override {
    server_.reset();
    edge::UringSends::Enable(false);
  }

  // Paced single-frame packets are written during the walk: through
  // io_uring when it is on. (A packet with attachments is several frames:
  // one sendmsg.)
  void ExpectIoUringUsedIfOn() {
    if (GetParam()) {
      EXPECT_GT(edge::UringSends::sends(), uring_sends_before_) << "no write went through io_uring";
    }
  }

  sio::Namespace& nsp() { return server_->io().Of("/"); }

  std::unique_ptr<TestServer> server_;
  uint64_t uring_sends_before_ = 0;
  uint64_t uring_recvs_before_ = 0;
};

std::string Numbered(int i) { return R"(42["n",)" + std::to_string(i) + "]"; }

TEST_P(DeliveryTest, PacedAndBurstBroadcastsReachClientsOnBothShardsInOrder) {
  constexpr int kClients = 6;  // accepted round robin: three per shard
  constexpr int kPaced = 20;
  constexpr int kBurst = 200;
  std::vector<std::unique_ptr<BlockingClient>> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.push_back(std::make_unique<BlockingClient>(server_->port()));
    JoinRoom(*clients.back(), "room");
  }
  for (int i = 0; i < kPaced; ++i) {
    nsp().To("room").Emit("n", Json::array({i}));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  for (int i = kPaced; i < kPaced + kBurst; ++i) nsp().To("room").Emit("n", Json::array({i}));
  for (auto& client : clients) {
    for (int i = 0; i < kPaced + kBurst; ++i) ASSERT_EQ(client->Read(), Numbered(i));
  }
  ExpectIoUringUsedIfOn();
}

TEST_P(DeliveryTest, BinaryAttachmentsFollowTheirPacketWhenPaced) {
  BlockingClient a(server_->port());
  BlockingClient b(server_->port());
  JoinRoom(a, "room");
  JoinRoom(b, "room");
  for (int i = 0; i < 5; ++i) {
    Json::binary_t bytes(std::vector<uint8_t>{1, 2, static_cast<uint8_t>(i)});
    nsp().To("room").Emit("bin", Json::array({i, Json::binary(bytes)}));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  for (BlockingClient* client : {&a, &b}) {
    for (int i = 0; i < 5; ++i) {
      ASSERT_EQ(client->Read(),
                R"(451-["bin",)" + std::to_string(i) + R"(,{"_placeholder":true,"num":0}])");
      ASSERT_EQ(client->Read(), std::string({1, 2, static_cast<char>(i)}));
    }
  }
}

TEST_P(DeliveryTest, WhatTheKernelDoesNotTakeIsQueuedAndArrivesWholeInOrder) {
  constexpr int kBlobs = 40;
  // 3 MB in all, past the kernel buffers; sizes on either side of the one-buffer
  // write (64 KiB).
  auto blob_bytes = [](int i) -> size_t { return i % 2 == 0 ? 50'000 : 100'000; };
  BlockingClient slow(server_->port(), /*small_window=*/true);
  BlockingClient other(server_->port());
  JoinRoom(slow, "room");
  JoinRoom(other, "room");
  // Paced, so each is alone on its shard and written during the walk: the
  // first sends are partial, the rest of each blob is queued behind.
  for (int i = 0; i < kBlobs; ++i) {
    nsp().To("room").Emit("blob", Json::array({i, std::string(blob_bytes(i), 'a' + i % 26)}));
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (BlockingClient* client : {&other, &slow}) {
    for (int i = 0; i < kBlobs; ++i) {
      std::string message = client->Read();
      ASSERT_EQ(message, R"(42["blob",)" + std::to_string(i) + R"(,")" +
                             std::string(blob_bytes(i), 'a' + i % 26) + R"("])");
    }
  }
  EXPECT_EQ(nsp().SocketCount(), 2u);  // nobody was disconnected
  ExpectIoUringUsedIfOn();
}

// Client events are read in batches (one io_uring submit for a batch of
// readiness events when it is on; a read that fills its buffer goes on with
// recv()), and their acks are queued and leave with the end of the loop turn
// (one sendmsg per client: on the io_uring when it is on), also several
// acks of one read together, and acks larger than the client's window.
void AddEchoHandler(sio::Namespace& nsp) {
  nsp.On("echo", [](const sio::SocketPtr&, std::string_view, Json& args, sio::Ack ack) {
    if (ack) ack(args);
  });
}

std::string EchoEvent(int id, const std::string& payload) {
  return "42" + std::to_string(id) + R"(["echo",)" + std::to_string(id) + R"(,")" + payload +
         R"("])";
}

std::string EchoAck(int id, const std::string& payload) {
  return "43" + std::to_string(id) + "[" + std::to_string(id) + R"(,")" + payload + R"("])";
}

TEST_P(DeliveryTest, AcksOfPipelinedEventsArriveInOrder) {
  AddEchoHandler(nsp());
  constexpr int kEvents = 80;  // within the default event rate burst
  BlockingClient a(server_->port());
  BlockingClient b(server_->port());
  // Sent back to back, so one read often holds several: their acks leave
  // together.
  for (int i = 0; i < kEvents; ++i) {
    a.Send(EchoEvent(i, "a"));
    b.Send(EchoEvent(i, "b"));
  }
  for (int i = 0; i < kEvents; ++i) {
    ASSERT_EQ(a.Read(), EchoAck(i, "a"));
    ASSERT_EQ(b.Read(), EchoAck(i, "b"));
  }
  if (GetParam()) {
    EXPECT_GT(edge::UringSends::sends(), uring_sends_before_) << "no ack went through io_uring";
    EXPECT_GT(edge::UringSends::recvs(), uring_recvs_before_) << "no event was read through io_uring";
  }
}

TEST_P(DeliveryTest, LargeAcksToASlowReaderArriveWholeInOrder) {
  AddEchoHandler(nsp());
  constexpr int kEvents = 24;
  BlockingClient slow(server_->port(), /*small_window=*/true);
  // 60 kB each, past the client's window: the flush's send is partial and
  // the rest waits for the socket; bursts of acks past what one io_uring
  // send gathers go by sendmsg.
  auto payload = [](int i) { return std::string(60'000, static_cast<char>('a' + i % 26)); };
  for (int i = 0; i < kEvents; ++i) {
    slow.Send(EchoEvent(i, payload(i)));
    if (i % 3 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (int i = 0; i < kEvents; ++i) ASSERT_EQ(slow.Read(), EchoAck(i, payload(i)));
  EXPECT_EQ(nsp().SocketCount(), 1u);  // nobody was disconnected
}

INSTANTIATE_TEST_SUITE_P(Sends, DeliveryTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "IoUring" : "Send";
                         });

}  // namespace
}  // namespace switchboard
