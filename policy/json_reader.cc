#include "policy/json_reader.h"

#include <algorithm>
#include <cctype>
#include <cmath>

namespace switchboard::policy::read {
namespace {

std::string Join(std::initializer_list<std::string_view> items, std::string_view sep) {
  std::string out;
  for (std::string_view i : items) {
    if (!out.empty()) out.append(sep);
    out.append(i);
  }
  return out;
}

bool IsIdentifier(std::string_view key) {
  if (key.empty()) return false;
  for (char c : key) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

std::string Where(std::string_view path) {
  return path.empty() ? std::string("config") : std::string(path);
}

}  // namespace

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t pos = s.find(sep, start);
    if (pos == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

std::string Child(std::string_view path, std::string_view key) {
  if (IsIdentifier(key)) {
    return path.empty() ? std::string(key) : Cat(path, ".", key);
  }
  return Cat(path, "[", Json(std::string(key)).dump(), "]");
}

std::string Index(std::string_view path, size_t i) { return Cat(path, "[", i, "]"); }

absl::Status Error(std::string_view path, std::string_view message) {
  return absl::InvalidArgumentError(Cat(Where(path), ": ", message));
}

std::string TypeName(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::object: return "object";
    case Json::value_t::array: return "array";
    case Json::value_t::string: return "string";
    case Json::value_t::boolean: return "boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: return "integer";
    case Json::value_t::number_float: return "number";
    case Json::value_t::binary: return "binary";
    default: return "invalid";
  }
}

absl::Status TypeError(std::string_view path, std::string_view expected, const Json& got) {
  return Error(path, Cat("expected ", expected, ", got ", TypeName(got)));
}

// Rejects keys outside `allowed` ("comment" is always allowed, as a string).
absl::Status CheckKeys(const Json& obj, std::string_view path,
                       std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : obj.items()) {
    if (key == "comment") {
      if (!value.is_string()) return TypeError(Child(path, key), "a string", value);
      continue;
    }
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return Error(Child(path, key), Cat("unknown key (allowed: ", Join(allowed, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> GetString(const Json& v, std::string_view path, bool non_empty) {
  if (!v.is_string()) return TypeError(path, "a string", v);
  std::string s = v.get<std::string>();
  if (non_empty && s.empty()) return Error(path, "must not be empty");
  return s;
}

absl::StatusOr<bool> GetBool(const Json& v, std::string_view path) {
  if (!v.is_boolean()) return TypeError(path, "a boolean", v);
  return v.get<bool>();
}

// Integers; a float with an integral value (1e6) is accepted too.
absl::StatusOr<uint64_t> GetUint(const Json& v, std::string_view path, uint64_t min, uint64_t max) {
  uint64_t n = 0;
  if (v.is_number_unsigned()) {
    n = v.get<uint64_t>();
  } else if (v.is_number_integer()) {
    int64_t i = v.get<int64_t>();
    if (i < 0) return Error(path, Cat("must be between ", min, " and ", max, ", got ", i));
    n = static_cast<uint64_t>(i);
  } else if (v.is_number_float()) {
    double d = v.get<double>();
    if (!std::isfinite(d) || d != std::floor(d) || d < 0 || d > 1.8e19) {
      return Error(path, Cat("expected an integer, got ", v.dump()));
    }
    n = static_cast<uint64_t>(d);
  } else {
    return TypeError(path, "an integer", v);
  }
  if (n < min || n > max) {
    return Error(path, Cat("must be between ", min, " and ", max, ", got ", n));
  }
  return n;
}

absl::StatusOr<std::chrono::milliseconds> GetMs(const Json& v, std::string_view path) {
  auto n = GetUint(v, path, 1, 24ull * 3600 * 1000);
  if (!n.ok()) return n.status();
  return std::chrono::milliseconds(static_cast<int64_t>(*n));
}

// A number (rates may be fractional) in [min, max].
absl::StatusOr<double> GetNumber(const Json& v, std::string_view path, uint64_t min, uint64_t max) {
  if (!v.is_number()) return TypeError(path, "a number", v);
  double d = v.get<double>();
  if (!std::isfinite(d) || d < static_cast<double>(min) || d > static_cast<double>(max)) {
    return Error(path, Cat("must be between ", min, " and ", max, ", got ", v.dump()));
  }
  return d;
}

absl::StatusOr<std::vector<std::string>> GetStringList(const Json& v, std::string_view path) {
  if (!v.is_array()) return TypeError(path, "an array of strings", v);
  std::vector<std::string> out;
  for (size_t i = 0; i < v.size(); ++i) {
    SB_ASSIGN_OR_RETURN(std::string s, GetString(v[i], Index(path, i)));
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace switchboard::policy::read
