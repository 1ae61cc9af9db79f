#include "edge/socketio/event_scan.h"

#include <array>

namespace switchboard::sio {
namespace {

// Integer digits below this many cannot overflow a double, so such a number
// never hits the parser's "number overflow" error.
constexpr size_t kMaxIntegerDigits = 300;

// Bytes a string holds as they are: printable ASCII but '"' and '\\'.
constexpr std::array<bool, 256> kPlain = [] {
  std::array<bool, 256> plain{};
  for (int c = 0x20; c < 0x80; ++c) plain[static_cast<size_t>(c)] = c != '"' && c != '\\';
  return plain;
}();

class Scanner {
 public:
  Scanner(std::string_view text, size_t max_depth) : s_(text), max_depth_(max_depth) {}

  bool AtEnd() const { return i_ == s_.size(); }
  size_t pos() const { return i_; }

  void SkipSpace() {
    while (i_ < s_.size()) {
      const char c = s_[i_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return;
      ++i_;
    }
  }

  bool Consume(char c) {
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }

  // A string starting at the opening quote. `escaped` tells whether it held
  // an escape sequence.
  bool String(bool* escaped) {
    if (!Consume('"')) return false;
    *escaped = false;
    while (i_ < s_.size()) {
      // Most of a string is plain ASCII: one table look-up per byte.
      while (i_ < s_.size() && kPlain[static_cast<unsigned char>(s_[i_])]) ++i_;
      if (i_ == s_.size()) break;
      const auto c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        ++i_;
        return true;
      }
      if (c == '\\') {
        *escaped = true;
        if (!Escape()) return false;
      } else if (c < 0x20) {
        return false;
      } else if (c < 0x80) {
        ++i_;
      } else if (!Utf8()) {
        return false;
      }
    }
    return false;
  }

  bool Value(size_t depth) {
    if (i_ >= s_.size()) return false;
    switch (s_[i_]) {
      case '"': {
        bool escaped;
        return String(&escaped);
      }
      case '[': return Array(depth + 1);
      case '{': return Object(depth + 1);
      case 't': return Literal("true");
      case 'f': return Literal("false");
      case 'n': return Literal("null");
      default: return Number();
    }
  }

 private:
  bool Array(size_t depth) {
    if (depth > max_depth_) return false;
    ++i_;  // '['
    SkipSpace();
    if (Consume(']')) return true;
    for (;;) {
      SkipSpace();
      if (!Value(depth)) return false;
      SkipSpace();
      if (Consume(']')) return true;
      if (!Consume(',')) return false;
    }
  }

  bool Object(size_t depth) {
    if (depth > max_depth_) return false;
    ++i_;  // '{'
    SkipSpace();
    if (Consume('}')) return true;
    for (;;) {
      SkipSpace();
      bool escaped;
      if (!String(&escaped)) return false;
      SkipSpace();
      if (!Consume(':')) return false;
      SkipSpace();
      if (!Value(depth)) return false;
      SkipSpace();
      if (Consume('}')) return true;
      if (!Consume(',')) return false;
    }
  }

  bool Literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }

  static bool IsDigit(char c) { return c >= '0' && c <= '9'; }
  static bool IsHex(char c) {
    return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  }

  // No exponent: "1e400" overflows to a parse error, which only the parser
  // judges.
  bool Number() {
    Consume('-');
    const size_t start = i_;
    if (Consume('0')) {
      // A leading zero stands alone.
    } else {
      while (i_ < s_.size() && IsDigit(s_[i_])) ++i_;
      if (i_ == start || i_ - start >= kMaxIntegerDigits) return false;
    }
    if (Consume('.')) {
      const size_t frac = i_;
      while (i_ < s_.size() && IsDigit(s_[i_])) ++i_;
      if (i_ == frac) return false;
    }
    return i_ == s_.size() || (s_[i_] != 'e' && s_[i_] != 'E');
  }

  // At the backslash. \u escapes are taken when they name no surrogate
  // (pairs and lone halves are left to the parser).
  bool Escape() {
    if (i_ + 1 >= s_.size()) return false;
    const char c = s_[i_ + 1];
    switch (c) {
      case '"':
      case '\\':
      case '/':
      case 'b':
      case 'f':
      case 'n':
      case 'r':
      case 't': i_ += 2; return true;
      case 'u': {
        if (i_ + 6 > s_.size()) return false;
        for (size_t k = i_ + 2; k < i_ + 6; ++k) {
          if (!IsHex(s_[k])) return false;
        }
        const char first = s_[i_ + 2];
        const char second = s_[i_ + 3];
        if ((first == 'd' || first == 'D') &&
            (second == '8' || second == '9' || (second >= 'a' && second <= 'f') ||
             (second >= 'A' && second <= 'F'))) {
          return false;
        }
        i_ += 6;
        return true;
      }
      default: return false;
    }
  }

  // One multi-byte UTF-8 sequence, well-formed per RFC 3629 (no overlongs,
  // no surrogates, nothing above U+10FFFF).
  bool Utf8() {
    const auto b = [&](size_t k) { return static_cast<unsigned char>(s_[k]); };
    const auto in = [](unsigned char c, unsigned char lo, unsigned char hi) {
      return c >= lo && c <= hi;
    };
    const unsigned char c = b(i_);
    size_t n = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (in(c, 0xC2, 0xDF)) {
      n = 1;
    } else if (c == 0xE0) {
      n = 2;
      lo = 0xA0;
    } else if (in(c, 0xE1, 0xEC) || in(c, 0xEE, 0xEF)) {
      n = 2;
    } else if (c == 0xED) {
      n = 2;
      hi = 0x9F;
    } else if (c == 0xF0) {
      n = 3;
      lo = 0x90;
    } else if (in(c, 0xF1, 0xF3)) {
      n = 3;
    } else if (c == 0xF4) {
      n = 3;
      hi = 0x8F;
    } else {
      return false;
    }
    if (i_ + n >= s_.size()) return false;  // the closing quote must follow
    if (!in(b(i_ + 1), lo, hi)) return false;
    for (size_t k = 2; k <= n; ++k) {
      if (!in(b(i_ + k), 0x80, 0xBF)) return false;
    }
    i_ += n + 1;
    return true;
  }

  std::string_view s_;
  size_t max_depth_;
  size_t i_ = 0;
};

constexpr std::array<std::string_view, 6> kReservedEvents = {
    "connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener",
};

}  // namespace

bool IsReservedEventName(std::string_view name) {
  for (std::string_view reserved : kReservedEvents) {
    if (name == reserved) return true;
  }
  return false;
}

std::optional<EventSpans> ScanEventPayload(std::string_view json, size_t max_depth) {
  if (max_depth < 1) return std::nullopt;
  Scanner scan(json, max_depth);
  EventSpans spans;
  scan.SkipSpace();
  if (!scan.Consume('[')) return std::nullopt;
  scan.SkipSpace();
  spans.name_begin = scan.pos() + 1;
  bool escaped = false;
  if (!scan.String(&escaped) || escaped) return std::nullopt;
  spans.name_end = scan.pos() - 1;
  const std::string_view name = json.substr(spans.name_begin, spans.name_end - spans.name_begin);
  if (IsReservedEventName(name)) return std::nullopt;
  scan.SkipSpace();
  if (scan.Consume(']')) {
    spans.args_begin = spans.args_end = spans.first_end = scan.pos() - 1;
  } else {
    if (!scan.Consume(',')) return std::nullopt;
    scan.SkipSpace();
    spans.args_begin = scan.pos();
    spans.first_end = 0;
    for (;;) {
      scan.SkipSpace();
      if (!scan.Value(1)) return std::nullopt;
      if (spans.first_end == 0) spans.first_end = scan.pos();
      spans.args_end = scan.pos();
      scan.SkipSpace();
      if (scan.Consume(']')) break;
      if (!scan.Consume(',')) return std::nullopt;
    }
  }
  scan.SkipSpace();
  if (!scan.AtEnd()) return std::nullopt;
  return spans;
}

}  // namespace switchboard::sio
