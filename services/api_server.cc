#include "services/api_server.h"

#include <arpa/inet.h>
#include <grpc/grpc.h>
#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <string_view>
#include <utility>
#include <vector>
#ifdef SB_HAVE_GRPC_REFLECTION
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#endif

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "switchboard/v1/switchboard.grpc.pb.h"

namespace switchboard::services {
namespace {

namespace pb = ::switchboard::v1;

constexpr char kServiceName[] = "switchboard.v1.Switchboard";

// absl and gRPC share the canonical status codes 0..16.
grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  int code = static_cast<int>(status.code());
  if (code < 0 || code > static_cast<int>(grpc::StatusCode::UNAUTHENTICATED)) {
    code = static_cast<int>(grpc::StatusCode::UNKNOWN);
  }
  return grpc::Status(static_cast<grpc::StatusCode>(code), std::string(status.message()));
}

bool ValidHostName(std::string_view host) {
  if (host.size() > 253) return false;
  size_t start = 0;
  while (start <= host.size()) {
    size_t dot = host.find('.', start);
    if (dot == std::string_view::npos) dot = host.size();
    std::string_view label = host.substr(start, dot - start);
    if (label.empty() || label.size() > 63) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
    }
    start = dot + 1;
  }
  return true;
}

// Checks `host` and returns it as gRPC wants it in "host:port" (IPv6 literals
// in brackets).
absl::StatusOr<std::string> ListenHost(const std::string& host) {
  if (host.empty()) return absl::InvalidArgumentError("empty listen host");
  std::string h(host);
  if (h.find(':') != std::string::npos || h.front() == '[') {
    if (h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
    in6_addr addr6;
    if (inet_pton(AF_INET6, h.c_str(), &addr6) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad listen host \"", host, "\": not an IPv6 address"));
    }
    return absl::StrCat("[", h, "]");
  }
  bool dotted_digits = std::all_of(h.begin(), h.end(), [](char c) {
    return c == '.' || std::isdigit(static_cast<unsigned char>(c));
  });
  if (dotted_digits) {
    in_addr addr4;
    if (inet_pton(AF_INET, h.c_str(), &addr4) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad listen host \"", host, "\": not an IPv4 address"));
    }
    return h;
  }
  if (!ValidHostName(h)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad listen host \"", host, "\": not an IP address or host name"));
  }
  return h;
}

template <typename T>
grpc::Status Reply(absl::StatusOr<T> result, T* response) {
  if (!result.ok()) return ToGrpc(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

// ---- Publish --------------------------------------------------------------

// Finishes once, with the broker's answer or the client's cancellation,
// whichever comes first. The broker's callback may run after the call is
// gone: it only holds the shared Outcome, which no longer touches the reactor
// once the call is finished (OnDone, which deletes the reactor, only comes
// after Finish).
class PublishReactor final : public grpc::ServerUnaryReactor {
 public:
  explicit PublishReactor(pb::PublishResponse* response)
      : outcome_(std::make_shared<Outcome>(this, response)) {}

  void Begin(broker::Broker& broker, const pb::PublishRequest& request) {
    broker.Publish(request, [outcome = outcome_](absl::StatusOr<pb::PublishResponse> result) {
      outcome->Complete(std::move(result));
    });
  }

  // Finishes with `status` without publishing.
  void Refuse(absl::Status status) { outcome_->Complete(std::move(status)); }

  void OnCancel() override { outcome_->Complete(absl::CancelledError("call cancelled")); }
  void OnDone() override { delete this; }

 private:
  struct Outcome {
    Outcome(PublishReactor* r, pb::PublishResponse* resp) : reactor(r), response(resp) {}

    void Complete(absl::StatusOr<pb::PublishResponse> result) {
      {
        std::lock_guard lock(mu);
        if (finished) return;
        finished = true;
      }
      if (!result.ok()) {
        reactor->Finish(ToGrpc(result.status()));
        return;
      }
      *response = *std::move(result);
      reactor->Finish(grpc::Status::OK);
    }

    std::mutex mu;
    bool finished = false;
    PublishReactor* const reactor;
    pb::PublishResponse* const response;
  };
  std::shared_ptr<Outcome> outcome_;
};

// ---- PublishStream ----------------------------------------------------------

// Reads publishes one at a time and hands each to the broker before reading
// the next, so they reach the bus (or the log) in order. Without acks the
// broker completes a publish before Publish() returns, except one to a
// recovery namespace's log, completed by the log's ack: up to
// kAppendsInFlight of those are in flight at once (the log stores the
// appends of one broker in the order they were sent, and completes them in
// that order), so the stream is not held to one publish per JetStream round
// trip. The next read also waits while the deliveries are behind (flow
// control holds the client back meanwhile). The first failure ends the call
// once the publishes in flight have completed; the ones sent after the
// failed one may have been stored.
class PublishStreamReactor final : public grpc::ServerReadReactor<pb::PublishRequest> {
 public:
  // Well under bus::AsyncPublisher's default bound of 1024 completions, which
  // the broker's log shares between its calls.
  static constexpr int kAppendsInFlight = 64;

  PublishStreamReactor(broker::Broker& broker, const std::function<bool()>& behind,
                       pb::PublishStreamResponse* response)
      : broker_(broker), behind_(behind), response_(response) {
    std::unique_lock lock(mu_);
    reading_ = true;
    Release(std::move(lock), true);
  }

  void OnReadDone(bool ok) override {
    std::unique_lock lock(mu_);
    reading_ = false;
    if (!ok) {  // half-close (or a broken call, whose status nobody reads)
      ended_ = true;
      return Release(std::move(lock), false);
    }
    if (request_.ack_timeout_ms() > 0) {
      Fail(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "PublishStream does not collect acks: ack_timeout_ms must be 0 "
                        "(use Publish)"));
      return Release(std::move(lock), false);
    }
    ++in_flight_;
    lock.unlock();
    // The completion runs inside Publish (usually) or later on the log's
    // thread; request_ is not read after Publish returns.
    broker_.Publish(request_, [this](absl::StatusOr<pb::PublishResponse> result) {
      std::unique_lock lock(mu_);
      --in_flight_;
      if (result.ok()) {
        response_->set_accepted(response_->accepted() + 1);
        response_->set_recipients(response_->recipients() + result->recipients());
      } else {
        Fail(ToGrpc(result.status()));
      }
      // The window was full: this completion makes room for the next read.
      bool read = false;
      if (window_full_ && !ended_) {
        window_full_ = false;
        read = PrepareRead();
      }
      Release(std::move(lock), read);
    });
    lock.lock();
    request_.Clear();
    if (ended_) return Release(std::move(lock), false);
    if (in_flight_ >= kAppendsInFlight) {
      window_full_ = true;
      return Release(std::move(lock), false);
    }
    Release(std::move(lock), PrepareRead());
  }

  void OnCancel() override { cancelled_.store(true, std::memory_order_relaxed); }
  void OnDone() override { delete this; }

 private:
  void Fail(grpc::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (status_.ok()) status_ = std::move(status);
    ended_ = true;
  }

  // True: read now (the caller starts it once it has let go of mu_). False:
  // cancelled, or (deliveries behind) the alarm reads once they caught up.
  bool PrepareRead() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (cancelled_.load(std::memory_order_relaxed)) {
      Fail(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
      return false;
    }
    if (!behind_ || !behind_()) {
      reading_ = true;
      return true;
    }
    waiting_ = true;
    alarm_.Set(std::chrono::system_clock::now() + std::chrono::milliseconds(1), [this](bool) {
      std::unique_lock lock(mu_);
      waiting_ = false;
      Release(std::move(lock), !ended_ && PrepareRead());
    });
    return false;
  }

  // Lets go of mu_, then starts the read, or ends the call once nothing
  // refers to it any more (no read pending, no alarm set, no publish in
  // flight). Nothing touches `this` after Finish: OnDone may delete it at
  // once, on another thread.
  void Release(std::unique_lock<std::mutex> lock, bool read) {
    const bool finish = !read && ended_ && !finished_ && !reading_ && !waiting_ && in_flight_ == 0;
    if (finish) finished_ = true;
    grpc::Status status = status_;
    lock.unlock();
    if (read) {
      StartRead(&request_);
    } else if (finish) {
      Finish(status);
    }
  }

  broker::Broker& broker_;
  const std::function<bool()>& behind_;  // the server's option: outlives calls
  pb::PublishStreamResponse* const response_;
  pb::PublishRequest request_;
  grpc::Alarm alarm_;
  std::atomic<bool> cancelled_{false};

  std::mutex mu_;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool waiting_ ABSL_GUARDED_BY(mu_) = false;  // for the alarm
  bool window_full_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;  // no more reads: half-closed, or failed
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

// ---- WatchEvents ----------------------------------------------------------

class WatchReactor;

// What a watch stream shares with the broker's callbacks and with the
// server's Shutdown: the queue and the decision to finish. `reactor` may be
// used while `finish_claimed` is false, or from the reactor's own callbacks
// (it is deleted only in OnDone, which follows Finish).
//
// Events dropped (the queue at the end, events arriving after it) are
// collected under `mu` and reported to the broker after it is released.
struct WatchState {
  struct Queued {
    pb::WatchEventsResponse event;
    size_t bytes = 0;
  };
  using Dropped = std::vector<pb::WatchEventsResponse>;

  WatchState(broker::Broker& b, bool owns) : broker(b), owns_acks(owns) {}

  broker::Broker& broker;
  const bool owns_acks;  // a queue group's watcher: its client events are its alone
  std::mutex mu;
  WatchReactor* reactor = nullptr;
  size_t max_queue = 0;
  size_t max_queue_bytes = 0;
  bool live = false;     // the broker watch is started and headers are sent
  bool writing = false;  // queue.front() is being written
  bool finish_claimed = false;
  bool too_slow = false;  // why it ended, for the error the dropped acks get
  grpc::Status final_status;
  std::deque<Queued> queue;
  size_t queued_bytes = 0;

  void Push(const pb::WatchEventsResponse& event);
  void End(grpc::Status status);
  void Live();
  void WriteDone(bool ok);

 private:
  void EndLocked(grpc::Status status, Dropped& dropped);
  void WriteNextLocked();
  void PopFrontLocked(Dropped* dropped);
  void Report(Dropped& dropped);
};

}  // namespace

// ---- the server -------------------------------------------------------------

struct ApiServer::Impl {
  Impl(broker::Broker& b, ApiServerOptions o) : broker(b), options(std::move(o)) {}

  // Adds a watch unless shutting down.
  bool AddWatch(const std::shared_ptr<WatchState>& watch) {
    std::lock_guard lock(watch_mu);
    if (shutting_down) return false;
    watches.insert(watch);
    return true;
  }
  void RemoveWatch(const std::shared_ptr<WatchState>& watch) {
    std::lock_guard lock(watch_mu);
    watches.erase(watch);
  }

  broker::Broker& broker;
  ApiServerOptions options;
  std::unique_ptr<grpc::Service> service;
  std::unique_ptr<grpc::Server> server;
  uint16_t port = 0;
  std::string address;

  std::mutex shutdown_mu;  // held for the whole of Shutdown
  bool shut_down = false;  // guarded by shutdown_mu

  std::mutex watch_mu;
  bool shutting_down = false;
  std::set<std::shared_ptr<WatchState>> watches;
};

namespace {

class WatchReactor final : public grpc::ServerWriteReactor<pb::WatchEventsResponse> {
 public:
  WatchReactor(ApiServer::Impl& server, bool grouped)
      : server_(server), state_(std::make_shared<WatchState>(server.broker, grouped)) {
    state_->reactor = this;
    state_->max_queue = std::max<size_t>(server.options.max_watch_queue, 1);
    state_->max_queue_bytes = std::max<size_t>(server.options.max_watch_queue_bytes, 1);
  }

  void Begin(const pb::WatchEventsRequest& request) {
    if (!server_.AddWatch(state_)) {
      state_->End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
      return;
    }
    std::weak_ptr<WatchState> weak = state_;
    auto watch = server_.broker.StartWatch(
        request,
        [weak](const pb::WatchEventsResponse& event) {
          if (auto state = weak.lock()) state->Push(event);
        },
        [weak] {
          if (auto state = weak.lock()) {
            state->End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "broker shut down"));
          }
        });
    if (!watch.ok()) {
      state_->End(ToGrpc(watch.status()));
      return;
    }
    watch_ = *std::move(watch);
    state_->Live();
  }

  void OnWriteDone(bool ok) override { state_->WriteDone(ok); }
  void OnCancel() override {
    state_->End(grpc::Status(grpc::StatusCode::CANCELLED, "call cancelled"));
  }
  void OnDone() override {
    watch_.reset();  // no broker callback starts after this
    server_.RemoveWatch(state_);
    delete this;
  }

 private:
  ApiServer::Impl& server_;
  std::shared_ptr<WatchState> state_;
  std::unique_ptr<broker::Broker::Watch> watch_;
};

void WatchState::Push(const pb::WatchEventsResponse& event) {
  Dropped dropped;
  {
    std::lock_guard lock(mu);
    const size_t bytes = event.ByteSizeLong();
    if (finish_claimed) {
      dropped.push_back(event);
    } else if (queue.size() >= max_queue ||
               (!queue.empty() && queued_bytes + bytes > max_queue_bytes)) {
      dropped.push_back(event);
      too_slow = true;
      EndLocked(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "watcher too slow"), dropped);
    } else {
      queue.push_back({event, bytes});
      queued_bytes += bytes;
      WriteNextLocked();
    }
  }
  Report(dropped);
}

void WatchState::Live() {
  std::lock_guard lock(mu);
  if (finish_claimed) return;
  live = true;
  reactor->StartSendInitialMetadata();
  WriteNextLocked();
}

void WatchState::End(grpc::Status status) {
  Dropped dropped;
  {
    std::lock_guard lock(mu);
    EndLocked(std::move(status), dropped);
  }
  Report(dropped);
}

void WatchState::PopFrontLocked(Dropped* dropped) {
  queued_bytes -= queue.front().bytes;
  if (dropped != nullptr) dropped->push_back(std::move(queue.front().event));
  queue.pop_front();
}

// The reactor's operations never call back into it inline (gRPC runs
// reactions on its own threads), so they may be started with `mu` held.
void WatchState::EndLocked(grpc::Status status, Dropped& dropped) {
  if (finish_claimed) return;
  finish_claimed = true;
  // Drop what is queued, but the write in flight (it may still arrive).
  const size_t keep = writing ? 1 : 0;
  while (queue.size() > keep) {
    queued_bytes -= queue.back().bytes;
    dropped.push_back(std::move(queue.back().event));
    queue.pop_back();
  }
  if (writing) {
    final_status = std::move(status);  // Finish once the write in flight is done
    return;
  }
  reactor->Finish(std::move(status));
}

void WatchState::WriteNextLocked() {
  if (!live || writing || queue.empty()) return;
  writing = true;
  reactor->StartWrite(&queue.front().event);
}

void WatchState::WriteDone(bool ok) {
  Dropped dropped;
  {
    std::lock_guard lock(mu);
    writing = false;
    // A failed write did not reach the client.
    if (!queue.empty()) PopFrontLocked(ok ? nullptr : &dropped);
    if (finish_claimed) {
      while (!queue.empty()) PopFrontLocked(&dropped);
      reactor->Finish(std::move(final_status));
    } else if (!ok) {  // the stream is broken (client gone)
      EndLocked(grpc::Status(grpc::StatusCode::CANCELLED, "stream broken"), dropped);
    } else {
      WriteNextLocked();
    }
  }
  Report(dropped);
}

void WatchState::Report(Dropped& dropped) {
  if (dropped.empty()) return;
  bool slow;
  {
    std::lock_guard lock(mu);
    slow = too_slow;
  }
  for (const pb::WatchEventsResponse& event : dropped) {
    broker.WatchDropped(event, owns_acks, slow ? "watcher too slow" : "watcher gone");
  }
}

// ---- the service ----------------------------------------------------------

using ServiceBase =
    pb::Switchboard::WithCallbackMethod_Publish<pb::Switchboard::WithCallbackMethod_PublishStream<
        pb::Switchboard::WithCallbackMethod_WatchEvents<
            pb::Switchboard::WithCallbackMethod_Ack<pb::Switchboard::Service>>>>;

// Publish, PublishStream and WatchEvents on the callback API (they may wait
// for acks or stream for hours); the rest are quick broker calls on the sync
// server's threads.
class SwitchboardService final : public ServiceBase {
 public:
  explicit SwitchboardService(ApiServer::Impl& server) : server_(server) {}

  grpc::ServerUnaryReactor* Publish(grpc::CallbackServerContext* /*ctx*/,
                                    const pb::PublishRequest* request,
                                    pb::PublishResponse* response) override {
    auto* reactor = new PublishReactor(response);
    // Deliveries behind: refused rather than queued without bound (a
    // PublishStream waits instead; a unary call has nothing to hold back).
    if (server_.options.deliveries_behind && server_.options.deliveries_behind()) {
      reactor->Refuse(absl::ResourceExhaustedError(
          "deliveries are behind (the clients' sockets cannot keep up): retry later, or use "
          "PublishStream, which waits"));
      return reactor;
    }
    reactor->Begin(server_.broker, *request);
    return reactor;
  }

  grpc::ServerReadReactor<pb::PublishRequest>* PublishStream(
      grpc::CallbackServerContext* /*ctx*/, pb::PublishStreamResponse* response) override {
    return new PublishStreamReactor(server_.broker, server_.options.deliveries_behind, response);
  }

  grpc::ServerWriteReactor<pb::WatchEventsResponse>* WatchEvents(
      grpc::CallbackServerContext* /*ctx*/, const pb::WatchEventsRequest* request) override {
    auto* reactor = new WatchReactor(server_, !request->queue_group().empty());
    reactor->Begin(*request);
    return reactor;
  }

  // Waits for the edge's confirmation without holding a server thread.
  grpc::ServerUnaryReactor* Ack(grpc::CallbackServerContext* ctx, const pb::AckRequest* request,
                                pb::AckResponse* /*response*/) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    server_.broker.Ack(*request,
                       [reactor](absl::Status status) { reactor->Finish(ToGrpc(status)); });
    return reactor;
  }

  grpc::Status JoinRooms(grpc::ServerContext* /*ctx*/, const pb::JoinRoomsRequest* request,
                         pb::JoinRoomsResponse* response) override {
    return Reply(server_.broker.JoinRooms(*request), response);
  }
  grpc::Status LeaveRooms(grpc::ServerContext* /*ctx*/, const pb::LeaveRoomsRequest* request,
                          pb::LeaveRoomsResponse* response) override {
    return Reply(server_.broker.LeaveRooms(*request), response);
  }
  grpc::Status DisconnectSockets(grpc::ServerContext* /*ctx*/,
                                 const pb::DisconnectSocketsRequest* request,
                                 pb::DisconnectSocketsResponse* response) override {
    return Reply(server_.broker.DisconnectSockets(*request), response);
  }
  grpc::Status GetStats(grpc::ServerContext* /*ctx*/, const pb::GetStatsRequest* request,
                        pb::GetStatsResponse* response) override {
    return Reply(server_.broker.GetStats(*request), response);
  }
  grpc::Status ListEdges(grpc::ServerContext* /*ctx*/, const pb::ListEdgesRequest* request,
                         pb::ListEdgesResponse* response) override {
    return Reply(server_.broker.ListEdges(*request), response);
  }
  grpc::Status ListSockets(grpc::ServerContext* /*ctx*/, const pb::ListSocketsRequest* request,
                           pb::ListSocketsResponse* response) override {
    return Reply(server_.broker.ListSockets(*request), response);
  }
  grpc::Status ListRooms(grpc::ServerContext* /*ctx*/, const pb::ListRoomsRequest* request,
                         pb::ListRoomsResponse* response) override {
    return Reply(server_.broker.ListRooms(*request), response);
  }
  grpc::Status GetPresence(grpc::ServerContext* /*ctx*/, const pb::GetPresenceRequest* request,
                           pb::GetPresenceResponse* response) override {
    return Reply(server_.broker.GetPresence(*request), response);
  }

 private:
  ApiServer::Impl& server_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ApiServer>> ApiServer::Start(broker::Broker& broker,
                                                            ApiServerOptions options) {
  auto host = ListenHost(options.host);
  if (!host.ok()) return host.status();
  if (options.max_receive_message_bytes <= 0) {
    return absl::InvalidArgumentError("max_receive_message_bytes must be positive");
  }
  if (auto exposure = CheckApiExposure(options.host, options.security); !exposure.ok()) {
    return exposure;
  }
  auto credentials = MakeApiServerCredentials(options.security);
  if (!credentials.ok()) return credentials.status();
  const std::string address = absl::StrCat(*host, ":", options.port);

  // Process-wide switches; they take effect for servers built after them.
  grpc::EnableDefaultHealthCheckService(true);
#ifdef SB_HAVE_GRPC_REFLECTION
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
#endif

  auto impl = std::make_unique<Impl>(broker, std::move(options));
  impl->service = std::make_unique<SwitchboardService>(*impl);

  grpc::ServerBuilder builder;
  int selected_port = 0;
  builder.AddListeningPort(address, *credentials, &selected_port);
  // Linux gRPC sets SO_REUSEPORT by default: two servers would then share a
  // port silently. A port in use must be an error.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(impl->options.max_receive_message_bytes);
  builder.RegisterService(impl->service.get());
  if (impl->options.make_interceptors) {
    auto interceptors = impl->options.make_interceptors();
    if (!interceptors.empty()) {
      builder.experimental().SetInterceptorCreators(std::move(interceptors));
    }
  }
  impl->server = builder.BuildAndStart();
  if (impl->server == nullptr || selected_port <= 0) {
    if (impl->server != nullptr) impl->server->Shutdown();
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
  }
  impl->port = static_cast<uint16_t>(selected_port);
  impl->address = absl::StrCat(*host, ":", selected_port);

  auto server = std::unique_ptr<ApiServer>(new ApiServer(std::move(impl)));
  server->SetServing(true);
  return server;
}

ApiServer::ApiServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ApiServer::~ApiServer() { Shutdown(std::chrono::milliseconds(0)); }

uint16_t ApiServer::port() const { return impl_->port; }

std::string ApiServer::address() const { return impl_->address; }

void ApiServer::SetServing(bool serving) {
  std::lock_guard lock(impl_->shutdown_mu);
  if (impl_->shut_down) return;
  auto* health = impl_->server->GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus("", serving);
  health->SetServingStatus(kServiceName, serving);
}

void ApiServer::Shutdown(std::chrono::milliseconds grace) {
  std::lock_guard lock(impl_->shutdown_mu);
  if (impl_->shut_down) return;
  impl_->shut_down = true;
  // Health checkers see NOT_SERVING while in-flight calls drain.
  if (auto* health = impl_->server->GetHealthCheckService()) health->Shutdown();
  std::set<std::shared_ptr<WatchState>> watches;
  {
    std::lock_guard watch_lock(impl_->watch_mu);
    impl_->shutting_down = true;
    watches = impl_->watches;
  }
  for (const auto& watch : watches) {
    watch->End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
  }
  impl_->server->Shutdown(std::chrono::system_clock::now() + grace);
  impl_->server->Wait();
}

}  // namespace switchboard::services
