#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace switchboard::edge {

// Percent-decodes a URL component ('+' is a space).
std::string UrlDecode(std::string_view in);
// The query parameters of a request target ("/path?a=1&b=2"), decoded.
std::vector<std::pair<std::string, std::string>> ParseQuery(std::string_view target);

}  // namespace switchboard::edge
