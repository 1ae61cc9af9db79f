// KvSessionStore against a real nats-server -js: the SessionStore contract
// (take once, erase, expiry), records said connected by this edge, a dead
// edge and a live one, racing takes from two edges, a server restart with
// file storage, non-blocking puts and the refresh of connected records.

#include "cluster/kv_session_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "bus/nats_bus.h"
#include "bus/routing.h"
#include "switchboard/v1/bus.pb.h"
#include "tests/bus/jetstream_server.h"
#include "tests/support/eventually.h"

namespace switchboard::cluster {
namespace {

using bus::testing::JetStreamServer;
using recovery::SessionRecord;
using std::chrono::milliseconds;
using switchboard::testing_support::Eventually;
using Clock = std::chrono::system_clock;

constexpr char kNsp[] = "/chat";
constexpr milliseconds kWindow{120000};
constexpr milliseconds kWait{10000};

// One edge: its own NATS connection and store.
struct Edge {
  std::unique_ptr<bus::NatsBus> bus;
  std::unique_ptr<bus::JetStream> js;
  std::unique_ptr<KvSessionStore> store;
};

SessionRecord MakeRecord(std::string pid, std::string edge_id,
                         std::optional<Clock::time_point> disconnected_at) {
  SessionRecord record;
  record.pid = std::move(pid);
  record.state.nsp = kNsp;
  record.state.id = edge_id + ".sockid123";
  record.state.user_id = "user-7";
  record.state.claims = sio::Json{{"sub", "user-7"}, {"roles", {"a", "b"}}};
  record.state.data = sio::Json{{"color", "blue"}, {"n", 3}};
  record.state.auth = sio::Json{{"token", "secret"}};
  record.state.rooms = {"room-1", "room two"};
  record.state.in_own_room = true;
  record.start_offset = 42;
  record.disconnected_at = disconnected_at;
  record.edge_id = std::move(edge_id);
  return record;
}

absl::StatusOr<SessionRecord> TakeNow(KvSessionStore& store, const std::string& pid,
                                      Clock::time_point now = Clock::now()) {
  auto promise = std::make_shared<std::promise<absl::StatusOr<SessionRecord>>>();
  auto future = promise->get_future();
  store.Take(pid, now, [promise](absl::StatusOr<SessionRecord> result) {
    promise->set_value(std::move(result));
  });
  if (future.wait_for(kWait) != std::future_status::ready) {
    return absl::DeadlineExceededError("test: take never answered");
  }
  return future.get();
}

absl::Status PutNow(KvSessionStore& store, SessionRecord record) {
  auto promise = std::make_shared<std::promise<absl::Status>>();
  auto future = promise->get_future();
  store.Put(std::move(record), [promise](absl::Status status) { promise->set_value(status); });
  if (future.wait_for(kWait) != std::future_status::ready) {
    return absl::DeadlineExceededError("test: put never answered");
  }
  return future.get();
}

absl::Status EraseNow(KvSessionStore& store, const std::string& pid) {
  auto promise = std::make_shared<std::promise<absl::Status>>();
  auto future = promise->get_future();
  store.Erase(pid, [promise](absl::Status status) { promise->set_value(status); });
  if (future.wait_for(kWait) != std::future_status::ready) {
    return absl::DeadlineExceededError("test: erase never answered");
  }
  return future.get();
}

class NatsKvSessionStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(server_.Start()); }

  KvSessionStore::Options Options(std::string edge_id) {
    KvSessionStore::Options options;
    options.nsp = kNsp;
    options.window = kWindow;
    options.storage = bus::JsStorage::kFile;
    options.edge_id = std::move(edge_id);
    options.settle = milliseconds(1000);
    return options;
  }

  Edge Connect(KvSessionStore::Options options) {
    Edge edge;
    edge.bus = server_.Connect();
    EXPECT_NE(edge.bus, nullptr);
    if (edge.bus == nullptr) return edge;
    auto js = bus::JetStream::Create(edge.bus->native_connection());
    EXPECT_TRUE(js.ok()) << js.status();
    if (!js.ok()) return edge;
    edge.js = std::move(*js);
    auto store = KvSessionStore::Create(*edge.js, *edge.bus, std::move(options));
    EXPECT_TRUE(store.ok()) << store.status();
    if (store.ok()) edge.store = std::move(*store);
    return edge;
  }

  // Answers probes of `edge_id` on `bus`, as a live edge does.
  static bus::SubscriptionPtr AnswerProbes(bus::Bus& bus, const std::string& edge_id) {
    auto sub = bus.Subscribe(
        bus::ProbeSubject(edge_id),
        [&bus, edge_id](bus::Message message) {
          v1::ProbeReply reply;
          reply.set_edge_id(edge_id);
          reply.set_incarnation("inc-1");
          (void)bus.Publish(message.reply_to, reply.SerializeAsString());
        },
        {}, bus::InlineExecutor);
    EXPECT_TRUE(sub.ok()) << sub.status();
    return sub.ok() ? std::move(*sub) : nullptr;
  }

  JetStreamServer server_;
};

void ExpectSameRecord(const SessionRecord& got, const SessionRecord& want) {
  EXPECT_EQ(got.pid, want.pid);
  EXPECT_EQ(got.state.nsp, want.state.nsp);
  EXPECT_EQ(got.state.id, want.state.id);
  EXPECT_EQ(got.state.user_id, want.state.user_id);
  EXPECT_EQ(got.state.claims, want.state.claims);
  EXPECT_EQ(got.state.data, want.state.data);
  EXPECT_EQ(got.state.rooms, want.state.rooms);
  EXPECT_EQ(got.state.in_own_room, want.state.in_own_room);
  EXPECT_EQ(got.start_offset, want.start_offset);
  EXPECT_EQ(got.disconnected_at, want.disconnected_at);
  EXPECT_EQ(got.edge_id, want.edge_id);
  // The auth payload is never stored.
  EXPECT_TRUE(got.state.auth.is_null()) << got.state.auth.dump();
}

TEST_F(NatsKvSessionStoreTest, PutThenTakeGivesTheRecordOnce) {
  Edge a = Connect(Options("edgeA"));
  ASSERT_NE(a.store, nullptr);
  EXPECT_EQ(a.store->bucket(), bus::SessionBucket(kNsp));
  EXPECT_EQ(a.store->ttl(), std::chrono::hours(1));

  auto record = MakeRecord("pidAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-_1", "edgeA",
                           Clock::now() - milliseconds(500));
  ASSERT_TRUE(PutNow(*a.store, record).ok());

  auto taken = TakeNow(*a.store, record.pid);
  ASSERT_TRUE(taken.ok()) << taken.status();
  ExpectSameRecord(*taken, record);

  // Taken: connected on this edge now, so the pid is reused.
  auto again = TakeNow(*a.store, record.pid);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition) << again.status();

  // Once the restored session disconnects again, it is recoverable again.
  record.disconnected_at = Clock::now();
  ASSERT_TRUE(PutNow(*a.store, record).ok());
  auto third = TakeNow(*a.store, record.pid);
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(third->disconnected_at, record.disconnected_at);
}

TEST_F(NatsKvSessionStoreTest, UnknownAndErasedPidsAreNotFound) {
  Edge a = Connect(Options("edgeA"));
  ASSERT_NE(a.store, nullptr);
  EXPECT_TRUE(absl::IsNotFound(TakeNow(*a.store, "neverWritten").status()));
  // Not a KV key: a client's invention.
  EXPECT_TRUE(absl::IsNotFound(TakeNow(*a.store, "bad pid*>").status()));

  auto record = MakeRecord("pidErase", "edgeA", Clock::now());
  ASSERT_TRUE(PutNow(*a.store, record).ok());
  ASSERT_TRUE(EraseNow(*a.store, record.pid).ok());
  auto taken = TakeNow(*a.store, record.pid);
  EXPECT_TRUE(absl::IsNotFound(taken.status())) << taken.status();
}

TEST_F(NatsKvSessionStoreTest, ExpiredRecordIsDeadlineExceededThenGone) {
  Edge a = Connect(Options("edgeA"));
  ASSERT_NE(a.store, nullptr);
  const auto disconnected = Clock::now();
  auto record = MakeRecord("pidExpired", "edgeA", disconnected);
  ASSERT_TRUE(PutNow(*a.store, record).ok());

  auto late = TakeNow(*a.store, record.pid, disconnected + kWindow + milliseconds(1));
  EXPECT_EQ(late.status().code(), absl::StatusCode::kDeadlineExceeded) << late.status();
  // Deleted with it.
  EXPECT_TRUE(absl::IsNotFound(TakeNow(*a.store, record.pid).status()));
}

TEST_F(NatsKvSessionStoreTest, ConnectedOnThisEdgeIsReused) {
  Edge a = Connect(Options("edgeA"));
  ASSERT_NE(a.store, nullptr);
  auto record = MakeRecord("pidConnectedHere", "edgeA", std::nullopt);
  ASSERT_TRUE(PutNow(*a.store, record).ok());
  auto start = std::chrono::steady_clock::now();
  auto taken = TakeNow(*a.store, record.pid);
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kFailedPrecondition) << taken.status();
  // No probe, no settle: this edge knows.
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(900));
}

TEST_F(NatsKvSessionStoreTest, ConnectedOnADeadEdgeIsTaken) {
  Edge a = Connect(Options("edgeA"));
  ASSERT_NE(a.store, nullptr);
  // edgeDead wrote it and died: nobody answers on its probe subject.
  auto record = MakeRecord("pidDeadOwner", "edgeDead", std::nullopt);
  ASSERT_TRUE(PutNow(*a.store, record).ok());
  auto taken = TakeNow(*a.store, record.pid);
  ASSERT_TRUE(taken.ok()) << taken.status();
  ExpectSameRecord(*taken, record);
  EXPECT_EQ(TakeNow(*a.store, record.pid).status().code(), absl::StatusCode::kFailedPrecondition);
}

// A dead edge's clients come back together: one probe finds it gone, and
// the takes after it claim its records without asking again.
TEST_F(NatsKvSessionStoreTest, ADeadOwnerIsProbedOncePerSettle) {
  Edge a = Connect(Options("edgeA"));
  ASSERT_NE(a.store, nullptr);
  constexpr int kSessions = 20;
  for (int i = 0; i < kSessions; ++i) {
    ASSERT_TRUE(
        PutNow(*a.store, MakeRecord("pidGone" + std::to_string(i), "edgeGone", std::nullopt)).ok());
  }
  for (int i = 0; i < kSessions; ++i) {
    auto taken = TakeNow(*a.store, "pidGone" + std::to_string(i));
    ASSERT_TRUE(taken.ok()) << i << ": " << taken.status();
  }
  EXPECT_EQ(a.store->probes(), 1u);
}

// What "gone" is remembered for is bounded: an edge id that answers again
// (restarted under the same name) after `settle` is probed, and its
// connected record is its own.
TEST_F(NatsKvSessionStoreTest, AGoneOwnerThatAnswersAgainAfterSettleKeepsItsSessions) {
  auto options = Options("edgeA");
  options.settle = milliseconds(300);
  Edge a = Connect(options);
  Edge b = Connect(Options("edgeB"));
  ASSERT_NE(a.store, nullptr);
  ASSERT_NE(b.store, nullptr);
  ASSERT_TRUE(PutNow(*b.store, MakeRecord("pidBefore", "edgeB", std::nullopt)).ok());
  ASSERT_TRUE(TakeNow(*a.store, "pidBefore").ok());  // nobody answers for edgeB yet

  auto responder = AnswerProbes(*b.bus, "edgeB");
  ASSERT_NE(responder, nullptr);
  std::this_thread::sleep_for(milliseconds(400));
  ASSERT_TRUE(PutNow(*b.store, MakeRecord("pidAfter", "edgeB", std::nullopt)).ok());
  auto taken = TakeNow(*a.store, "pidAfter");
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kFailedPrecondition) << taken.status();
  EXPECT_EQ(a.store->probes(), 2u);
}

// A shard saves sessions without a completion (no ack asked): the record
// reaches the bucket all the same, in order with the writes before it.
TEST_F(NatsKvSessionStoreTest, WritesWithoutACompletionReachOtherEdges) {
  Edge a = Connect(Options("edgeA"));
  Edge b = Connect(Options("edgeB"));
  ASSERT_NE(a.store, nullptr);
  ASSERT_NE(b.store, nullptr);
  // edgeA is alive: a read of the first write waits for the second.
  auto responder = AnswerProbes(*a.bus, "edgeA");
  ASSERT_NE(responder, nullptr);
  auto record = MakeRecord("pidUnacked", "edgeA", std::nullopt);
  a.store->Put(record, nullptr);
  record.state.rooms.push_back("later");
  record.disconnected_at = Clock::now();
  a.store->Put(record, nullptr);
  absl::StatusOr<SessionRecord> taken = absl::NotFoundError("not yet");
  for (int tries = 0; tries < 100 && absl::IsNotFound(taken.status()); ++tries) {
    std::this_thread::sleep_for(milliseconds(20));
    taken = TakeNow(*b.store, record.pid);
  }
  ASSERT_TRUE(taken.ok()) << taken.status();
  ExpectSameRecord(*taken, record);
}

TEST_F(NatsKvSessionStoreTest, ConnectedOnALiveEdgeThatWritesDisconnectedIsTaken) {
  Edge a = Connect(Options("edgeA"));
  Edge b = Connect(Options("edgeB"));
  ASSERT_NE(a.store, nullptr);
  ASSERT_NE(b.store, nullptr);
  auto responder = AnswerProbes(*b.bus, "edgeB");
  ASSERT_NE(responder, nullptr);

  auto record = MakeRecord("pidLiveOwner", "edgeB", std::nullopt);
  ASSERT_TRUE(PutNow(*b.store, record).ok());
  // edgeB notices the closed transport 200 ms after the client is back on A.
  auto disconnected = record;
  disconnected.disconnected_at = Clock::now();
  std::thread writer([&] {
    std::this_thread::sleep_for(milliseconds(200));
    EXPECT_TRUE(PutNow(*b.store, disconnected).ok());
  });
  auto taken = TakeNow(*a.store, record.pid);
  writer.join();
  ASSERT_TRUE(taken.ok()) << taken.status();
  ExpectSameRecord(*taken, disconnected);
}

TEST_F(NatsKvSessionStoreTest, ConnectedOnALiveEdgeThatNeverWritesIsReusedAfterSettle) {
  Edge a = Connect(Options("edgeA"));
  Edge b = Connect(Options("edgeB"));
  ASSERT_NE(a.store, nullptr);
  ASSERT_NE(b.store, nullptr);
  auto responder = AnswerProbes(*b.bus, "edgeB");
  ASSERT_NE(responder, nullptr);

  auto record = MakeRecord("pidLiveConnected", "edgeB", std::nullopt);
  ASSERT_TRUE(PutNow(*b.store, record).ok());
  auto start = std::chrono::steady_clock::now();
  auto taken = TakeNow(*a.store, record.pid);
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kFailedPrecondition) << taken.status();
  EXPECT_GE(elapsed, milliseconds(1000));
  EXPECT_LT(elapsed, milliseconds(3000));
}

// A take waiting for its settle holds no thread: with one take thread,
// another take answers before it.
TEST_F(NatsKvSessionStoreTest, ATakeSettlingHoldsNoThread) {
  auto options = Options("edgeA");
  options.take_threads = 1;
  Edge a = Connect(options);
  Edge b = Connect(Options("edgeB"));
  ASSERT_NE(a.store, nullptr);
  ASSERT_NE(b.store, nullptr);
  auto responder = AnswerProbes(*b.bus, "edgeB");
  ASSERT_NE(responder, nullptr);
  ASSERT_TRUE(PutNow(*b.store, MakeRecord("pidSettling", "edgeB", std::nullopt)).ok());
  auto record = MakeRecord("pidQuick", "edgeB", Clock::now());
  ASSERT_TRUE(PutNow(*b.store, record).ok());

  std::atomic<bool> settled{false};
  std::promise<absl::StatusOr<SessionRecord>> slow;
  auto slow_result = slow.get_future();
  a.store->Take("pidSettling", Clock::now(), [&](absl::StatusOr<SessionRecord> r) {
    settled = true;
    slow.set_value(r);
  });
  std::this_thread::sleep_for(milliseconds(100));  // it is settling now
  auto quick = TakeNow(*a.store, record.pid);
  EXPECT_FALSE(settled.load());
  ASSERT_TRUE(quick.ok()) << quick.status();
  ASSERT_EQ(slow_result.wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(slow_result.get().status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(NatsKvSessionStoreTest, RacingTakesFromTwoEdgesOneWins) {
  Edge a = Connect(Options("edgeA"));
  Edge b = Connect(Options("edgeB"));
  ASSERT_NE(a.store, nullptr);
  ASSERT_NE(b.store, nullptr);
  // Both edges answer probes: a loser sees the winner's "taken" record as
  // connected on a live edge.
  auto responder_a = AnswerProbes(*a.bus, "edgeA");
  auto responder_b = AnswerProbes(*b.bus, "edgeB");
  for (int round = 0; round < 5; ++round) {
    auto record = MakeRecord("pidRace" + std::to_string(round), "edgeC", Clock::now());
    ASSERT_TRUE(PutNow(*a.store, record).ok());
    std::promise<absl::StatusOr<SessionRecord>> pa, pb;
    auto fa = pa.get_future();
    auto fb = pb.get_future();
    auto now = Clock::now();
    a.store->Take(record.pid, now, [&](absl::StatusOr<SessionRecord> r) { pa.set_value(r); });
    b.store->Take(record.pid, now, [&](absl::StatusOr<SessionRecord> r) { pb.set_value(r); });
    ASSERT_EQ(fa.wait_for(kWait), std::future_status::ready);
    ASSERT_EQ(fb.wait_for(kWait), std::future_status::ready);
    auto ra = fa.get();
    auto rb = fb.get();
    EXPECT_EQ(ra.ok() + rb.ok(), 1) << ra.status() << " / " << rb.status();
    for (const auto* r : {&ra, &rb}) {
      if (!r->ok()) {
        EXPECT_EQ(r->status().code(), absl::StatusCode::kFailedPrecondition) << r->status();
      }
    }
  }
}

TEST_F(NatsKvSessionStoreTest, RecordsSurviveAServerRestart) {
  auto record = MakeRecord("pidRestart", "edgeA", Clock::now());
  {
    Edge a = Connect(Options("edgeA"));
    ASSERT_NE(a.store, nullptr);
    ASSERT_TRUE(PutNow(*a.store, record).ok());
  }
  server_.Stop();
  ASSERT_TRUE(server_.Start());
  Edge b = Connect(Options("edgeB"));
  ASSERT_NE(b.store, nullptr);
  absl::StatusOr<SessionRecord> taken = absl::UnknownError("not tried");
  // The stream may need a moment to be back after the restart.
  EXPECT_TRUE(Eventually([&] {
    taken = TakeNow(*b.store, record.pid);
    return !absl::IsUnavailable(taken.status()) && !absl::IsDeadlineExceeded(taken.status());
  }));
  ASSERT_TRUE(taken.ok()) << taken.status();
  ExpectSameRecord(*taken, record);
}

TEST_F(NatsKvSessionStoreTest, PutDoesNotBlock) {
  Edge a = Connect(Options("edgeA"));
  ASSERT_NE(a.store, nullptr);
  constexpr int kPuts = 10000;
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  auto record = MakeRecord("", "edgeA", std::nullopt);
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kPuts; ++i) {
    record.pid = "pidMany" + std::to_string(i % 2000);
    // Connects and disconnects alternate, as a shard's writes do.
    record.disconnected_at = i % 2 ? std::optional(Clock::now()) : std::nullopt;
    a.store->Put(record, [&](absl::Status status) { (status.ok() ? ok : failed)++; });
  }
  auto elapsed = std::chrono::steady_clock::now() - start;
  std::printf("[kv_session_store] %d puts returned in %.1f ms\n", kPuts,
              std::chrono::duration<double, std::milli>(elapsed).count());
  EXPECT_TRUE(Eventually([&] { return ok + failed == kPuts; }, milliseconds(30000)));
  EXPECT_EQ(failed, 0);
  // The last write of each pid won: i = 1999 + 2000k, odd, disconnected.
  auto taken = TakeNow(*a.store, "pidMany1999");
  ASSERT_TRUE(taken.ok()) << taken.status();
  EXPECT_TRUE(taken->disconnected_at.has_value());
}

TEST_F(NatsKvSessionStoreTest, RefreshKeepsConnectedRecordsPastTheTtl) {
  auto options = Options("edgeA");
  options.ttl = milliseconds(1500);
  Edge a = Connect(options);
  ASSERT_NE(a.store, nullptr);
  EXPECT_EQ(a.store->ttl(), milliseconds(1500));
  auto kv =
      bus::KvBucket::Ensure(*a.js, {.bucket = bus::SessionBucket(kNsp), .ttl = milliseconds(1500)});
  ASSERT_TRUE(kv.ok()) << kv.status();

  ASSERT_TRUE(PutNow(*a.store, MakeRecord("pidKeptAlive", "edgeA", std::nullopt)).ok());
  // Not refreshed: a disconnected record goes with the TTL.
  ASSERT_TRUE(PutNow(*a.store, MakeRecord("pidLeftAlone", "edgeA", Clock::now())).ok());
  // A connected record last written as disconnected is not refreshed either.
  ASSERT_TRUE(PutNow(*a.store, MakeRecord("pidWentAway", "edgeA", std::nullopt)).ok());
  ASSERT_TRUE(PutNow(*a.store, MakeRecord("pidWentAway", "edgeA", Clock::now())).ok());

  EXPECT_TRUE(Eventually([&] { return absl::IsNotFound((*kv)->Get("pidLeftAlone").status()); },
                         milliseconds(8000)));
  EXPECT_TRUE(Eventually([&] { return absl::IsNotFound((*kv)->Get("pidWentAway").status()); },
                         milliseconds(2000)));
  // Well past the TTL since its only Put.
  std::this_thread::sleep_for(milliseconds(1500));
  auto kept = (*kv)->Get("pidKeptAlive");
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(TakeNow(*a.store, "pidKeptAlive").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace switchboard::cluster
