#pragma once

// Checked reads of a JSON configuration value: every error is InvalidArgument
// and names the key path where it happened, e.g.
//   namespaces["/chat"].rules[1].target.room: expected a string, got integer
// Shared by the rule language (policy/rule.h, policy/template.h) and the
// file's parser (services/config.h).

#include <absl/status/status.h>
#include <absl/status/statusor.h>
#include <absl/strings/string_view.h>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace switchboard::policy {

using Json = nlohmann::ordered_json;

namespace read {

// Debian's abseil has its own absl::string_view, so absl::StrCat does not take
// std::string_view: a small local one instead.
inline void Append(std::string& out, std::string_view s) { out.append(s); }
inline void Append(std::string& out, const char* s) { out.append(s); }
inline void Append(std::string& out, const std::string& s) { out.append(s); }
inline void Append(std::string& out, absl::string_view s) { out.append(s.data(), s.size()); }
template <typename T>
requires std::is_integral_v<T>
inline void Append(std::string& out, T n) { out.append(std::to_string(n)); }
template <typename... A>
std::string Cat(const A&... a) {
  std::string out;
  (Append(out, a), ...);
  return out;
}

std::vector<std::string_view> Split(std::string_view s, char sep);

// Key paths: Child("a", "b") = "a.b", Child("a", "/x") = "a[\"/x\"]", Index("a", 2) = "a[2]".
std::string Child(std::string_view path, std::string_view key);
std::string Index(std::string_view path, size_t i);

// InvalidArgument "<path>: <message>" ("config" for the root).
absl::Status Error(std::string_view path, std::string_view message);
std::string TypeName(const Json& v);
absl::Status TypeError(std::string_view path, std::string_view expected, const Json& got);

// Rejects keys outside `allowed` ("comment" is always allowed, as a string).
absl::Status CheckKeys(const Json& obj, std::string_view path,
                       std::initializer_list<std::string_view> allowed);

absl::StatusOr<std::string> GetString(const Json& v, std::string_view path, bool non_empty = true);
absl::StatusOr<bool> GetBool(const Json& v, std::string_view path);
// Integers; a float with an integral value (1e6) is accepted too.
absl::StatusOr<uint64_t> GetUint(const Json& v, std::string_view path, uint64_t min, uint64_t max);
// A number (rates may be fractional) in [min, max].
absl::StatusOr<double> GetNumber(const Json& v, std::string_view path, uint64_t min, uint64_t max);
// Milliseconds, 1 ms to a day.
absl::StatusOr<std::chrono::milliseconds> GetMs(const Json& v, std::string_view path);
absl::StatusOr<std::vector<std::string>> GetStringList(const Json& v, std::string_view path);

}  // namespace read
}  // namespace switchboard::policy

// Status plumbing for the readers' callers.
#define SB_ASSIGN_OR_RETURN(lhs, expr)                                                \
  auto SB_CONCAT(_sb_r_, __LINE__) = (expr);                                          \
  if (!SB_CONCAT(_sb_r_, __LINE__).ok()) return SB_CONCAT(_sb_r_, __LINE__).status(); \
  lhs = std::move(*SB_CONCAT(_sb_r_, __LINE__))
#define SB_CONCAT_INNER(a, b) a##b
#define SB_CONCAT(a, b) SB_CONCAT_INNER(a, b)
#define SB_RETURN_IF_ERROR(expr)   \
  do {                             \
    absl::Status _sb_s = (expr);   \
    if (!_sb_s.ok()) return _sb_s; \
  } while (0)
