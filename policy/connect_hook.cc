#include "policy/connect_hook.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <utility>

#include "cluster/forwarder.h"
#include "edge/runtime.h"
#include "edge/socketio/server.h"
#include "switchboard/v1/hooks.grpc.pb.h"

namespace switchboard::policy {

namespace pb = ::switchboard::v1;

struct ConnectHook::Impl {
  ConnectHookSpec spec;
  std::string edge_id;
  std::vector<std::string> hidden_query;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::ConnectHook::Stub> stub;
};

namespace {

// One call in flight: what gRPC writes into must live until its callback.
struct HookCall {
  grpc::ClientContext context;
  pb::ConnectRequest request;
  pb::ConnectResponse response;
};

// JSON text from the backend, or null when empty or not JSON.
sio::Json ParseJson(const std::string& text) {
  if (text.empty()) return nullptr;
  sio::Json value = sio::Json::parse(text, nullptr, /*allow_exceptions=*/false);
  return value.is_discarded() ? sio::Json(nullptr) : value;
}

}  // namespace

absl::StatusOr<std::shared_ptr<ConnectHook>> ConnectHook::Create(
    ConnectHookSpec spec, std::string edge_id, std::vector<std::string> hidden_query) {
  auto impl = std::make_unique<Impl>();
  impl->channel = grpc::CreateChannel(spec.address, grpc::InsecureChannelCredentials());
  if (impl->channel == nullptr) {
    return absl::InvalidArgumentError("cannot make a channel to " + spec.address);
  }
  impl->stub = pb::ConnectHook::NewStub(impl->channel);
  impl->spec = std::move(spec);
  impl->edge_id = std::move(edge_id);
  impl->hidden_query = std::move(hidden_query);
  return std::shared_ptr<ConnectHook>(new ConnectHook(std::move(impl)));
}

ConnectHook::ConnectHook(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ConnectHook::~ConnectHook() = default;

void ConnectHook::Stop() {
  std::lock_guard lock(mu_);
  stopped_ = true;
}

void ConnectHook::Install(sio::Namespace& nsp) {
  nsp.Use([self = shared_from_this(), &nsp](const sio::SocketPtr& socket, sio::Next next) {
    self->Call(nsp, socket, std::move(next));
  });
}

void ConnectHook::Call(sio::Namespace& nsp, const sio::SocketPtr& socket, sio::Next next) {
  auto call = std::make_shared<HookCall>();
  pb::ConnectRequest& request = call->request;
  request.set_namespace_(nsp.name());
  request.set_socket_id(socket->id());
  request.set_edge_id(impl_->edge_id);
  cluster::FillHandshake(*socket, impl_->spec.headers, impl_->hidden_query,
                         request.mutable_handshake());
  request.set_auth(socket->auth().is_null()
                       ? std::string("{}")
                       : socket->auth().dump(-1, ' ', false, sio::Json::error_handler_t::replace));
  request.set_user_id(socket->user_id());
  call->context.set_deadline(std::chrono::system_clock::now() + impl_->spec.timeout);

  int current = edge::Runtime::CurrentShard();
  size_t shard = current < 0 ? 0 : static_cast<size_t>(current);
  edge::Runtime& runtime = nsp.server().runtime();
  std::weak_ptr<sio::Socket> weak_socket = socket;
  impl_->stub->async()->OnConnect(
      &call->context, &call->request, &call->response,
      [self = shared_from_this(), call, shard, &runtime, weak_socket,
       next = std::move(next)](grpc::Status status) mutable {
        std::lock_guard lock(self->mu_);
        if (self->stopped_) return;
        runtime.Post(
            shard, [self, call, status = std::move(status), weak_socket, next = std::move(next)] {
              auto socket = weak_socket.lock();
              if (socket == nullptr) return;  // the connection closed meanwhile
              const ConnectHookSpec& spec = self->impl_->spec;
              const pb::ConnectResponse& response = call->response;
              if (!status.ok() || response.verdict_case() == pb::ConnectResponse::VERDICT_NOT_SET) {
                self->failures_.fetch_add(1, std::memory_order_relaxed);
                spdlog::warn("connect hook {} for {}: {}", spec.address, socket->id(),
                             status.ok() ? std::string("no verdict") : status.error_message());
                if (spec.allow_on_failure) return next(std::nullopt);
                return next(sio::ConnectError{spec.failure_message,
                                              sio::Json{{"code", "hook_unavailable"}}});
              }
              if (response.has_reject()) {
                self->rejected_.fetch_add(1, std::memory_order_relaxed);
                const pb::ConnectReject& reject = response.reject();
                return next(sio::ConnectError{
                    reject.message().empty() ? std::string("Connection refused") : reject.message(),
                    ParseJson(reject.data())});
              }
              self->allowed_.fetch_add(1, std::memory_order_relaxed);
              const pb::ConnectAllow& allow = response.allow();
              if (!allow.user_id().empty()) socket->SetUserId(allow.user_id());
              for (const std::string& room : allow.rooms()) {
                if (!room.empty() && room != socket->id()) socket->JoinOnConnect(room);
              }
              if (!allow.data().empty()) socket->data() = ParseJson(allow.data());
              next(std::nullopt);
            });
      });
}

}  // namespace switchboard::policy
