#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace switchboard::sio {

// Where the parts of an EVENT payload (the JSON array [name, args...]) are in
// its text; offsets into the scanned text.
struct EventSpans {
  size_t name_begin = 0;  // the event name's bytes, between its quotes
  size_t name_end = 0;
  size_t args_begin = 0;  // the arguments after the name, comma-separated,
  size_t args_end = 0;    // without the brackets ("" when there are none)
  size_t first_end = 0;   // end of the first argument (args_begin: none)
};

// One pass over `json` that finds the spans without building a document, so a
// payload can be passed on as text and parsed only when its values are needed.
// Conservative: answers only for text nlohmann's parser accepts as the same
// array: strict JSON, valid UTF-8, nesting at most `max_depth` deep, an event
// name without escapes that is not reserved. Anything else (\u surrogates,
// exponents, a BOM, malformed or hostile input...) gets nullopt, and the caller
// parses it fully, so errors stay exactly those of the parser.
std::optional<EventSpans> ScanEventPayload(std::string_view json, size_t max_depth);

// Event names a client may not emit; they have a special meaning on either
// side (same list as the reference parser).
bool IsReservedEventName(std::string_view name);

}  // namespace switchboard::sio
