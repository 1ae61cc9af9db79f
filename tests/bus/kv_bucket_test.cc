// KvBucket against a real nats-server -js: values and revisions,
// create-if-absent, compare-and-set (a single-use key), delete and purge,
// limits, and a server restart with file storage.

#include "bus/kv_bucket.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "bus/nats_bus.h"
#include "tests/bus/jetstream_server.h"
#include "tests/support/eventually.h"

namespace switchboard::bus {
namespace {

using std::chrono::milliseconds;
using switchboard::testing_support::Eventually;
using testing::JetStreamServer;

class NatsKvBucketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start());
    bus_ = server_.Connect();
    ASSERT_NE(bus_, nullptr);
    auto js = JetStream::Create(bus_->native_connection());
    ASSERT_TRUE(js.ok()) << js.status();
    js_ = std::move(*js);
  }

  std::unique_ptr<KvBucket> Bucket(KvConfig config) {
    auto kv = KvBucket::Ensure(*js_, config);
    EXPECT_TRUE(kv.ok()) << kv.status();
    return kv.ok() ? std::move(*kv) : nullptr;
  }

  JetStreamServer server_;
  std::unique_ptr<NatsBus> bus_;
  std::unique_ptr<JetStream> js_;
};

TEST_F(NatsKvBucketTest, PutGetCreateUpdateDeletePurge) {
  auto kv = Bucket({.bucket = "sessions", .storage = JsStorage::kMemory});
  ASSERT_NE(kv, nullptr);
  EXPECT_TRUE(absl::IsNotFound(kv->Get("pid1").status()));

  auto r1 = kv->Put("pid1", std::string("state\0one", 9));
  ASSERT_TRUE(r1.ok()) << r1.status();
  auto e1 = kv->Get("pid1");
  ASSERT_TRUE(e1.ok()) << e1.status();
  EXPECT_EQ(e1->value, std::string("state\0one", 9));
  EXPECT_EQ(e1->revision, *r1);

  auto r2 = kv->Put("pid1", "state two");
  ASSERT_TRUE(r2.ok());
  EXPECT_GT(*r2, *r1);
  EXPECT_EQ(kv->Get("pid1")->value, "state two");

  // Create: only when absent.
  auto created = kv->Create("pid2", "fresh");
  ASSERT_TRUE(created.ok()) << created.status();
  auto again = kv->Create("pid2", "other");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists) << again.status();
  EXPECT_EQ(kv->Get("pid2")->value, "fresh");

  // Update: only from the current revision.
  auto stale = kv->Update("pid1", "x", *r1);
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kFailedPrecondition) << stale.status();
  auto fresh = kv->Update("pid1", "state three", *r2);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_EQ(kv->Get("pid1")->revision, *fresh);
  EXPECT_TRUE(absl::IsInvalidArgument(kv->Update("pid1", "x", 0).status()));

  // Delete: gone, and creatable again.
  ASSERT_TRUE(kv->Delete("pid1").ok());
  EXPECT_TRUE(absl::IsNotFound(kv->Get("pid1").status()));
  auto recreated = kv->Create("pid1", "reborn");
  ASSERT_TRUE(recreated.ok()) << recreated.status();
  EXPECT_EQ(kv->Get("pid1")->value, "reborn");

  ASSERT_TRUE(kv->Purge("pid2").ok());
  EXPECT_TRUE(absl::IsNotFound(kv->Get("pid2").status()));

  // Bad keys are refused, not crashed on.
  EXPECT_FALSE(kv->Put("a b", "x").ok());
  EXPECT_FALSE(kv->Put("", "x").ok());
}

TEST_F(NatsKvBucketTest, RacingUpdatesFromOneRevisionExactlyOneWins) {
  auto kv = Bucket({.bucket = "single", .storage = JsStorage::kFile});
  ASSERT_NE(kv, nullptr);
  // Eight edges, each with its own connection, try to use the same pid.
  constexpr int kRacers = 8;
  std::vector<std::unique_ptr<NatsBus>> buses;
  std::vector<std::unique_ptr<JetStream>> contexts;
  std::vector<std::unique_ptr<KvBucket>> buckets;
  for (int i = 0; i < kRacers; ++i) {
    buses.push_back(server_.Connect());
    ASSERT_NE(buses.back(), nullptr);
    auto js = JetStream::Create(buses.back()->native_connection());
    ASSERT_TRUE(js.ok());
    contexts.push_back(std::move(*js));
    auto b = KvBucket::Ensure(*contexts.back(), {.bucket = "single", .storage = JsStorage::kFile});
    ASSERT_TRUE(b.ok()) << b.status();
    buckets.push_back(std::move(*b));
  }
  for (int round = 0; round < 5; ++round) {
    const std::string key = "pid" + std::to_string(round);
    auto rev = kv->Put(key, "unused");
    ASSERT_TRUE(rev.ok());
    std::atomic<int> won{0};
    std::atomic<int> lost{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int i = 0; i < kRacers; ++i) {
      threads.emplace_back([&, i] {
        while (!go.load()) std::this_thread::yield();
        auto seen = buckets[i]->Get(key);
        if (!seen.ok() || seen->value != "unused") {
          lost.fetch_add(1);
          return;
        }
        auto r = buckets[i]->Update(key, "used by " + std::to_string(i), seen->revision);
        if (r.ok()) {
          won.fetch_add(1);
        } else {
          EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
          lost.fetch_add(1);
        }
      });
    }
    go.store(true);
    for (auto& t : threads) t.join();
    EXPECT_EQ(won.load(), 1) << "round " << round;
    EXPECT_EQ(lost.load(), kRacers - 1);
    EXPECT_EQ(kv->Get(key)->value.rfind("used by ", 0), 0u);
  }
}

TEST_F(NatsKvBucketTest, EnsureIsIdempotentUpdatesLimitsAndRefusesAStorageChange) {
  KvConfig config{.bucket = "limits", .ttl = milliseconds(60000), .storage = JsStorage::kFile};
  auto a = Bucket(config);
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(a->Put("k", "v").ok());
  auto b = Bucket(config);  // same config: binds
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->Get("k")->value, "v");
  // Other limits: updated in place, content kept.
  config.ttl = milliseconds(1000);
  auto c = Bucket(config);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->Get("k")->value, "v");
  // The new TTL applies: the key expires.
  EXPECT_TRUE(
      Eventually([&] { return absl::IsNotFound(c->Get("k").status()); }, milliseconds(10000)));
  KvConfig memory = config;
  memory.storage = JsStorage::kMemory;
  auto d = KvBucket::Ensure(*js_, memory);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kFailedPrecondition) << d.status();
}

TEST_F(NatsKvBucketTest, MaxBytesRefusesWritesPastIt) {
  auto kv = Bucket({.bucket = "small", .storage = JsStorage::kMemory, .max_bytes = 2048});
  ASSERT_NE(kv, nullptr);
  const std::string value(300, 'v');
  absl::Status last;
  int stored = 0;
  for (int i = 0; i < 50 && last.ok(); ++i) {
    auto r = kv->Put("k" + std::to_string(i), value);
    last = r.status();
    if (r.ok()) ++stored;
  }
  EXPECT_EQ(last.code(), absl::StatusCode::kResourceExhausted) << last;
  EXPECT_GT(stored, 0);
  EXPECT_LT(stored, 50);
  EXPECT_EQ(kv->Get("k0")->value, value);  // the oldest are kept
}

TEST_F(NatsKvBucketTest, FileStorageKeepsValuesAcrossAServerRestart) {
  auto kv = Bucket({.bucket = "durable", .storage = JsStorage::kFile});
  ASSERT_NE(kv, nullptr);
  auto rev = kv->Put("pid", "session state");
  ASSERT_TRUE(rev.ok());
  server_.Stop();
  ASSERT_TRUE(Eventually([&] { return !bus_->connected(); }));
  ASSERT_TRUE(server_.Start());
  ASSERT_TRUE(Eventually([&] { return bus_->connected(); }, milliseconds(10000)));
  absl::StatusOr<KvEntry> e = absl::UnknownError("not read");
  ASSERT_TRUE(Eventually(
      [&] {
        e = kv->Get("pid");
        return e.ok();
      },
      milliseconds(10000)))
      << e.status();
  EXPECT_EQ(e->value, "session state");
  EXPECT_EQ(e->revision, *rev);
  // Compare-and-set still works from the revision read before the restart.
  EXPECT_TRUE(kv->Update("pid", "used", *rev).ok());
}

}  // namespace
}  // namespace switchboard::bus
