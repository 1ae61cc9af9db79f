// Minimal WebSocket framing (RFC 6455) and small socket helpers shared by the
// load generator and the floor server. Only what the benchmark needs:
// single-frame text messages, close, ping/pong.
#pragma once

#include <fcntl.h>
#include <sys/resource.h>
#include <time.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace bench {

inline int64_t NowRealtimeUs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

inline int64_t NowMonoMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

inline void SetNonBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK); }

// Raise the soft descriptor limit to the hard one (the bench runs many sockets
// per process).
inline void RaiseFileLimit() {
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

enum Opcode : uint8_t { kCont = 0, kText = 1, kBinary = 2, kClose = 8, kPing = 9, kPong = 10 };

// Appends one FIN frame. `mask` != 0 masks it (clients must mask, servers must
// not).
inline void AppendFrame(std::string& out, Opcode op, std::string_view payload, uint32_t mask) {
  const size_t n = payload.size();
  out.push_back(static_cast<char>(0x80 | op));
  const uint8_t m = mask ? 0x80 : 0;
  if (n < 126) {
    out.push_back(static_cast<char>(m | n));
  } else if (n < 65536) {
    out.push_back(static_cast<char>(m | 126));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n & 0xff));
  } else {
    out.push_back(static_cast<char>(m | 127));
    for (int i = 7; i >= 0; --i)
      out.push_back(static_cast<char>((static_cast<uint64_t>(n) >> (8 * i)) & 0xff));
  }
  if (!mask) {
    out.append(payload);
    return;
  }
  char key[4];
  std::memcpy(key, &mask, 4);
  out.append(key, 4);
  const size_t start = out.size();
  out.append(payload);
  for (size_t i = 0; i < n; ++i) out[start + i] ^= key[i & 3];
}

struct Frame {
  Opcode op;
  std::string_view payload;  // unmasked in place
  size_t size;               // bytes consumed
};

// Parses one frame at the start of `buf` (unmasking it in place). Returns false
// when incomplete.
inline bool ParseFrame(std::string& buf, size_t off, Frame& f) {
  const size_t avail = buf.size() - off;
  if (avail < 2) return false;
  const auto* p = reinterpret_cast<unsigned char*>(buf.data() + off);
  const bool masked = p[1] & 0x80;
  uint64_t n = p[1] & 0x7f;
  size_t h = 2;
  if (n == 126) {
    if (avail < 4) return false;
    n = (uint64_t{p[2]} << 8) | p[3];
    h = 4;
  } else if (n == 127) {
    if (avail < 10) return false;
    n = 0;
    for (int i = 0; i < 8; ++i) n = (n << 8) | p[2 + i];
    h = 10;
  }
  if (masked) h += 4;
  if (avail < h + n) return false;
  char* data = buf.data() + off + h;
  if (masked) {
    const char* key = buf.data() + off + h - 4;
    for (uint64_t i = 0; i < n; ++i) data[i] ^= key[i & 3];
  }
  f.op = static_cast<Opcode>(p[0] & 0x0f);
  f.payload = std::string_view(data, n);
  f.size = h + n;
  return true;
}

// The number after `"t":` in a JSON text (the send time stamped in every
// benchmark payload), or -1.
inline int64_t FindStamp(std::string_view s) {
  const size_t k = s.find("\"t\":");
  if (k == std::string_view::npos) return -1;
  int64_t v = 0;
  size_t i = k + 4;
  if (i >= s.size() || s[i] < '0' || s[i] > '9') return -1;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) v = v * 10 + (s[i] - '0');
  return v;
}

}  // namespace bench
