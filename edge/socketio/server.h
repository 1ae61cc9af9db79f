#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "edge/engineio/options.h"
#include "edge/engineio/server.h"
#include "edge/runtime.h"
#include "edge/socketio/decoder.h"
#include "edge/socketio/membership_observer.h"
#include "edge/socketio/namespace.h"

namespace switchboard::sio {

struct ServerOptions {
  // A connection that joins no namespace within this time is closed.
  std::chrono::milliseconds connect_timeout{45000};
  DecoderLimits decoder;
  // In a cluster: socket ids become "<edge_id>.<random>", so that anyone can
  // tell which edge holds a socket. Empty: plain random ids.
  std::string edge_id;
};

// Hears every broadcast that this server's own handlers emit (not those
// handed to Namespace::Deliver from elsewhere), once it has been delivered
// locally: what a cluster link sends on to the other edges.
class BroadcastRelay {
 public:
  virtual ~BroadcastRelay() = default;
  virtual void OnLocalBroadcast(Namespace& nsp, const Delivery& delivery) = 0;
};

// A Socket.IO server on top of one Engine.IO server. Mount engine() on an
// edge::HttpServer to serve it.
class Server {
 public:
  Server(edge::Runtime& runtime, eio::Options engine_options,
         ServerOptions options = {});
  ~Server();

  // The namespace of that name, created on first use. Call before serving.
  Namespace& Of(std::string_view name);
  // nullptr for a namespace nobody declared.
  Namespace* Find(std::string_view name);
  const std::vector<std::unique_ptr<Namespace>>& namespaces() const { return namespaces_; }

  eio::Server& engine() { return *engine_; }
  edge::Runtime& runtime() { return runtime_; }
  const ServerOptions& options() const { return options_; }

  // Set before serving; not owned; nullptr: nobody listens.
  void SetMembershipObserver(MembershipObserver* observer) { observer_ = observer; }
  MembershipObserver* membership_observer() const { return observer_; }
  // Set before serving; not owned; nullptr: broadcasts stay on this server.
  void SetBroadcastRelay(BroadcastRelay* relay) { relay_ = relay; }
  BroadcastRelay* broadcast_relay() const { return relay_; }

 private:
  edge::Runtime& runtime_;
  ServerOptions options_;
  std::unique_ptr<eio::Server> engine_;
  std::vector<std::unique_ptr<Namespace>> namespaces_;
  MembershipObserver* observer_ = nullptr;
  BroadcastRelay* relay_ = nullptr;
};

}  // namespace switchboard::sio
