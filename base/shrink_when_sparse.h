#pragma once

#include <cstddef>

namespace switchboard::base {

// Hash tables keep their capacity when entries go: after 10,000 clients
// leave, the tables keyed by socket (the edge's sessions and sockets, the
// journal's mirror, the broker's index) would keep slots for all of them, a
// few hundred KiB each. Called after an erase: rehashes to fit once the table
// is at most an eighth full (and has 1,024 slots or more), so a table shrinks
// once per large drop and never thrashes (growing again needs 7/8 of the new
// capacity). Invalidates the table's iterators when it shrinks: callers that
// erase while iterating must iterate over a copy.
template <typename Table>
void ShrinkWhenSparse(Table& table) {
  constexpr size_t kMinSlots = 1024;
  const size_t slots = table.bucket_count();
  if (slots >= kMinSlots && table.size() <= slots / 8) table.rehash(0);
}

}  // namespace switchboard::base
