#include "bus/subject.h"

#include <array>
#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"

namespace switchboard::bus {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::string_view kEmptyToken = "_";

std::vector<std::string_view> Split(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    if (dot == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, dot - start));
    start = dot + 1;
  }
}

int DecodeChar(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

}  // namespace

bool ValidSubject(std::string_view subject, bool allow_wildcards) {
  if (subject.empty()) return false;
  for (unsigned char c : subject) {
    if (c <= ' ' || c == 0x7f) return false;
  }
  std::vector<std::string_view> tokens = Split(subject);
  for (size_t i = 0; i < tokens.size(); ++i) {
    std::string_view t = tokens[i];
    if (t.empty()) return false;
    if (t == "*" && !allow_wildcards) return false;
    if (t == ">" && (!allow_wildcards || i + 1 != tokens.size())) return false;
  }
  return true;
}

absl::Status CheckSubject(std::string_view subject) {
  if (ValidSubject(subject)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("invalid subject: ", std::string(subject)));
}

bool SubjectMatches(std::string_view pattern, std::string_view subject) {
  std::vector<std::string_view> p = Split(pattern);
  std::vector<std::string_view> s = Split(subject);
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == ">") return i + 1 == p.size() && s.size() > i;
    if (i >= s.size()) return false;
    if (p[i] != "*" && p[i] != s[i]) return false;
  }
  return p.size() == s.size();
}

std::string EncodeToken(std::string_view in) {
  if (in.empty()) return std::string(kEmptyToken);
  std::string out;
  out.reserve((in.size() * 4 + 2) / 3);
  size_t i = 0;
  auto byte = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(in[k])); };
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (in.size() - i == 1) {
    uint32_t v = byte(i) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
  } else if (in.size() - i == 2) {
    uint32_t v = byte(i) << 16 | byte(i + 1) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
  }
  return out;
}

absl::StatusOr<std::string> DecodeToken(std::string_view token) {
  if (token == kEmptyToken) return std::string();
  if (token.empty() || token.size() % 4 == 1) {
    return absl::InvalidArgumentError("not an encoded token");
  }
  std::string out;
  out.reserve(token.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : token) {
    int v = DecodeChar(c);
    if (v < 0) return absl::InvalidArgumentError("not an encoded token");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  // Canonical form only: the leftover bits must be zero, so that every
  // string has exactly one token.
  if ((acc & ((1u << bits) - 1)) != 0) {
    return absl::InvalidArgumentError("not an encoded token");
  }
  return out;
}

}  // namespace switchboard::bus
