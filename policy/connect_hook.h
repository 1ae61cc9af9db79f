#pragma once

// The connect hook of a namespace (services/CONFIG.md, "connectHook"): a
// middleware that asks a backend's switchboard.v1.ConnectHook service
// (proto/switchboard/v1/hooks.proto) at every CONNECT whether to admit the
// socket. The call is asynchronous (the shard keeps serving); its answer is
// applied on the socket's shard:
//   allow  -> user id (when given), rooms joined as it connects, data kept on
//             the socket (sent with its forwarded events);
//   reject -> CONNECT_ERROR {message, data};
//   deadline passed, backend unreachable, error status, no verdict ->
//             the configured verdict (allow, or CONNECT_ERROR
//             {failureMessage, data: {code: "hook_unavailable"}}).
// Installed after authentication, so the hook sees the verified claims and
// user id.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "edge/socketio/namespace.h"
#include "policy/namespace_policy.h"

namespace switchboard::policy {

class ConnectHook : public std::enable_shared_from_this<ConnectHook> {
 public:
  // Makes the channel (connected lazily). `edge_id` goes into each request;
  // the `hidden_query` parameters (token parameters) and `Authorization`
  // never do.
  static absl::StatusOr<std::shared_ptr<ConnectHook>> Create(
      ConnectHookSpec spec, std::string edge_id, std::vector<std::string> hidden_query = {});
  ~ConnectHook();

  // Adds the middleware to `nsp` (after any authentication middleware).
  void Install(sio::Namespace& nsp);
  // Answers that arrive from now on are ignored (call before the runtime
  // goes away; the clients are gone by then).
  void Stop();

  uint64_t allowed() const { return allowed_.load(std::memory_order_relaxed); }
  uint64_t rejected() const { return rejected_.load(std::memory_order_relaxed); }
  // Calls that failed (time-out, unreachable, error, no verdict).
  uint64_t failures() const { return failures_.load(std::memory_order_relaxed); }

  struct Impl;

 private:
  explicit ConnectHook(std::unique_ptr<Impl> impl);
  void Call(sio::Namespace& nsp, const sio::SocketPtr& socket, sio::Next next);

  std::unique_ptr<Impl> impl_;
  std::mutex mu_;
  bool stopped_ = false;  // guarded by mu_
  std::atomic<uint64_t> allowed_{0};
  std::atomic<uint64_t> rejected_{0};
  std::atomic<uint64_t> failures_{0};
};

}  // namespace switchboard::policy
