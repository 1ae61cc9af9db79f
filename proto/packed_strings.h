#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <utility>

namespace switchboard::proto {

// N strings in one heap block behind one pointer: what the edge's membership
// journal and the broker's index keep for every socket (its id, user id,
// remote address, claims). Eight bytes in the owner and one allocation,
// instead of a 32-byte std::string and a heap copy per long field.
//
// The block holds the N end offsets (uint32) followed by the characters, so a
// part may hold any byte (NUL included). Default-constructed: N empty parts.
// The static Size/Write/Get lay out the same block in memory the caller owns
// (e.g. right after an object, in the object's own allocation).
template <size_t N>
class PackedStrings {
  static_assert(N > 0);

 public:
  using Parts = std::array<std::string_view, N>;

  // Bytes the block for `parts` takes.
  static size_t Size(const Parts& parts) {
    size_t total = kHeader;
    for (std::string_view part : parts) total += part.size();
    return total;
  }
  // Writes the block for `parts` at `block` (Size(parts) bytes, any alignment).
  static void Write(char* block, const Parts& parts) {
    uint32_t end = 0;
    char* chars = block + kHeader;
    for (size_t i = 0; i < N; ++i) {
      if (!parts[i].empty()) std::memcpy(chars + end, parts[i].data(), parts[i].size());
      end += static_cast<uint32_t>(parts[i].size());
      std::memcpy(block + i * sizeof(uint32_t), &end, sizeof(end));
    }
  }
  // Part `i` (< N) of the block at `block`.
  static std::string_view Get(const char* block, size_t i) {
    uint32_t begin = i == 0 ? 0 : End(block, i - 1);
    return std::string_view(block + kHeader + begin, End(block, i) - begin);
  }

  PackedStrings() = default;
  explicit PackedStrings(const Parts& parts) : data_(new char[Size(parts)]) { Write(data_, parts); }
  PackedStrings(PackedStrings&& other) noexcept : data_(std::exchange(other.data_, nullptr)) {}
  PackedStrings& operator=(PackedStrings&& other) noexcept {
    if (this != &other) {
      delete[] data_;
      data_ = std::exchange(other.data_, nullptr);
    }
    return *this;
  }
  PackedStrings(const PackedStrings&) = delete;
  PackedStrings& operator=(const PackedStrings&) = delete;
  ~PackedStrings() { delete[] data_; }

  // Part `i` (< N); valid while this object lives unchanged.
  std::string_view get(size_t i) const {
    return data_ == nullptr ? std::string_view() : Get(data_, i);
  }

 private:
  static constexpr size_t kHeader = N * sizeof(uint32_t);

  static uint32_t End(const char* block, size_t i) {
    uint32_t end;
    std::memcpy(&end, block + i * sizeof(uint32_t), sizeof(end));
    return end;
  }

  char* data_ = nullptr;
};

}  // namespace switchboard::proto
