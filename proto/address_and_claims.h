#pragma once

#include <string>
#include <string_view>

namespace switchboard::proto {

// A socket's remote address and its claims (JSON text, "" for none), the two
// SocketInfo fields kept for every socket by the edge's membership journal
// and the broker's index. One string "<address>\0<claims>" instead of two:
// it stays inline for an IPv4 address without claims.
class AddressAndClaims {
 public:
  AddressAndClaims() = default;
  AddressAndClaims(std::string_view address, std::string_view claims) {
    packed_.reserve(address.size() + 1 + claims.size());
    packed_.append(address).push_back('\0');
    packed_.append(claims);
  }

  std::string_view address() const { return Part().substr(0, Split()); }
  std::string_view claims() const {
    size_t split = Split();
    return split == std::string_view::npos ? std::string_view() : Part().substr(split + 1);
  }

 private:
  std::string_view Part() const { return packed_; }
  size_t Split() const { return Part().find('\0'); }

  std::string packed_;
};

}  // namespace switchboard::proto
