// Tables keyed by socket give their slots back once most sockets are gone
// (base/shrink_when_sparse.h), and only then.
#include "base/shrink_when_sparse.h"

#include <gtest/gtest.h>

#include <unordered_set>

#include "absl/container/flat_hash_set.h"

namespace switchboard::base {
namespace {

template <typename Table>
void EmptyOut() {
  Table table;
  for (int i = 0; i < 10'000; ++i) table.insert(i);
  const size_t full = table.bucket_count();
  ASSERT_GE(full, 10'000u);
  int next = 0;
  while (table.size() > 3'000) {
    table.erase(next++);
    ShrinkWhenSparse(table);
  }
  EXPECT_EQ(table.bucket_count(), full);  // 30 % full: kept
  while (table.size() > 100) {
    table.erase(next++);
    ShrinkWhenSparse(table);
  }
  EXPECT_LT(table.bucket_count(), 1024u);
  for (int i = next; i < 10'000; ++i) EXPECT_TRUE(table.contains(i)) << i;
  // Small tables are left alone.
  Table small;
  for (int i = 0; i < 500; ++i) small.insert(i);
  const size_t small_slots = small.bucket_count();
  for (int i = 0; i < 499; ++i) {
    small.erase(i);
    ShrinkWhenSparse(small);
  }
  EXPECT_EQ(small.bucket_count(), small_slots);
}

TEST(ShrinkWhenSparseTest, FlatHashSetGivesBackItsSlotsOnlyWhenMostlyEmpty) {
  EmptyOut<absl::flat_hash_set<int>>();
}

TEST(ShrinkWhenSparseTest, UnorderedSetGivesBackItsBucketsOnlyWhenMostlyEmpty) {
  EmptyOut<std::unordered_set<int>>();
}

}  // namespace
}  // namespace switchboard::base
