#include "edge/recovery/memory_log.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "edge/recovery/session_match.h"

namespace switchboard::recovery {
namespace {

using std::chrono::milliseconds;
using Clock = MemoryLog::Clock;

// A packet "4<offset>" of `size` bytes: what the log stores is what encode made.
MemoryLog::Encode Packet(size_t size = 10) {
  return [size](uint64_t offset) {
    std::string text = "4" + std::to_string(offset);
    text.resize(std::max(size, text.size()), ' ');
    return std::vector<eio::Frame>{{std::make_shared<const std::string>(text), false}};
  };
}

sio::BroadcastTarget ToRoom(std::string room) {
  sio::BroadcastTarget target;
  target.rooms.push_back(std::move(room));
  return target;
}

std::vector<uint64_t> Offsets(MemoryLog& log, uint64_t after, const RecoveryLog::Match& match) {
  std::vector<uint64_t> out;
  bool called = false;
  log.ReadAfter(after, match, [&](absl::StatusOr<std::vector<LogEntryPtr>> entries) {
    called = true;
    ASSERT_TRUE(entries.ok()) << entries.status();
    for (const auto& entry : *entries) out.push_back(entry->offset);
  });
  EXPECT_TRUE(called) << "the in-memory log answers before returning";
  return out;
}

absl::Status ReadStatus(MemoryLog& log, uint64_t after) {
  absl::Status status;
  log.ReadAfter(
      after, [](const sio::BroadcastTarget&) { return true; },
      [&](absl::StatusOr<std::vector<LogEntryPtr>> entries) { status = entries.status(); });
  return status;
}

const RecoveryLog::Match kAll = [](const sio::BroadcastTarget&) { return true; };

TEST(MemoryLogTest, OffsetsAreContiguousAndCarriedByThePacket) {
  MemoryLog log(milliseconds(60'000), 1 << 20);
  for (int i = 1; i <= 3; ++i) {
    auto entry = log.Append(ToRoom("r"), Packet());
    ASSERT_TRUE(entry.ok());
    EXPECT_EQ((*entry)->offset, static_cast<uint64_t>(i));
    EXPECT_EQ((*entry)->delivery->offset, static_cast<uint64_t>(i));
    EXPECT_EQ(std::string_view(*(*entry)->delivery->frames[0].bytes).substr(0, 2),
              "4" + std::to_string(i));
  }
  EXPECT_EQ(log.Stats().last_offset, 3u);
  EXPECT_EQ(log.Stats().entries, 3u);
}

TEST(MemoryLogTest, ReadsOnlyTheEntriesAfterTheOffsetThatMatch) {
  MemoryLog log(milliseconds(60'000), 1 << 20);
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(log.Append(ToRoom(i % 2 ? "odd" : "even"), Packet()).ok());
  auto odd = [](const sio::BroadcastTarget& t) {
    return t.rooms == std::vector<std::string>{"odd"};
  };
  EXPECT_EQ(Offsets(log, 0, odd), (std::vector<uint64_t>{2, 4, 6, 8, 10}));
  EXPECT_EQ(Offsets(log, 6, odd), (std::vector<uint64_t>{8, 10}));
  EXPECT_EQ(Offsets(log, 10, kAll), (std::vector<uint64_t>{}));
  EXPECT_TRUE(absl::IsInvalidArgument(ReadStatus(log, 11))) << "an offset never given";
}

TEST(MemoryLogTest, TrimsByAgeAndAnOffsetBeforeTheTrimIsExpired) {
  MemoryLog log(milliseconds(1000), 1 << 20);
  Clock::time_point t0 = Clock::now();
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(log.AppendAtForTest(ToRoom("r"), Packet(), t0).ok());
  ASSERT_TRUE(log.AppendAtForTest(ToRoom("r"), Packet(), t0 + milliseconds(1500)).ok());
  EXPECT_EQ(log.Stats().entries, 1u) << "entries older than the window are gone";
  EXPECT_EQ(log.Stats().first_offset, 6u);
  EXPECT_TRUE(absl::IsOutOfRange(ReadStatus(log, 3))) << "entries 4 and 5 are gone";
  EXPECT_EQ(Offsets(log, 5, kAll), (std::vector<uint64_t>{6})) << "nothing after 5 is gone";
  log.TrimForTest(t0 + milliseconds(3000));
  EXPECT_EQ(log.Stats().entries, 0u);
  EXPECT_EQ(log.Stats().bytes, 0u);
  EXPECT_TRUE(absl::IsOutOfRange(ReadStatus(log, 5)));
  EXPECT_EQ(Offsets(log, 6, kAll), (std::vector<uint64_t>{})) << "up to date: nothing missed";
}

TEST(MemoryLogTest, TrimsOldestFirstPastTheByteCap) {
  MemoryLog log(milliseconds(60'000), 4096);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(log.Append(ToRoom("r"), Packet(500)).ok());
  LogStats stats = log.Stats();
  EXPECT_LE(stats.bytes, 4096u);
  EXPECT_GT(stats.entries, 0u);
  EXPECT_EQ(stats.last_offset, 100u);
  EXPECT_EQ(stats.first_offset, 100 - stats.entries + 1) << "the newest entries are kept";
  EXPECT_TRUE(absl::IsOutOfRange(ReadStatus(log, 1)));
}

TEST(MemoryLogTest, ARestoreReadsOnlyItsRange) {
  // A million entries before the offset are not visited: the match runs only
  // on the entries after it.
  MemoryLog log(milliseconds(600'000), size_t{1} << 32);
  for (int i = 0; i < 100'000; ++i) ASSERT_TRUE(log.Append(ToRoom("r"), Packet(1)).ok());
  size_t visited = 0;
  auto counting = [&visited](const sio::BroadcastTarget&) {
    ++visited;
    return true;
  };
  EXPECT_EQ(Offsets(log, 99'998, counting), (std::vector<uint64_t>{99'999, 100'000}));
  EXPECT_EQ(visited, 2u);
}

TEST(SessionMatchTest, RoomsUserIdNamespaceAndExcept) {
  sio::MovedSocketState state;
  state.id = "sock";
  state.user_id = "alice";
  state.rooms = {"red", "blue"};
  sio::BroadcastTarget everyone;
  EXPECT_TRUE(Reaches(everyone, state));
  EXPECT_TRUE(Reaches(ToRoom("red"), state));
  EXPECT_TRUE(Reaches(ToRoom("sock"), state)) << "a socket id is a room of its own";
  EXPECT_FALSE(Reaches(ToRoom("green"), state));
  sio::BroadcastTarget to_user;
  to_user.user_ids = {"bob", "alice"};
  EXPECT_TRUE(Reaches(to_user, state));
  to_user.user_ids = {"bob"};
  EXPECT_FALSE(Reaches(to_user, state));
  sio::BroadcastTarget except = ToRoom("red");
  except.except_rooms = {"blue"};
  EXPECT_FALSE(Reaches(except, state));
  everyone.except_rooms = {"sock"};
  EXPECT_FALSE(Reaches(everyone, state)) << "except the socket itself";
}

}  // namespace
}  // namespace switchboard::recovery

// A relay to the sender with exceptSender names only rooms it excepts: it
// reaches nobody, now or on a restore, so it is neither sent nor logged.
TEST(ReachesNobodyTest, OnlyWhenEveryTargetRoomIsExcepted) {
  switchboard::sio::BroadcastTarget self;
  self.rooms = {"sid1"};
  self.except_rooms = {"sid1"};
  EXPECT_TRUE(switchboard::sio::ReachesNobody(self));
  switchboard::sio::BroadcastTarget two = self;
  two.rooms.push_back("red");
  EXPECT_FALSE(switchboard::sio::ReachesNobody(two)) << "red's members other than sid1 get it";
  switchboard::sio::BroadcastTarget user = self;
  user.user_ids = {"alice"};
  EXPECT_FALSE(switchboard::sio::ReachesNobody(user));
  EXPECT_FALSE(switchboard::sio::ReachesNobody(switchboard::sio::BroadcastTarget{})) << "the whole namespace";
}
