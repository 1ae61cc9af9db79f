// sb-chat-backend: the seed chat as a Switchboard backend, on the gRPC API only.
//
//   sb-chat-backend --server 127.0.0.1:50051 [--server HOST:PORT ...] [--namespace /]
//                   [--token T] [--queue-group G]
//
// Watches the namespace's client events and disconnects (WatchEvents), keeps who joined the
// chat under which name (chat.h), and answers with Publish and Ack. When the stream breaks it
// reconnects, to the next --server in turn, and drops the users whose sockets went away
// meanwhile (ListSockets). Prints "chat backend watching HOST:PORT" each time the stream is
// live. Exits on SIGINT / SIGTERM.

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>

#include "chat.h"
#include "switchboard/v1/switchboard.grpc.pb.h"

namespace {

namespace v1 = switchboard::v1;

constexpr auto kCallDeadline = std::chrono::seconds(5);
constexpr auto kMinBackoff = std::chrono::milliseconds(200);
constexpr auto kMaxBackoff = std::chrono::seconds(5);
constexpr int kMaxListPages = 1000;

struct Options {
  std::vector<std::string> servers;
  std::string nsp = "/";
  std::string token;
  std::string queue_group;
};

// Shutdown: set by the signal thread, which also cancels the live stream.
struct Shutdown {
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  grpc::ClientContext* stream = nullptr;  // the live WatchEvents call, if any

  void Request() {
    std::lock_guard lock(mu);
    stop = true;
    if (stream != nullptr) stream->TryCancel();
    cv.notify_all();
  }
  bool Stopped() {
    std::lock_guard lock(mu);
    return stop;
  }
  // Sleeps up to `d`; false when shutting down.
  bool Sleep(std::chrono::milliseconds d) {
    std::unique_lock lock(mu);
    return !cv.wait_for(lock, d, [this] { return stop; });
  }
};

class Backend {
 public:
  Backend(Options options, Shutdown& shutdown)
      : options_(std::move(options)), shutdown_(shutdown), chat_(options_.nsp) {}

  // Runs until shutdown.
  void Run() {
    auto backoff = std::chrono::milliseconds(kMinBackoff);
    for (size_t attempt = 0; !shutdown_.Stopped(); ++attempt) {
      const std::string& server = options_.servers[attempt % options_.servers.size()];
      bool was_live = WatchOnce(server);
      if (shutdown_.Stopped()) break;
      backoff = was_live ? std::chrono::milliseconds(kMinBackoff)
                         : std::min<std::chrono::milliseconds>(backoff * 2, kMaxBackoff);
      if (!shutdown_.Sleep(backoff)) break;
    }
  }

 private:
  void Prepare(grpc::ClientContext& ctx, bool deadline = true) const {
    if (deadline) ctx.set_deadline(std::chrono::system_clock::now() + kCallDeadline);
    if (!options_.token.empty()) ctx.AddMetadata("authorization", "Bearer " + options_.token);
  }

  // One WatchEvents stream on `server`, until it ends. True if it was live.
  bool WatchOnce(const std::string& server) {
    stub_ = v1::Switchboard::NewStub(
        grpc::CreateChannel(server, grpc::InsecureChannelCredentials()));
    v1::WatchEventsRequest request;
    request.set_namespace_(options_.nsp);
    request.add_kinds(v1::EVENT_KIND_CLIENT_EVENT);
    request.add_kinds(v1::EVENT_KIND_DISCONNECTED);
    for (const char* event : {"user-join", "chat-message", "typing", "stop-typing"}) {
      request.add_events(event);
    }
    request.set_queue_group(options_.queue_group);

    grpc::ClientContext ctx;
    Prepare(ctx, /*deadline=*/false);
    {
      std::lock_guard lock(shutdown_.mu);
      if (shutdown_.stop) return false;
      shutdown_.stream = &ctx;
    }
    std::unique_ptr<grpc::ClientReader<v1::WatchEventsResponse>> reader =
        stub_->WatchEvents(&ctx, request);
    // The broker sends initial metadata once the watch is registered (or with its error).
    reader->WaitForInitialMetadata();
    bool live = Resync();
    if (live) {
      std::cout << "chat backend watching " << server << std::endl;
      v1::WatchEventsResponse event;
      while (reader->Read(&event)) Execute(chat_.OnEvent(event));
    }
    grpc::Status status = reader->Finish();
    {
      std::lock_guard lock(shutdown_.mu);
      shutdown_.stream = nullptr;
    }
    if (!shutdown_.Stopped()) {
      std::cerr << "chat backend: stream on " << server << " ended: "
                << (live ? status.error_message() : "not live") << " (code "
                << static_cast<int>(status.error_code()) << "); reconnecting" << std::endl;
    }
    return live;
  }

  // Drops the users whose sockets are gone. False when the broker cannot be read.
  bool Resync() {
    std::set<std::string> live;
    v1::ListSocketsRequest request;
    request.set_namespace_(options_.nsp);
    request.set_page_size(1000);
    for (int page = 0; page < kMaxListPages; ++page) {
      grpc::ClientContext ctx;
      Prepare(ctx);
      v1::ListSocketsResponse response;
      grpc::Status status = stub_->ListSockets(&ctx, request, &response);
      if (!status.ok()) {
        std::cerr << "chat backend: ListSockets: " << status.error_message() << std::endl;
        return false;
      }
      for (const v1::SocketInfo& socket : response.sockets()) live.insert(socket.id());
      if (response.next_page_token().empty()) break;
      request.set_page_token(response.next_page_token());
    }
    Execute(chat_.Resync(live));
    return true;
  }

  void Execute(const std::vector<chat::Action>& actions) {
    for (const chat::Action& action : actions) {
      grpc::ClientContext ctx;
      Prepare(ctx);
      grpc::Status status;
      if (const auto* publish = std::get_if<v1::PublishRequest>(&action)) {
        v1::PublishResponse response;
        status = stub_->Publish(&ctx, *publish, &response);
        if (!status.ok()) {
          std::cerr << "chat backend: Publish " << publish->event() << ": "
                    << status.error_message() << std::endl;
        }
      } else {
        const auto& ack = std::get<v1::AckRequest>(action);
        v1::AckResponse response;
        status = stub_->Ack(&ctx, ack, &response);
        // NOT_FOUND: the client's ack timed out or its socket left meanwhile.
        if (!status.ok()) std::cerr << "chat backend: Ack: " << status.error_message() << std::endl;
      }
    }
  }

  Options options_;
  Shutdown& shutdown_;
  chat::Chat chat_;
  std::unique_ptr<v1::Switchboard::Stub> stub_;
};

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (const char* env = std::getenv("SWITCHBOARD_TOKEN")) options.token = env;
  CLI::App app{"The seed chat as a Switchboard backend (gRPC API)"};
  app.add_option("--server", options.servers, "Broker gRPC address HOST:PORT (repeat for more)")
      ->required();
  app.add_option("--namespace", options.nsp, "Namespace the chat lives in")->capture_default_str();
  app.add_option("--token", options.token, "Bearer token (default: $SWITCHBOARD_TOKEN)");
  app.add_option("--queue-group", options.queue_group,
                 "WatchEvents queue group (empty: a plain watcher)");
  CLI11_PARSE(app, argc, argv);

  // SIGINT / SIGTERM are taken by a thread of ours (blocked before any other thread starts).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  Shutdown shutdown;
  std::thread signal_thread([&] {
    int signal = 0;
    sigwait(&signals, &signal);
    shutdown.Request();
  });

  Backend backend(std::move(options), shutdown);
  backend.Run();
  signal_thread.join();
  return 0;
}
