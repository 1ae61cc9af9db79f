#pragma once

// The gRPC server of the public API (proto/switchboard/v1/switchboard.proto):
// service switchboard.v1.Switchboard, adapted onto a broker::Broker, plus the
// standard grpc.health.v1.Health service and server reflection (when
// libgrpc++_reflection is available).
//
//   auto server = ApiServer::Start(broker, {.host = "127.0.0.1", .port = 0});
//   ... (*server)->port() ...
//   (*server)->Shutdown(std::chrono::seconds(5));
//
// Every rpc delegates to the Broker; an absl::Status error becomes the
// grpc::Status with the same code and message. Publish (which may wait for
// acks), PublishStream and WatchEvents use the gRPC callback API, so no server
// thread waits on the broker; the other rpcs are quick index reads or bus
// publishes and run on the sync server's threads.
//
// WatchEvents: the server sends the response headers as soon as the broker's
// watch is live, so a client that waits for the initial metadata knows that
// every later change reaches it. Each watcher has a bounded queue; a watcher
// that falls `max_watch_queue` events or `max_watch_queue_bytes` behind is
// ended with RESOURCE_EXHAUSTED "watcher too slow". Streams end with
// UNAVAILABLE at Shutdown. Every event a stream drops (its queue when it
// ends, events arriving after) is reported to Broker::WatchDropped: counted,
// and a queue group's client event awaiting an ack is answered at once with
// an error.
//
// Security (services/api_auth.h): `security` sets bearer tokens, TLS and
// mutual TLS. Start refuses (FailedPrecondition) an unauthenticated API on a
// non-loopback address. Every call but grpc.health.v1.Health must then carry
// a valid `authorization: Bearer <token>` (or come over a verified client
// certificate), else UNAUTHENTICATED "missing bearer token" / "invalid bearer
// token"; reflection included.
//
// Thread-safety: every public method may be called from any thread. The
// broker must outlive the server.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/support/server_interceptor.h>

#include "absl/status/statusor.h"
#include "broker/broker.h"
#include "services/api_auth.h"

namespace switchboard::services {

struct ApiServerOptions {
  // Address to listen on: an IPv4 or IPv6 literal, or a host name
  // ("localhost"). Nothing else is bound.
  std::string host = "127.0.0.1";
  // 0: a free port, see ApiServer::port().
  uint16_t port = 50051;
  // Largest request accepted, in bytes.
  int max_receive_message_bytes = 16 * 1024 * 1024;
  // Events, and their bytes (serialized), queued per WatchEvents stream
  // before it is ended as too slow. One event larger than the byte bound is
  // still taken when nothing else is queued.
  size_t max_watch_queue = 10'000;
  size_t max_watch_queue_bytes = 16u << 20;
  // Tokens, TLS, mutual TLS. Default: plaintext and open, loopback only.
  ApiSecurity security{};
  // Set: PublishStream reads a stream's next publish only once this says the
  // deliveries are no longer behind (asked again every millisecond), so a
  // publisher faster than the clients' sockets is held back by HTTP/2 flow
  // control instead of queueing without bound; a unary Publish made while
  // they are behind is answered RESOURCE_EXHAUSTED. Standalone: the edge's
  // queued deliveries. Unset (a broker alone: NATS takes what it publishes;
  // each edge bounds what it queues and counts what it drops): never.
  std::function<bool()> deliveries_behind{};
  // Makes the interceptors run on every call before the service. Empty: none.
  // (A function, so options stay copyable.) Not for authentication: a server
  // interceptor cannot reject a call; `security` does that.
  std::function<
      std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>()>
      make_interceptors{};
};

class ApiServer {
 public:
  // Binds and starts serving, health status SERVING. InvalidArgument on a
  // malformed host; FailedPrecondition when the API would be unauthenticated
  // on a non-loopback host (CheckApiExposure); Unavailable "cannot listen on
  // HOST:PORT" when the address cannot be bound (port in use, unknown host...).
  static absl::StatusOr<std::unique_ptr<ApiServer>> Start(broker::Broker& broker,
                                                          ApiServerOptions options);
  // Shutdown(0) if not done yet.
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // The bound port.
  uint16_t port() const;
  // "host:port" as bound ("[::1]:port" for IPv6).
  std::string address() const;

  // gRPC health status of "" and "switchboard.v1.Switchboard".
  void SetServing(bool serving);

  // Health NOT_SERVING, ends every WatchEvents stream with UNAVAILABLE, stops
  // accepting calls, lets in-flight calls finish for up to `grace`, then
  // cancels the rest. Returns once every call is done. Idempotent.
  void Shutdown(std::chrono::milliseconds grace);

  struct Impl;

 private:
  explicit ApiServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace switchboard::services
