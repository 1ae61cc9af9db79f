#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <type_traits>
#include <utility>

#include "edge/socketio/packet.h"

namespace switchboard::sio {

class Socket;

// Answers a client's ack request; empty (false) when the client asked for
// none. Call at most once (later calls are ignored), on the socket's shard.
// Either the request of a socket (no allocation per event) or any callable
// taking the answer's Json arguments.
class Ack {
 public:
  Ack() = default;
  Ack(std::nullptr_t) {}  // NOLINT: as for std::function
  template <typename F, typename = std::enable_if_t<!std::is_same_v<std::decay_t<F>, Ack> &&
                                                    std::is_invocable_v<F&, Json>>>
  Ack(F fn) : fn_(std::move(fn)) {}  // NOLINT: as for std::function
  // The ack request `id` of the client behind `socket`.
  Ack(std::weak_ptr<Socket> socket, uint64_t id)
      : socket_(std::move(socket)), id_(id), to_client_(true) {}

  explicit operator bool() const { return to_client_ || static_cast<bool>(fn_); }

  // `args` is the answer's argument array; any other value is sent as the
  // single argument.
  void operator()(Json args) const;
  // The same with the arguments as JSON text, comma-separated without
  // brackets ("" for none): sent as they are, without a parse.
  void AnswerText(std::string_view args_list) const;

 private:
  std::weak_ptr<Socket> socket_;
  uint64_t id_ = 0;
  bool to_client_ = false;
  mutable bool sent_ = false;
  std::function<void(Json)> fn_;
};

}  // namespace switchboard::sio
