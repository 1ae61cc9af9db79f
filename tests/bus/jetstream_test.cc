// JetStream building blocks against a real nats-server -js: streams and
// their limits, sync and pipelined publishing, range reads, the ordered
// consumer, and a server restart with file storage.

#include "bus/jetstream.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bus/js_consumer.h"
#include "bus/js_publisher.h"
#include "bus/js_range.h"
#include "bus/js_stream.h"
#include "bus/nats_bus.h"
#include "tests/bus/jetstream_server.h"
#include "tests/bus/nats_server.h"
#include "tests/support/eventually.h"

namespace switchboard::bus {
namespace {

using std::chrono::milliseconds;
using switchboard::testing_support::Eventually;
using testing::JetStreamServer;
using testing::NatsServer;

std::vector<uint64_t> Seqs(const std::vector<StoredMessage>& messages) {
  std::vector<uint64_t> out;
  for (const auto& m : messages) out.push_back(m.seq);
  return out;
}

std::vector<uint64_t> Iota(uint64_t from, uint64_t to) {  // [from, to]
  std::vector<uint64_t> out;
  for (uint64_t i = from; i <= to; ++i) out.push_back(i);
  return out;
}

// What an ordered consumer delivered, with bounded waits.
class Received {
 public:
  OrderedConsumer::Callback callback() {
    return [this](StoredMessage m) {
      std::lock_guard<std::mutex> lock(mu_);
      messages_.push_back(std::move(m));
      cv_.notify_all();
    };
  }
  bool WaitFor(size_t n, milliseconds timeout = milliseconds(10000)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return messages_.size() >= n; });
  }
  std::vector<StoredMessage> messages() {
    std::lock_guard<std::mutex> lock(mu_);
    return messages_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<StoredMessage> messages_;
};

class NatsJetStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start());
    bus_ = server_.Connect();
    ASSERT_NE(bus_, nullptr);
    auto js = JetStream::Create(bus_->native_connection());
    ASSERT_TRUE(js.ok()) << js.status();
    js_ = std::move(*js);
  }

  StreamConfig Config(std::string name, JsStorage storage = JsStorage::kMemory) {
    StreamConfig c;
    c.name = std::move(name);
    c.subject = "log." + c.name + ".>";
    c.storage = storage;
    return c;
  }

  void PublishN(const std::string& subject, int n, const std::string& prefix = "m") {
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE(js_->Publish(subject, prefix + std::to_string(i)).ok());
    }
  }

  JetStreamServer server_;
  std::unique_ptr<NatsBus> bus_;
  std::unique_ptr<JetStream> js_;
};

TEST(NatsJetStreamCheckTest, ServerWithoutJetStreamIsAClearFailedPrecondition) {
  NatsServer plain;
  ASSERT_TRUE(plain.Start());
  NatsBus::Options options;
  options.urls = {plain.url()};
  auto bus = NatsBus::Connect(options);
  ASSERT_TRUE(bus.ok()) << bus.status();
  absl::Status s = CheckJetStream((*bus)->native_connection());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("has no JetStream"), std::string_view::npos) << s;
  EXPECT_NE(s.message().find("-js"), std::string_view::npos) << s;
  EXPECT_NE(s.message().find(std::to_string(plain.port())), std::string_view::npos) << s;
}

TEST_F(NatsJetStreamTest, CheckPassesWithJetStream) {
  EXPECT_TRUE(CheckJetStream(bus_->native_connection()).ok());
  EXPECT_TRUE(js_->Check().ok());
}

TEST_F(NatsJetStreamTest, EnsureStreamIsIdempotentAndSafeUnderRacingCreators) {
  StreamConfig config = Config("race", JsStorage::kFile);
  config.max_bytes = 1 << 20;
  config.max_age = milliseconds(60000);
  // Four edges, each with its own connection, create it at once.
  std::vector<std::unique_ptr<NatsBus>> buses;
  std::vector<std::unique_ptr<JetStream>> contexts;
  for (int i = 0; i < 4; ++i) {
    buses.push_back(server_.Connect());
    ASSERT_NE(buses.back(), nullptr);
    auto js = JetStream::Create(buses.back()->native_connection());
    ASSERT_TRUE(js.ok());
    contexts.push_back(std::move(*js));
  }
  std::vector<absl::Status> results(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] { results[i] = EnsureStream(*contexts[i], config); });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : results) EXPECT_TRUE(r.ok()) << r;
  EXPECT_TRUE(EnsureStream(*js_, config).ok());  // and again
  // Other limits: updated in place (a max_age below the default duplicate
  // window of 2 min included).
  config.max_age = milliseconds(1000);
  config.max_bytes = 4096;
  EXPECT_TRUE(EnsureStream(*js_, config).ok());
  EXPECT_TRUE(EnsureStream(*js_, config).ok());
  auto bounds = GetStreamBounds(*js_, "race");
  ASSERT_TRUE(bounds.ok()) << bounds.status();
  EXPECT_EQ(bounds->messages, 0u);
  // Storage cannot change: a clear refusal.
  StreamConfig memory = config;
  memory.storage = JsStorage::kMemory;
  absl::Status s = EnsureStream(*js_, memory);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(absl::IsNotFound(GetStreamBounds(*js_, "nope").status()));
}

TEST_F(NatsJetStreamTest, SyncPublishReturnsTheSequence) {
  ASSERT_TRUE(EnsureStream(*js_, Config("sync")).ok());
  for (uint64_t i = 1; i <= 5; ++i) {
    auto seq = js_->Publish("log.sync.a", "x");
    ASSERT_TRUE(seq.ok()) << seq.status();
    EXPECT_EQ(*seq, i);
  }
  auto none = js_->Publish("nostream.here", "x");
  EXPECT_TRUE(absl::IsNotFound(none.status())) << none.status();
  auto bounds = GetStreamBounds(*js_, "sync");
  ASSERT_TRUE(bounds.ok());
  EXPECT_EQ(bounds->first_seq, 1u);
  EXPECT_EQ(bounds->last_seq, 5u);
  EXPECT_EQ(bounds->messages, 5u);
}

TEST_F(NatsJetStreamTest, MaxBytesTrimsTheOldestAndRangeReadsSkipTheTrimmedStart) {
  StreamConfig config = Config("bytes");
  config.max_bytes = 4096;
  ASSERT_TRUE(EnsureStream(*js_, config).ok());
  const std::string payload(200, 'p');
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(js_->Publish("log.bytes.a", payload).ok());
  auto bounds = GetStreamBounds(*js_, "bytes");
  ASSERT_TRUE(bounds.ok());
  EXPECT_EQ(bounds->last_seq, 100u);
  EXPECT_GT(bounds->first_seq, 1u);  // the oldest went
  EXPECT_LE(bounds->bytes, 4096u);
  EXPECT_EQ(bounds->messages, 100 - bounds->first_seq + 1);
  // A range starting before the trimmed start returns what is left.
  auto range = ReadRange(*js_, "bytes", "log.bytes.>", 0, 100);
  ASSERT_TRUE(range.ok()) << range.status();
  EXPECT_TRUE(range->complete);
  EXPECT_EQ(Seqs(range->messages), Iota(bounds->first_seq, 100));
  // Raising the limit updates the stream in place: nothing more is trimmed.
  config.max_bytes = 1 << 20;
  ASSERT_TRUE(EnsureStream(*js_, config).ok());
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(js_->Publish("log.bytes.a", payload).ok());
  auto after = GetStreamBounds(*js_, "bytes");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->first_seq, bounds->first_seq);
  EXPECT_EQ(after->last_seq, 200u);
}

TEST_F(NatsJetStreamTest, MaxAgeRemovesOldMessages) {
  StreamConfig config = Config("age");
  config.max_age = milliseconds(1000);
  ASSERT_TRUE(EnsureStream(*js_, config).ok());
  PublishN("log.age.a", 3);
  auto bounds = GetStreamBounds(*js_, "age");
  ASSERT_TRUE(bounds.ok());
  EXPECT_EQ(bounds->messages, 3u);
  ASSERT_TRUE(Eventually(
      [&] {
        auto b = GetStreamBounds(*js_, "age");
        return b.ok() && b->messages == 0;
      },
      milliseconds(10000)));
  auto empty = GetStreamBounds(*js_, "age");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->last_seq, 3u);
  EXPECT_EQ(empty->first_seq, 4u);  // last + 1: empty
  auto range = ReadRange(*js_, "age", "log.age.>", 0, 3);
  ASSERT_TRUE(range.ok()) << range.status();
  EXPECT_TRUE(range->messages.empty());
}

TEST_F(NatsJetStreamTest, RangeReadsAreExactInOrderAndFiltered) {
  ASSERT_TRUE(EnsureStream(*js_, Config("range")).ok());
  for (int i = 1; i <= 40; ++i) {
    std::string subject = (i % 2 == 1) ? "log.range.a" : "log.range.b";
    auto seq = js_->Publish(subject, "p" + std::to_string(i));
    ASSERT_TRUE(seq.ok());
    ASSERT_EQ(*seq, static_cast<uint64_t>(i));
  }
  auto all = ReadRange(*js_, "range", "log.range.>", 5, 15);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(Seqs(all->messages), Iota(6, 15));
  EXPECT_EQ(all->messages.front().subject, "log.range.b");
  EXPECT_EQ(all->messages.front().payload, "p6");
  EXPECT_EQ(all->messages.back().payload, "p15");
  // One subject: the odd sequences only.
  auto odd = ReadRange(*js_, "range", "log.range.a", 5, 15);
  ASSERT_TRUE(odd.ok()) << odd.status();
  EXPECT_EQ(Seqs(odd->messages), (std::vector<uint64_t>{7, 9, 11, 13, 15}));
  // To the end, and past it.
  auto tail = ReadRange(*js_, "range", "log.range.>", 35, 1000);
  ASSERT_TRUE(tail.ok());
  EXPECT_EQ(Seqs(tail->messages), Iota(36, 40));
  // Single message, empty ranges.
  auto one = ReadRange(*js_, "range", "log.range.>", 19, 20);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(Seqs(one->messages), (std::vector<uint64_t>{20}));
  for (auto [after, upto] : {std::pair<uint64_t, uint64_t>{40, 50}, {10, 10}, {12, 3}}) {
    auto empty = ReadRange(*js_, "range", "log.range.>", after, upto);
    ASSERT_TRUE(empty.ok()) << empty.status();
    EXPECT_TRUE(empty->messages.empty()) << after << ".." << upto;
  }
  // Nothing of that subject in the range.
  auto none = ReadRange(*js_, "range", "log.range.c", 0, 40);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->messages.empty());
  // The memory bound: stops early, and says so.
  RangeOptions small;
  small.max_messages = 3;
  auto part = ReadRange(*js_, "range", "log.range.>", 0, 40, small);
  ASSERT_TRUE(part.ok());
  EXPECT_FALSE(part->complete);
  EXPECT_EQ(Seqs(part->messages), Iota(1, 3));
  // No such stream: JetStream leaves the direct get unanswered; the
  // timeout is followed by a stream info that tells why.
  RangeOptions quick;
  quick.timeout = milliseconds(300);
  EXPECT_TRUE(absl::IsNotFound(ReadRange(*js_, "nope", "x.>", 0, 5, quick).status()));
}

TEST_F(NatsJetStreamTest, AsyncPublishCompletesInPublishOrderWithSequences) {
  ASSERT_TRUE(EnsureStream(*js_, Config("async")).ok());
  AsyncPublisher::Options options;
  options.max_pending = 256;
  auto publisher = AsyncPublisher::Create(*js_, options);
  ASSERT_TRUE(publisher.ok()) << publisher.status();
  constexpr int kCount = 2000;
  std::mutex mu;
  std::vector<int> order;
  std::vector<absl::StatusOr<uint64_t>> results;
  int sent = 0;
  // Every 100th goes to a subject no stream takes: an error, in its place.
  for (int i = 0; i < kCount; ++i) {
    std::string subject = (i % 100 == 99) ? "nostream.x" : "log.async.a";
    absl::Status s;
    // Bounded: retry while max_pending publishes are in flight.
    for (int attempt = 0; attempt < 10000; ++attempt) {
      s = (*publisher)->Publish(subject, std::to_string(i), [&, i](absl::StatusOr<uint64_t> r) {
        std::lock_guard<std::mutex> lock(mu);
        order.push_back(i);
        results.push_back(std::move(r));
      });
      if (!absl::IsResourceExhausted(s)) break;
      std::this_thread::sleep_for(milliseconds(1));
    }
    ASSERT_TRUE(s.ok()) << s;
    ++sent;
  }
  ASSERT_TRUE((*publisher)->Flush(milliseconds(10000)).ok());
  EXPECT_EQ((*publisher)->pending(), 0u);
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(order.size(), static_cast<size_t>(kCount));
  uint64_t expected_seq = 1;
  for (int i = 0; i < kCount; ++i) {
    ASSERT_EQ(order[i], i);
    if (i % 100 == 99) {
      EXPECT_FALSE(results[i].ok()) << i;
      EXPECT_TRUE(absl::IsNotFound(results[i].status())) << results[i].status();
    } else {
      ASSERT_TRUE(results[i].ok()) << i << ": " << results[i].status();
      EXPECT_EQ(*results[i], expected_seq++);
    }
  }
  // The stored order is the publish order.
  auto range = ReadRange(*js_, "async", "log.async.>", 0, expected_seq - 1);
  ASSERT_TRUE(range.ok());
  ASSERT_EQ(range->messages.size(), expected_seq - 1);
  int want = 0;
  for (const auto& m : range->messages) {
    if (want % 100 == 99) ++want;
    EXPECT_EQ(m.payload, std::to_string(want++));
  }
}

// Unacknowledged publishes are stored too, in their place among the
// acknowledged ones, and the publisher's end sends what it still holds.
TEST_F(NatsJetStreamTest, UnacknowledgedPublishesAreStoredInOrderWithAcknowledgedOnes) {
  ASSERT_TRUE(EnsureStream(*js_, Config("mixed")).ok());
  auto publisher = AsyncPublisher::Create(*js_, {});
  ASSERT_TRUE(publisher.ok()) << publisher.status();
  constexpr int kCount = 300;
  std::atomic<int> acked{0};
  for (int i = 0; i < kCount; ++i) {
    if (i % 3 == 0) {
      ASSERT_TRUE((*publisher)
                      ->Publish("log.mixed.a", std::to_string(i),
                                [&](absl::StatusOr<uint64_t> r) { acked += r.ok(); })
                      .ok());
    } else {
      ASSERT_TRUE((*publisher)->PublishUnacknowledged("log.mixed.a", std::to_string(i)).ok());
    }
  }
  // Only the acknowledged ones wait for anything.
  ASSERT_TRUE((*publisher)->Flush(milliseconds(10000)).ok());
  EXPECT_EQ(acked.load(), kCount / 3);
  EXPECT_EQ((*publisher)->pending(), 0u);
  publisher->reset();
  // The server has them all; the stream takes them in a moment.
  absl::StatusOr<Range> range;
  for (int tries = 0; tries < 100; ++tries) {
    range = ReadRange(*js_, "mixed", "log.mixed.>", 0, kCount);
    ASSERT_TRUE(range.ok()) << range.status();
    if (range->messages.size() == static_cast<size_t>(kCount)) break;
    std::this_thread::sleep_for(milliseconds(50));
  }
  ASSERT_EQ(range->messages.size(), static_cast<size_t>(kCount));
  for (int i = 0; i < kCount; ++i) EXPECT_EQ(range->messages[i].payload, std::to_string(i));
}

// NATS.c has no map of pending publishes before the first one: a publisher
// destroyed unused must not ask it for what is left (it crashed).
TEST_F(NatsJetStreamTest, AsyncPublisherDestroyedBeforeAnyPublish) {
  auto publisher = AsyncPublisher::Create(*js_, {});
  ASSERT_TRUE(publisher.ok()) << publisher.status();
  publisher->reset();
  SUCCEED();
}

TEST_F(NatsJetStreamTest, AsyncPublishIsBoundedAndTimesOutInOrderWhenTheServerIsGone) {
  ASSERT_TRUE(EnsureStream(*js_, Config("bound")).ok());
  AsyncPublisher::Options options;
  options.max_pending = 4;
  options.ack_timeout = milliseconds(500);
  auto publisher = AsyncPublisher::Create(*js_, options);
  ASSERT_TRUE(publisher.ok());
  server_.Stop();
  ASSERT_TRUE(Eventually([&] { return !bus_->connected(); }));
  std::mutex mu;
  std::vector<std::pair<int, absl::StatusCode>> done;
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE((*publisher)
                    ->Publish("log.bound.a", "x",
                              [&, i](absl::StatusOr<uint64_t> r) {
                                std::lock_guard<std::mutex> lock(mu);
                                done.emplace_back(i, r.status().code());
                              })
                    .ok());
  }
  absl::Status full = (*publisher)->Publish("log.bound.a", "x", [](absl::StatusOr<uint64_t>) {
    ADD_FAILURE() << "a refused publish completed";
  });
  EXPECT_TRUE(absl::IsResourceExhausted(full)) << full;
  ASSERT_TRUE((*publisher)->Flush(milliseconds(10000)).ok());
  ASSERT_TRUE(Eventually([&] {
    std::lock_guard<std::mutex> lock(mu);
    return done.size() == 4;
  }));
  std::lock_guard<std::mutex> lock(mu);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(done[i].first, i);
    EXPECT_EQ(done[i].second, absl::StatusCode::kDeadlineExceeded);
  }
}

TEST_F(NatsJetStreamTest, EverythingOutlivingTheBusFailsCleanlyAndCompletesOnce) {
  ASSERT_TRUE(EnsureStream(*js_, Config("gone")).ok());
  AsyncPublisher::Options options;
  options.ack_timeout = milliseconds(60000);  // only the destructor ends them
  auto publisher = AsyncPublisher::Create(*js_, options);
  ASSERT_TRUE(publisher.ok());
  server_.Stop();
  ASSERT_TRUE(Eventually([&] { return !bus_->connected(); }));
  std::atomic<int> cancelled{0};
  std::atomic<int> other{0};
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE((*publisher)
                    ->Publish("log.gone.a", "x",
                              [&](absl::StatusOr<uint64_t> r) {
                                (absl::IsCancelled(r.status()) ? cancelled : other).fetch_add(1);
                              })
                    .ok());
  }
  bus_.reset();  // closes the connection the others share
  EXPECT_FALSE(js_->Publish("log.gone.a", "x").ok());
  EXPECT_FALSE(GetStreamBounds(*js_, "gone").ok());
  EXPECT_FALSE((*publisher)->Publish("log.gone.a", "x", [](absl::StatusOr<uint64_t>) {}).ok());
  publisher->reset();  // the unanswered complete now, once each
  EXPECT_EQ(cancelled.load(), 3);
  EXPECT_EQ(other.load(), 0);
}

TEST_F(NatsJetStreamTest, OrderedConsumerDeliversNewMessagesOrFromASequenceInOrder) {
  ASSERT_TRUE(EnsureStream(*js_, Config("live")).ok());
  PublishN("log.live.a", 10, "old");
  Received fresh;
  OrderedConsumer::Options options;
  options.stream = "live";
  options.subject = "log.live.>";
  auto live = OrderedConsumer::Start(*js_, options, fresh.callback());
  ASSERT_TRUE(live.ok()) << live.status();
  Received from;
  options.start_seq = 5;
  auto replay = OrderedConsumer::Start(*js_, options, from.callback());
  ASSERT_TRUE(replay.ok()) << replay.status();
  Received only_b;
  options.subject = "log.live.b";
  options.start_seq = 1;
  auto filtered = OrderedConsumer::Start(*js_, options, only_b.callback());
  ASSERT_TRUE(filtered.ok()) << filtered.status();
  // Let the DeliverNew consumer be in place before publishing (its
  // creation has been answered by the server already: Start waits).
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(
        js_->Publish(i % 4 == 0 ? "log.live.b" : "log.live.a", "new" + std::to_string(i)).ok());
  }
  ASSERT_TRUE(fresh.WaitFor(200));
  ASSERT_TRUE(from.WaitFor(206));
  ASSERT_TRUE(only_b.WaitFor(50));
  auto got = fresh.messages();
  EXPECT_EQ(Seqs(got), Iota(11, 210));
  EXPECT_EQ(got.front().payload, "new0");
  EXPECT_EQ(got.front().subject, "log.live.b");
  EXPECT_EQ(Seqs(from.messages()), Iota(5, 210));
  auto b = only_b.messages();
  ASSERT_EQ(b.size(), 50u);
  for (size_t i = 0; i < b.size(); ++i) EXPECT_EQ(b[i].seq, 11 + 4 * i);
  EXPECT_EQ((*live)->last_seq(), 210u);
  (*live)->Stop();
  ASSERT_TRUE(js_->Publish("log.live.a", "after stop").ok());
  ASSERT_TRUE(from.WaitFor(207));
  EXPECT_EQ(fresh.messages().size(), 200u);
}

TEST_F(NatsJetStreamTest, OrderedConsumerCanStopItselfFromItsCallback) {
  ASSERT_TRUE(EnsureStream(*js_, Config("self")).ok());
  PublishN("log.self.a", 5);
  std::atomic<int> calls{0};
  std::unique_ptr<OrderedConsumer> consumer;
  std::mutex mu;
  OrderedConsumer::Options options;
  options.stream = "self";
  options.subject = "log.self.>";
  options.start_seq = 1;
  std::unique_lock<std::mutex> hold(mu);  // Start returns before the first call uses it
  auto started = OrderedConsumer::Start(*js_, options, [&](StoredMessage) {
    std::lock_guard<std::mutex> lock(mu);
    if (calls.fetch_add(1) == 0) consumer->Stop();
  });
  ASSERT_TRUE(started.ok());
  consumer = std::move(*started);
  hold.unlock();
  ASSERT_TRUE(Eventually([&] { return calls.load() >= 1; }));
  std::this_thread::sleep_for(milliseconds(200));  // room for wrong calls
  EXPECT_EQ(calls.load(), 1);
}

TEST_F(NatsJetStreamTest, FileStorageSurvivesAServerRestartAndTheConsumerCarriesOn) {
  ASSERT_TRUE(EnsureStream(*js_, Config("durable", JsStorage::kFile)).ok());
  Received got;
  OrderedConsumer::Options options;
  options.stream = "durable";
  options.subject = "log.durable.>";
  options.start_seq = 1;
  options.heartbeat = milliseconds(500);
  auto consumer = OrderedConsumer::Start(*js_, options, got.callback());
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  PublishN("log.durable.a", 10, "before");
  ASSERT_TRUE(got.WaitFor(10));

  server_.Stop();
  ASSERT_TRUE(Eventually([&] { return !bus_->connected(); }));
  ASSERT_TRUE(server_.Start());
  ASSERT_TRUE(Eventually([&] { return bus_->connected(); }, milliseconds(10000)));
  // JetStream may still be loading its streams just after the restart.
  ASSERT_TRUE(
      Eventually([&] { return GetStreamBounds(*js_, "durable").ok(); }, milliseconds(10000)));
  auto bounds = GetStreamBounds(*js_, "durable");
  ASSERT_TRUE(bounds.ok());
  EXPECT_EQ(bounds->first_seq, 1u);
  EXPECT_EQ(bounds->last_seq, 10u);
  auto range = ReadRange(*js_, "durable", "log.durable.>", 0, 10);
  ASSERT_TRUE(range.ok()) << range.status();
  ASSERT_EQ(Seqs(range->messages), Iota(1, 10));
  EXPECT_EQ(range->messages[3].payload, "before3");

  PublishN("log.durable.a", 10, "after");
  ASSERT_TRUE(got.WaitFor(20, milliseconds(20000)));
  std::this_thread::sleep_for(milliseconds(200));  // room for duplicates
  auto all = got.messages();
  EXPECT_EQ(Seqs(all), Iota(1, 20));
  EXPECT_EQ(all.back().payload, "after9");
}

}  // namespace
}  // namespace switchboard::bus
