#include "edge/socketio/event_args.h"

#include <cmath>
#include <cstdio>
#include <utility>

namespace switchboard::sio {

std::string NumericEventName(const Json& number) {
  // What JavaScript's String(n) gives for the usual numbers (the reference
  // server's listeners are keyed so): integral values without a fraction.
  if (number.is_number_float()) {
    const double value = number.get<double>();
    if (value == 0) return "0";
    if (std::isfinite(value) && std::trunc(value) == value && std::fabs(value) < 1e21) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.0f", value);
      return buf;
    }
  }
  return number.dump();
}

EventArgs::EventArgs(Json payload) : json_(std::move(payload)), parsed_(true) {
  // The decoder made sure it is [string or number, ...].
  const Json& name = json_[0];
  name_ = name.is_string() ? name.get<std::string>() : NumericEventName(name);
  json_.erase(json_.begin());
}

EventArgs::EventArgs(RawEvent raw) : raw_(std::move(raw)), parsed_(false) {}

std::string_view EventArgs::name() const {
  if (!raw_.text.empty()) {
    return std::string_view(raw_.text).substr(raw_.name_begin, raw_.name_end - raw_.name_begin);
  }
  return name_;
}

Json& EventArgs::json() {
  if (parsed_) return json_;
  parsed_ = true;
  const char* begin = raw_.text.data() + raw_.json_begin;
  const char* end = raw_.text.data() + raw_.text.size();
  // The decoder's scan vouched for the text, so this parse succeeds.
  json_ = Json::parse(begin, end, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (!json_.is_array() || json_.empty()) {
    json_ = Json::array();
  } else {
    json_.erase(json_.begin());
  }
  return json_;
}

std::string_view EventArgs::text() const {
  return std::string_view(raw_.text).substr(raw_.args_begin, raw_.args_end - raw_.args_begin);
}

std::string_view EventArgs::first_text() const {
  return std::string_view(raw_.text).substr(raw_.args_begin, raw_.first_end - raw_.args_begin);
}

}  // namespace switchboard::sio
