// The I/O threads outlive a handler that throws (issue 14: nothing thrown
// past an event loop takes the process down).

#include "edge/runtime.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <stdexcept>

namespace switchboard::edge {
namespace {

TEST(RuntimeTest, AThrowingHandlerCostsItselfNotTheShard) {
  Runtime runtime(1);
  runtime.Start();
  const uint64_t before = Runtime::EscapedExceptions();
  runtime.Post(0, [] { throw std::runtime_error("a bug in a handler"); });
  std::promise<int> ran;
  runtime.Post(0, [&ran] { ran.set_value(Runtime::CurrentShard()); });
  auto next = ran.get_future();
  ASSERT_EQ(next.wait_for(std::chrono::seconds(5)), std::future_status::ready)
      << "the shard stopped after the exception";
  EXPECT_EQ(next.get(), 0);
  EXPECT_EQ(Runtime::EscapedExceptions(), before + 1);
  runtime.Stop();
  runtime.Join();
}

}  // namespace
}  // namespace switchboard::edge
