// The one bounded wait of the tests: polls a condition until it holds.
#pragma once

#include <chrono>
#include <thread>

namespace switchboard::testing_support {

// How long a test waits for something that should happen soon.
inline constexpr std::chrono::milliseconds kEventuallyTimeout{5000};

// Polls `condition` every 5 ms until it holds or `timeout` passes; true if it
// held. The last poll comes after the deadline, so a condition that holds by
// then counts.
template <typename F>
bool Eventually(F condition, std::chrono::milliseconds timeout = kEventuallyTimeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return condition();
}

}  // namespace switchboard::testing_support
