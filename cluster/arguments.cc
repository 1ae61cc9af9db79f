#include "cluster/arguments.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace switchboard::cluster {

absl::StatusOr<sio::Json> ArgumentsToJson(const Arguments& args) {
  sio::Json array = sio::Json::array();
  for (int i = 0; i < args.size(); ++i) {
    const v1::Argument& arg = args.Get(i);
    switch (arg.value_case()) {
      case v1::Argument::kJson: {
        sio::Json value = sio::Json::parse(arg.json(), nullptr, /*allow_exceptions=*/false);
        if (value.is_discarded()) {
          return absl::InvalidArgumentError(absl::StrCat("argument ", i, " is not valid JSON"));
        }
        array.push_back(std::move(value));
        break;
      }
      case v1::Argument::kBinary: {
        const std::string& bytes = arg.binary();
        array.push_back(sio::Json::binary(std::vector<uint8_t>(bytes.begin(), bytes.end())));
        break;
      }
      default: return absl::InvalidArgumentError(absl::StrCat("argument ", i, " has no value"));
    }
  }
  return array;
}

void JsonToArguments(const sio::Json& array, Arguments* out) {
  if (!array.is_array()) {
    out->Add()->set_json(array.dump(-1, ' ', false, sio::Json::error_handler_t::replace));
    return;
  }
  for (const sio::Json& value : array) {
    v1::Argument* arg = out->Add();
    if (value.is_binary()) {
      const auto& bytes = value.get_binary();
      arg->set_binary(std::string(bytes.begin(), bytes.end()));
    } else {
      arg->set_json(value.dump(-1, ' ', false, sio::Json::error_handler_t::replace));
    }
  }
}

}  // namespace switchboard::cluster
