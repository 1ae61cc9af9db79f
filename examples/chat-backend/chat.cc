#include "chat.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include <nlohmann/json.hpp>

namespace chat {
namespace {

namespace v1 = switchboard::v1;
// Ordered: fields go out in the order written, the seed's ({username, message, timestamp}).
using json = nlohmann::ordered_json;

int64_t SystemNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The first argument as JSON; null when absent, binary or not JSON.
json FirstArg(const v1::ClientEvent& event) {
  if (event.args_size() == 0 || !event.args(0).has_json()) return nullptr;
  json value = json::parse(event.args(0).json(), nullptr, /*allow_exceptions=*/false);
  return value.is_discarded() ? json(nullptr) : value;
}

// `arg` itself when a string, else its `field` when that is a string; "" otherwise.
std::string StringArg(const json& arg, const char* field) {
  if (arg.is_string()) return arg.get<std::string>();
  if (arg.is_object()) {
    auto it = arg.find(field);
    if (it != arg.end() && it->is_string()) return it->get<std::string>();
  }
  return "";
}

std::string Trim(const std::string& s) {
  const char* ws = " \t\r\n";
  size_t begin = s.find_first_not_of(ws);
  if (begin == std::string::npos) return "";
  size_t end = s.find_last_not_of(ws);
  return s.substr(begin, end - begin + 1);
}

// Answers the client's ack, when it asked for one.
void Answer(const v1::ClientEvent& event, const json& value, std::vector<Action>& out) {
  if (!event.wants_ack() || event.ack_ref().empty()) return;
  v1::AckRequest ack;
  ack.set_ack_ref(event.ack_ref());
  ack.add_args()->set_json(value.dump());
  out.emplace_back(std::move(ack));
}

void Fail(const v1::ClientEvent& event, const char* error, std::vector<Action>& out) {
  Answer(event, json{{"ok", false}, {"error", error}}, out);
}

}  // namespace

Chat::Chat(std::string nsp, std::function<int64_t()> now_ms)
    : nsp_(std::move(nsp)), now_ms_(now_ms ? std::move(now_ms) : SystemNowMs) {}

std::vector<Action> Chat::OnEvent(const v1::WatchEventsResponse& event) {
  std::vector<Action> out;
  switch (event.event_case()) {
    case v1::WatchEventsResponse::kClientEvent:
      if (event.client_event().namespace_() == nsp_) OnClientEvent(event.client_event(), out);
      break;
    case v1::WatchEventsResponse::kDisconnected:
      if (event.disconnected().namespace_() == nsp_) {
        RemoveUser(event.disconnected().socket_id(), out);
      }
      break;
    default:
      break;
  }
  return out;
}

std::vector<Action> Chat::Resync(const std::set<std::string>& live_socket_ids) {
  std::vector<std::string> gone;
  for (const User& user : users_) {
    if (!live_socket_ids.contains(user.socket_id)) gone.push_back(user.socket_id);
  }
  std::vector<Action> out;
  for (const std::string& id : gone) RemoveUser(id, out);
  return out;
}

std::vector<std::string> Chat::Usernames() const {
  std::vector<std::string> names;
  names.reserve(users_.size());
  for (const User& user : users_) names.push_back(user.username);
  return names;
}

void Chat::OnClientEvent(const v1::ClientEvent& event, std::vector<Action>& out) {
  const std::string& name = event.event();
  if (name == "user-join") {
    OnUserJoin(event, out);
  } else if (name == "chat-message") {
    OnChatMessage(event, out);
  } else if (name == "typing") {
    OnTyping(event, /*stop=*/false, out);
  } else if (name == "stop-typing") {
    OnTyping(event, /*stop=*/true, out);
  } else {
    Fail(event, "unknown event", out);
  }
}

void Chat::OnUserJoin(const v1::ClientEvent& event, std::vector<Action>& out) {
  if (Find(event.socket_id()) != nullptr) return Fail(event, "already joined", out);
  std::string username = Trim(StringArg(FirstArg(event), "username"));
  if (username.empty() || username.size() > kMaxUsernameBytes) {
    return Fail(event, "invalid username", out);
  }
  users_.push_back(User{event.socket_id(), username});
  // The notice before the list: a joiner that has the list has had every notice meant for it.
  out.emplace_back(
      Broadcast("notification", json(username + " joined the chat").dump(), event.socket_id()));
  out.emplace_back(UserList());
  Answer(event, json{{"ok", true}, {"username", username}, {"users", Usernames()}}, out);
}

void Chat::OnChatMessage(const v1::ClientEvent& event, std::vector<Action>& out) {
  User* user = Find(event.socket_id());
  if (user == nullptr) return Fail(event, "join first", out);
  std::string message = StringArg(FirstArg(event), "message");
  if (Trim(message).empty() || message.size() > kMaxMessageBytes) {
    return Fail(event, "invalid message", out);
  }
  out.emplace_back(Broadcast(
      "chat-message",
      json{{"username", user->username}, {"message", message}, {"timestamp", now_ms_()}}.dump()));
  Answer(event, json{{"ok", true}}, out);
}

void Chat::OnTyping(const v1::ClientEvent& event, bool stop, std::vector<Action>& out) {
  User* user = Find(event.socket_id());
  if (user == nullptr) return Fail(event, "join first", out);
  bool typing = !stop;
  if (!stop) {
    json arg = FirstArg(event);
    if (arg.is_boolean()) typing = arg.get<bool>();
    if (arg.is_object() && arg.contains("isTyping") && arg["isTyping"].is_boolean()) {
      typing = arg["isTyping"].get<bool>();
    }
  }
  user->typing = typing;
  out.emplace_back(Broadcast("typing", json{{"username", user->username}, {"isTyping", typing}}.dump(),
                             event.socket_id()));
  Answer(event, json{{"ok", true}}, out);
}

void Chat::RemoveUser(const std::string& socket_id, std::vector<Action>& out) {
  auto it = std::find_if(users_.begin(), users_.end(),
                         [&](const User& u) { return u.socket_id == socket_id; });
  if (it == users_.end()) return;
  User user = std::move(*it);
  users_.erase(it);
  if (user.typing) {
    out.emplace_back(Broadcast("typing", json{{"username", user.username}, {"isTyping", false}}.dump(),
                               socket_id));
  }
  out.emplace_back(
      Broadcast("notification", json(user.username + " left the chat").dump(), socket_id));
  out.emplace_back(UserList());
}

Chat::User* Chat::Find(const std::string& socket_id) {
  for (User& user : users_) {
    if (user.socket_id == socket_id) return &user;
  }
  return nullptr;
}

v1::PublishRequest Chat::Broadcast(const std::string& event, const std::string& json_arg,
                                   const std::string& except_socket) const {
  v1::PublishRequest request;
  request.mutable_target()->set_namespace_(nsp_);
  if (!except_socket.empty()) request.mutable_target()->add_except_socket_ids(except_socket);
  request.set_event(event);
  request.add_args()->set_json(json_arg);
  return request;
}

v1::PublishRequest Chat::UserList() const { return Broadcast("user-list", json(Usernames()).dump()); }

}  // namespace chat
