#pragma once

#include <string>
#include <string_view>

#include "edge/socketio/packet.h"

namespace switchboard::sio {

// The event name a numeric one stands for, as the reference server's
// listeners see it (`socket.emit(1)` reaches `socket.on("1")`): "1", "1.5".
std::string NumericEventName(const Json& number);

// The arguments of one client event (its name removed). An event the decoder
// left as text (RawEvent) is parsed only when json() is first called, so a
// handler that passes the arguments on unchanged copies bytes instead of
// parsing and re-encoding them.
class EventArgs {
 public:
  // From a parsed EVENT payload [name, args...] (e.g. with attachments).
  explicit EventArgs(Json payload);
  // From a payload the decoder checked but did not parse.
  explicit EventArgs(RawEvent raw);

  std::string_view name() const;

  // The arguments as a JSON array (parsed on first use); handlers may modify
  // them.
  Json& json();

  // True until json() is called: the arguments are still the received text.
  bool has_text() const { return !parsed_; }
  // Only while has_text(): the arguments as JSON text, comma-separated
  // without brackets ("" when there are none), and the first one alone.
  std::string_view text() const;
  std::string_view first_text() const;

 private:
  RawEvent raw_;
  std::string name_;  // when built from a parsed payload
  Json json_;
  bool parsed_;
};

}  // namespace switchboard::sio
