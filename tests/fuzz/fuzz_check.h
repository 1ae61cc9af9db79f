#pragma once

// FUZZ_CHECK(cond, what): an invariant of a fuzz target. Unlike assert() it
// stays on in every build type; a failure prints and aborts, which libFuzzer
// and the replay driver both report as a crash of the current input.
#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond, what)                                                   \
  do {                                                                           \
    if (!(cond)) {                                                               \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed: %s\n", __FILE__,       \
                   __LINE__, #cond, what);                                       \
      std::abort();                                                              \
    }                                                                            \
  } while (0)
