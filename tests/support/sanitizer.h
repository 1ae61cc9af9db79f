// Whether this test binary runs under AddressSanitizer: its allocator keeps
// freed memory in quarantine and has its own shadow, so resident-memory
// figures mean nothing there.
#pragma once

namespace switchboard::testing_support {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kAddressSanitizer = true;
#else
inline constexpr bool kAddressSanitizer = false;
#endif
#else
inline constexpr bool kAddressSanitizer = false;
#endif

}  // namespace switchboard::testing_support
