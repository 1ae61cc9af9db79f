#pragma once

#include <cstddef>
#include <string_view>

namespace switchboard::edge {

// Whether `json` opens more than `max_depth` nested arrays/objects (outside
// strings). Run before parsing so hostile input like "[[[[..." is refused
// before anything recursive sees it; malformed JSON is left to the parser.
// Header-only: the codecs and the JWT verifier use it without linking the edge.
inline bool ExceedsJsonDepth(std::string_view json, size_t max_depth) {
  // Fewer characters than the limit cannot open more containers than it.
  if (json.size() <= max_depth) return false;
  size_t depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // Skip the escaped character (it may be a quote).
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > max_depth) return true;
        break;
      case ']':
      case '}':
        // Unbalanced input is left for the parser to reject.
        if (depth > 0) --depth;
        break;
      default:
        break;
    }
  }
  return false;
}

}  // namespace switchboard::edge
