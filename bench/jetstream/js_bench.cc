// JetStream building blocks (bus/jetstream.h ...; issue 17): against a
// nats-server -js (the one given with --url, or one of its own with a
// temporary store), for memory and file storage, prints:
//   * sync publish round trip (p50 / p99 over --sync messages),
//   * pipelined (AsyncPublisher) throughput over --async messages,
//   * a range read of --range messages out of a stream that holds many more
//     (a session restore), p50 / p99 over 20 reads, and of an empty range.
// Figures only; no pass/fail.
#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "bench/common/histogram.h"
#include "bus/jetstream.h"
#include "bus/js_publisher.h"
#include "bus/js_range.h"
#include "bus/js_stream.h"
#include "bus/nats_bus.h"
#include "tests/bus/jetstream_server.h"

namespace {

using namespace switchboard;
using Clock = std::chrono::steady_clock;

int64_t Micros(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

void Die(const absl::Status& s) {
  std::fprintf(stderr, "%s\n", s.ToString().c_str());
  std::exit(1);
}

void Run(bus::JetStream& js, bus::JsStorage storage, int sync_n, int async_n, int range_n,
         size_t payload_size, size_t max_pending) {
  const char* label = storage == bus::JsStorage::kFile ? "file" : "memory";
  const std::string name = std::string("bench_") + label;
  (void)bus::DeleteStream(js, name);
  bus::StreamConfig config;
  config.name = name;
  config.subject = "bench." + name + ".>";
  config.storage = storage;
  if (absl::Status s = bus::EnsureStream(js, config); !s.ok()) Die(s);
  const std::string subject = "bench." + name + ".x";
  const std::string payload(payload_size, 'p');

  bench::Histogram sync_hist;
  for (int i = 0; i < sync_n; ++i) {
    auto start = Clock::now();
    auto seq = js.Publish(subject, payload);
    if (!seq.ok()) Die(seq.status());
    sync_hist.Add(Micros(Clock::now() - start));
  }
  std::printf("%-6s sync publish   n=%d payload=%zuB  p50=%lldus p99=%lldus\n", label, sync_n,
              payload_size, static_cast<long long>(sync_hist.Quantile(0.5)),
              static_cast<long long>(sync_hist.Quantile(0.99)));

  bus::AsyncPublisher::Options options;
  options.max_pending = max_pending;
  auto publisher = bus::AsyncPublisher::Create(js, options);
  if (!publisher.ok()) Die(publisher.status());
  std::atomic<int> failed{0};
  std::atomic<uint64_t> last_seq{0};
  auto start = Clock::now();
  for (int i = 0; i < async_n; ++i) {
    while (true) {
      absl::Status s = (*publisher)->Publish(subject, payload, [&](absl::StatusOr<uint64_t> r) {
        if (r.ok()) {
          last_seq.store(*r, std::memory_order_relaxed);
        } else {
          failed.fetch_add(1);
        }
      });
      if (s.ok()) break;
      if (!absl::IsResourceExhausted(s)) Die(s);
      std::this_thread::yield();  // the bound: wait for acks
    }
  }
  if (absl::Status s = (*publisher)->Flush(std::chrono::seconds(60)); !s.ok()) Die(s);
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf(
      "%-6s async publish  n=%d payload=%zuB max_pending=%zu  %.0f msg/s (%.3f s), "
      "failed=%d\n",
      label, async_n, payload_size, max_pending, async_n / secs, secs, failed.load());

  auto bounds = bus::GetStreamBounds(js, name);
  if (!bounds.ok()) Die(bounds.status());
  bench::Histogram range_hist;
  bench::Histogram empty_hist;
  bench::Histogram info_hist;
  for (int round = 0; round < 20; ++round) {
    // A window in the middle of the stream.
    uint64_t after = bounds->last_seq / 2 + static_cast<uint64_t>(round) * 7;
    auto t0 = Clock::now();
    auto range = bus::ReadRange(js, name, config.subject, after, after + range_n);
    if (!range.ok()) Die(range.status());
    range_hist.Add(Micros(Clock::now() - t0));
    if (range->messages.size() != static_cast<size_t>(range_n)) {
      std::fprintf(stderr, "range read returned %zu messages\n", range->messages.size());
      std::exit(1);
    }
    t0 = Clock::now();
    auto empty = bus::ReadRange(js, name, config.subject, bounds->last_seq, bounds->last_seq + 10);
    if (!empty.ok()) Die(empty.status());
    empty_hist.Add(Micros(Clock::now() - t0));
    t0 = Clock::now();
    if (auto b = bus::GetStreamBounds(js, name); !b.ok()) Die(b.status());
    info_hist.Add(Micros(Clock::now() - t0));
  }
  std::printf(
      "%-6s range read     %d of %llu messages: p50=%lldus p99=%lldus; empty range: "
      "p50=%lldus p99=%lldus\n",
      label, range_n, static_cast<unsigned long long>(bounds->messages),
      static_cast<long long>(range_hist.Quantile(0.5)),
      static_cast<long long>(range_hist.Quantile(0.99)),
      static_cast<long long>(empty_hist.Quantile(0.5)),
      static_cast<long long>(empty_hist.Quantile(0.99)));
  std::printf("%-6s stream info (first/last seq) round trip: p50=%lldus p99=%lldus\n", label,
              static_cast<long long>(info_hist.Quantile(0.5)),
              static_cast<long long>(info_hist.Quantile(0.99)));
  publisher->reset();
  (void)bus::DeleteStream(js, name);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"JetStream publish / range read figures"};
  std::string url;
  int sync_n = 2000;
  int async_n = 100000;
  int range_n = 1000;
  size_t payload = 100;
  size_t max_pending = 1024;
  app.add_option("--url", url, "nats-server with JetStream (default: start one)");
  app.add_option("--sync", sync_n, "sync publishes");
  app.add_option("--async", async_n, "async publishes");
  app.add_option("--range", range_n, "messages per range read");
  app.add_option("--payload", payload, "payload bytes");
  app.add_option("--max-pending", max_pending, "AsyncPublisher max_pending");
  CLI11_PARSE(app, argc, argv);

  std::unique_ptr<bus::testing::JetStreamServer> owned;
  if (url.empty()) {
    owned = std::make_unique<bus::testing::JetStreamServer>();
    if (!owned->Start()) {
      std::fprintf(stderr, "cannot start nats-server -js\n");
      return 1;
    }
    url = owned->url();
  }
  bus::NatsBus::Options options;
  options.urls = {url};
  auto conn = bus::NatsBus::Connect(options);
  if (!conn.ok()) Die(conn.status());
  auto js = bus::JetStream::Create((*conn)->native_connection());
  if (!js.ok()) Die(js.status());
  if (absl::Status s = (*js)->Check(); !s.ok()) Die(s);
  std::printf("nats-server %s\n", url.c_str());
  for (auto storage : {bus::JsStorage::kMemory, bus::JsStorage::kFile}) {
    Run(**js, storage, sync_n, async_n, range_n, payload, max_pending);
  }
  return 0;
}
