// MemoryRelease hands back what departed connections freed: a worker thread
// (an I/O thread's arena) allocates and touches the buffers of many
// "connections", every tenth followed by a small block that stays (a
// connection that stays, so the heap's top cannot shrink on free), then frees
// the connections' buffers. glibc keeps
// those pages resident until malloc_trim.

#include "edge/memory_release.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <thread>
#include <vector>

#include "tests/support/sanitizer.h"

namespace switchboard::edge {
namespace {

// The sanitizers' allocator is not glibc's: malloc_trim gives nothing back
// there, so only the trim decisions are checked under them.
constexpr bool kGlibcMalloc = !testing_support::kAddressSanitizer;

constexpr size_t kConnections = 10000;
constexpr size_t kBlocks[] = {640, 2048, 4096};  // per connection: ~6.6 KiB

size_t RssBytes() {
  std::ifstream statm("/proc/self/statm");
  size_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

// The blocks that stay after the connections went.
using Kept = std::vector<std::unique_ptr<char[]>>;

// On its own thread: allocates the connections and the kept blocks, frees the
// connections. Returns the bytes freed.
size_t ConnectAndLeave(Kept& kept) {
  size_t freed = 0;
  std::thread([&] {
    std::vector<std::unique_ptr<char[]>> buffers;
    buffers.reserve(kConnections * std::size(kBlocks));
    kept.reserve(kConnections);
    for (size_t i = 0; i < kConnections; ++i) {
      for (size_t size : kBlocks) {
        buffers.emplace_back(new char[size]);
        std::memset(buffers.back().get(), static_cast<int>(i), size);  // resident
        freed += size;
      }
      if (i % 10 != 0) continue;
      kept.emplace_back(new char[64]);
      std::memset(kept.back().get(), 1, 64);
    }
    buffers.clear();
  }).join();
  return freed;
}

TEST(MemoryReleaseTest, TrimsAfterLargeDropNotWhileSteady) {
  std::atomic<size_t> sessions{kConnections};
  MemoryRelease release({.period = std::chrono::milliseconds(0), .min_drop = 1000},
                        [&] { return sessions.load(); });
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(release.Check());  // steady with every connection

  Kept kept;
  const size_t freed = ConnectAndLeave(kept);
  // Growth and a small churn (below min_drop) are no reason to trim.
  sessions = kConnections + 500;
  EXPECT_FALSE(release.Check());
  sessions = kConnections;
  EXPECT_FALSE(release.Check());
  EXPECT_EQ(release.trims(), 0u);

  const size_t before = RssBytes();
  sessions = kConnections / 10;  // the others left
  EXPECT_TRUE(release.Check());
  const size_t after = RssBytes();
  EXPECT_EQ(release.trims(), 1u);
  if (kGlibcMalloc) {
    EXPECT_GE(before, after + freed / 2)
        << "RSS " << before << " -> " << after << " bytes, " << freed << " freed";
  }

  // Steady at the new count: no more trims.
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(release.Check());
  EXPECT_EQ(release.trims(), 1u);
}

TEST(MemoryReleaseTest, NeedsHalfAndMinDrop) {
  std::atomic<size_t> sessions{3000};
  MemoryRelease release({.period = std::chrono::milliseconds(0), .min_drop = 1000},
                        [&] { return sessions.load(); });
  EXPECT_FALSE(release.Check());
  sessions = 1800;  // fell by 1200, but not to half
  EXPECT_FALSE(release.Check());
  sessions = 1500;  // half of the peak (3000) since the last trim
  EXPECT_TRUE(release.Check());
  sessions = 800;  // half of 1500, but only 700 fewer
  EXPECT_FALSE(release.Check());
  sessions = 400;  // 1100 fewer than 1500
  EXPECT_TRUE(release.Check());
  EXPECT_EQ(release.trims(), 2u);
}

TEST(MemoryReleaseTest, ItsThreadTrimsAfterADrop) {
  std::atomic<size_t> sessions{5000};
  MemoryRelease release({.period = std::chrono::milliseconds(10), .min_drop = 1000},
                        [&] { return sessions.load(); });
  EXPECT_FALSE(release.Check());  // the peak is seen, whether the thread ran yet or not
  sessions = 0;
  for (int i = 0; i < 500 && release.trims() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(release.trims(), 1u);
}

}  // namespace
}  // namespace switchboard::edge
