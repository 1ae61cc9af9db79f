#include "edge/recovery/memory_session_store.h"

#include <gtest/gtest.h>

namespace switchboard::recovery {
namespace {

using std::chrono::milliseconds;
using SysClock = std::chrono::system_clock;

SessionRecord Record(std::string pid, std::optional<SysClock::time_point> disconnected) {
  SessionRecord record;
  record.pid = std::move(pid);
  record.state.id = "sock-" + record.pid;
  record.state.user_id = "alice";
  record.state.rooms = {"red"};
  record.disconnected_at = disconnected;
  return record;
}

absl::StatusOr<SessionRecord> Take(MemorySessionStore& store, const std::string& pid,
                                   SysClock::time_point now = SysClock::now()) {
  absl::StatusOr<SessionRecord> out = absl::InternalError("not called");
  store.Take(pid, now, [&](absl::StatusOr<SessionRecord> record) { out = std::move(record); });
  return out;
}

TEST(MemorySessionStoreTest, ADisconnectedSessionIsTakenOnce) {
  MemorySessionStore store(milliseconds(60'000));
  store.Put(Record("p1", SysClock::now()), nullptr);
  auto record = Take(store, "p1");
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->state.id, "sock-p1");
  EXPECT_EQ(record->state.rooms, std::vector<std::string>{"red"});
  EXPECT_TRUE(absl::IsNotFound(Take(store, "p1").status())) << "single use";
}

TEST(MemorySessionStoreTest, UnknownInUseAndExpired) {
  MemorySessionStore store(milliseconds(1000));
  EXPECT_TRUE(absl::IsNotFound(Take(store, "nobody").status()));
  store.Put(Record("live", std::nullopt), nullptr);
  EXPECT_TRUE(absl::IsFailedPrecondition(Take(store, "live").status()))
      << "a connected session's pid is in use";
  auto now = SysClock::now();
  store.Put(Record("old", now - milliseconds(1500)), nullptr);
  EXPECT_TRUE(absl::IsDeadlineExceeded(Take(store, "old", now).status()));
  EXPECT_TRUE(absl::IsNotFound(Take(store, "old", now).status())) << "dropped once expired";
}

TEST(MemorySessionStoreTest, WritesReplaceAndEraseForgets) {
  MemorySessionStore store(milliseconds(60'000));
  store.Put(Record("p", std::nullopt), nullptr);
  SessionRecord later = Record("p", SysClock::now());
  later.state.rooms = {"red", "blue"};
  bool done = false;
  store.Put(later, [&](absl::Status status) { done = status.ok(); });
  EXPECT_TRUE(done);
  auto record = Take(store, "p");
  ASSERT_TRUE(record.ok());
  EXPECT_EQ(record->state.rooms, (std::vector<std::string>{"red", "blue"}));
  store.Put(Record("q", SysClock::now()), nullptr);
  store.Erase("q", nullptr);
  EXPECT_TRUE(absl::IsNotFound(Take(store, "q").status()));
}

TEST(MemorySessionStoreTest, LongExpiredRecordsAreSweptAway) {
  MemorySessionStore store(milliseconds(10));
  auto long_ago = SysClock::now() - std::chrono::hours(1);
  for (int i = 0; i < 1000; ++i) store.Put(Record(std::to_string(i), long_ago), nullptr);
  store.Put(Record("fresh", std::nullopt), nullptr);
  EXPECT_EQ(store.size(), 1u) << "memory stays bounded by the window";
}

}  // namespace
}  // namespace switchboard::recovery
