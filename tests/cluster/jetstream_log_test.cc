// A recovery namespace's log on JetStream (cluster/jetstream_log.h) against a
// real nats-server -js: what the edge reads from the stream, in order and
// with the stream sequence as offset; what a restore reads from this edge's
// memory and what from the stream; what has expired.
#include "cluster/jetstream_log.h"

#include <gtest/gtest.h>

#include <mutex>
#include <string>
#include <vector>

#include "bus/jetstream.h"
#include "bus/log_writer.h"
#include "bus/nats_bus.h"
#include "bus/routing.h"
#include "cluster/arguments.h"
#include "edge/recovery/offset.h"
#include "switchboard/v1/bus.pb.h"
#include "tests/bus/jetstream_server.h"
#include "tests/support/eventually.h"

namespace switchboard::cluster {
namespace {

using switchboard::testing_support::Eventually;

// The namespace's side: every delivery appended to the log's memory at its
// offset (as Namespace::DeliverFromLog does), and remembered.
class Deliveries {
 public:
  explicit Deliveries(JetStreamLog& log) : log_(log) {}
  JetStreamLog::Deliver callback() {
    return [this](uint64_t offset, std::shared_ptr<const sio::Delivery> delivery) {
      auto appended = log_.Append(
          delivery->target, [&](uint64_t o) { return *recovery::WithOffset(delivery->frames, o); },
          offset);
      std::lock_guard lock(mu_);
      EXPECT_TRUE(appended.ok()) << appended.status();
      offsets_.push_back(offset);
      rooms_.push_back(delivery->target.rooms.empty() ? "" : delivery->target.rooms.front());
    };
  }
  std::vector<uint64_t> offsets() {
    std::lock_guard lock(mu_);
    return offsets_;
  }
  std::vector<std::string> rooms() {
    std::lock_guard lock(mu_);
    return rooms_;
  }

 private:
  JetStreamLog& log_;
  std::mutex mu_;
  std::vector<uint64_t> offsets_;
  std::vector<std::string> rooms_;
};

class JetStreamLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start());
    bus_ = server_.Connect();
    ASSERT_NE(bus_, nullptr);
    auto js = bus::JetStream::Create(bus_->native_connection());
    ASSERT_TRUE(js.ok()) << js.status();
    js_ = std::move(*js);
    auto writer = bus::LogWriter::Create(*js_);
    ASSERT_TRUE(writer.ok()) << writer.status();
    writer_ = std::move(*writer);
  }

  std::unique_ptr<JetStreamLog> MakeLog(
      std::chrono::milliseconds window = std::chrono::minutes(1)) {
    recovery::Options options;
    options.max_disconnection_duration = window;
    auto log = JetStreamLog::Create(
        *js_,
        {.nsp = "/r", .recovery = options, .replicas = 1, .storage = bus::JsStorage::kMemory});
    EXPECT_TRUE(log.ok()) << log.status();
    return log.ok() ? std::move(*log) : nullptr;
  }

  // A broker's publish of event "n" with argument i to `room`, appended to the
  // log; waits for the sequence.
  uint64_t Publish(const std::string& room, int i) {
    v1::EdgeMessage message;
    v1::Delivery* delivery = message.mutable_delivery();
    delivery->set_id("b:" + std::to_string(i));
    delivery->mutable_target()->set_namespace_("/r");
    delivery->mutable_target()->add_rooms(room);
    delivery->set_event("n");
    JsonToArguments(sio::Json::array({i}), delivery->mutable_args());
    return PublishRaw(message.SerializeAsString());
  }
  uint64_t PublishRaw(const std::string& payload) {
    std::mutex mu;
    std::optional<absl::StatusOr<uint64_t>> result;
    EXPECT_TRUE(writer_
                    ->Append("/r", payload,
                             [&](absl::StatusOr<uint64_t> seq) {
                               std::lock_guard lock(mu);
                               result = seq;
                             })
                    .ok());
    EXPECT_TRUE(Eventually([&] {
      std::lock_guard lock(mu);
      return result.has_value();
    }));
    std::lock_guard lock(mu);
    EXPECT_TRUE(result && result->ok());
    return result && result->ok() ? **result : 0;
  }

  static std::vector<uint64_t> Offsets(const std::vector<recovery::LogEntryPtr>& entries) {
    std::vector<uint64_t> out;
    for (const auto& e : entries) out.push_back(e->offset);
    return out;
  }
  // The packet text of an entry: its offset is its last argument.
  static std::string Text(const recovery::LogEntryPtr& entry) {
    return *entry->delivery->frames.front().bytes;
  }

  // ReadOlder's answer, which comes from the log's reader thread.
  static absl::StatusOr<recovery::RecoveryLog::Older> ReadOlderNow(
      JetStreamLog& log, uint64_t after, const recovery::RecoveryLog::Match& match) {
    std::mutex mu;
    std::optional<absl::StatusOr<recovery::RecoveryLog::Older>> older;
    log.ReadOlder(after, match, [&](auto o) {
      std::lock_guard lock(mu);
      older = std::move(o);
    });
    EXPECT_TRUE(Eventually([&] {
      std::lock_guard lock(mu);
      return older.has_value();
    }));
    std::lock_guard lock(mu);
    return older ? std::move(*older) : absl::DeadlineExceededError("no answer");
  }

  static bool InRoom(const sio::BroadcastTarget& t, const std::string& room) {
    return !t.rooms.empty() && t.rooms.front() == room;
  }

  bus::testing::JetStreamServer server_;
  std::unique_ptr<bus::NatsBus> bus_;
  std::unique_ptr<bus::JetStream> js_;
  std::unique_ptr<bus::LogWriter> writer_;
};

TEST_F(JetStreamLogTest, DeliversTheStreamInOrderWithItsSequencesAsOffsets) {
  auto log = MakeLog();
  ASSERT_NE(log, nullptr);
  Deliveries got(*log);
  ASSERT_TRUE(log->Start(got.callback()).ok());
  std::vector<uint64_t> published;
  for (int i = 0; i < 50; ++i) published.push_back(Publish(i % 2 ? "odd" : "even", i));
  ASSERT_TRUE(Eventually([&] { return got.offsets().size() == 50; })) << got.offsets().size();
  EXPECT_EQ(got.offsets(), published);
  EXPECT_EQ(got.rooms()[0], "even");
  EXPECT_EQ(got.rooms()[1], "odd");
  EXPECT_EQ(log->Stats().last_offset, published.back());

  // A restore after offset 10 of a member of "odd": from memory, in order,
  // each packet carrying its offset as its last argument.
  absl::StatusOr<std::vector<recovery::LogEntryPtr>> read;
  log->ReadAfter(
      published[10], [](const sio::BroadcastTarget& t) { return InRoom(t, "odd"); },
      [&](auto entries) { read = std::move(entries); });
  ASSERT_TRUE(read.ok()) << read.status();
  std::vector<uint64_t> want;
  for (int i = 11; i < 50; i += 2) want.push_back(published[i]);
  EXPECT_EQ(Offsets(*read), want);
  EXPECT_EQ(Text(read->front()), "42/r,[\"n\",11,\"" + std::to_string(published[11]) + "\"]");
}

TEST_F(JetStreamLogTest, WhatCameBeforeThisEdgeStartedIsReadFromTheStream) {
  auto log = MakeLog();
  ASSERT_NE(log, nullptr);
  std::vector<uint64_t> published;
  for (int i = 0; i < 30; ++i) published.push_back(Publish("red", i));
  Deliveries got(*log);
  ASSERT_TRUE(log->Start(got.callback()).ok());
  for (int i = 30; i < 40; ++i) published.push_back(Publish("red", i));
  ASSERT_TRUE(Eventually([&] { return got.offsets().size() == 10; }));

  // Memory alone cannot answer for offset 5: OutOfRange, so the older part
  // comes from the stream first.
  absl::StatusOr<std::vector<recovery::LogEntryPtr>> from_memory;
  auto all = [](const sio::BroadcastTarget&) { return true; };
  log->ReadAfter(published[5], all, [&](auto e) { from_memory = std::move(e); });
  EXPECT_TRUE(absl::IsOutOfRange(from_memory.status())) << from_memory.status();

  auto older = std::make_optional(ReadOlderNow(*log, published[5], all));
  ASSERT_TRUE(older->ok()) << older->status();
  EXPECT_EQ((*older)->through, published[29]);
  EXPECT_EQ(Offsets((*older)->entries),
            std::vector<uint64_t>(published.begin() + 6, published.begin() + 30));
  EXPECT_EQ(Text((*older)->entries.front()),
            "42/r,[\"n\",6,\"" + std::to_string(published[6]) + "\"]");
  log->ReadAfter((*older)->through, all, [&](auto e) { from_memory = std::move(e); });
  ASSERT_TRUE(from_memory.ok());
  EXPECT_EQ(Offsets(*from_memory), std::vector<uint64_t>(published.begin() + 30, published.end()));

  // Nothing older to read when memory covers it: answered at once.
  bool answered = false;
  log->ReadOlder(published[35], all, [&](auto o) {
    ASSERT_TRUE(o.ok());
    EXPECT_TRUE(o->entries.empty());
    EXPECT_EQ(o->through, published[35]);
    answered = true;
  });
  EXPECT_TRUE(answered);
}

TEST_F(JetStreamLogTest, AnOffsetTheStreamNoLongerHoldsIsOutOfRange) {
  auto log = MakeLog(std::chrono::milliseconds(300));
  ASSERT_NE(log, nullptr);
  uint64_t first = Publish("red", 0);
  Publish("red", 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));  // the stream's max age passes
  Publish("red", 2);
  Deliveries got(*log);
  ASSERT_TRUE(log->Start(got.callback()).ok());
  auto older = std::make_optional(
      ReadOlderNow(*log, first, [](const sio::BroadcastTarget&) { return true; }));
  EXPECT_TRUE(absl::IsOutOfRange(older->status())) << older->status();
}

TEST_F(JetStreamLogTest, PublishesAreNotAppendedHereButOnlyWhatTheStreamGives) {
  auto log = MakeLog();
  ASSERT_NE(log, nullptr);
  auto appended = log->Append(
      sio::BroadcastTarget{}, [](uint64_t) { return std::vector<eio::Frame>{}; }, 0);
  EXPECT_TRUE(absl::IsUnimplemented(appended.status())) << appended.status();
  EXPECT_TRUE(log->shared());
}

TEST_F(JetStreamLogTest, AMessageThatIsNotADeliveryIsCountedAndLeavesAHoleReadFromTheStream) {
  auto log = MakeLog();
  ASSERT_NE(log, nullptr);
  Deliveries got(*log);
  ASSERT_TRUE(log->Start(got.callback()).ok());
  uint64_t a = Publish("red", 0);
  PublishRaw("not a protobuf \xff\xff");
  uint64_t c = Publish("red", 2);
  ASSERT_TRUE(Eventually([&] { return got.offsets().size() == 2; }));
  EXPECT_EQ(log->undecodable(), 1u);
  // Memory restarts after the hole; a restore from before it reads the
  // stream for the part before.
  auto all = [](const sio::BroadcastTarget&) { return true; };
  auto older = std::make_optional(ReadOlderNow(*log, a - 1, all));
  ASSERT_TRUE(older->ok()) << older->status();
  EXPECT_EQ(Offsets((*older)->entries), std::vector<uint64_t>{a});
  absl::StatusOr<std::vector<recovery::LogEntryPtr>> rest;
  log->ReadAfter((*older)->through, all, [&](auto e) { rest = std::move(e); });
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(Offsets(*rest), std::vector<uint64_t>{c});
}

}  // namespace
}  // namespace switchboard::cluster
