#pragma once

// A real nats-server with JetStream (-js) storing in its own temporary
// directory (removed with it), and NATS connections to it.

#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>

#include "bus/nats_bus.h"
#include "tests/bus/nats_server.h"

namespace switchboard::bus::testing {

class JetStreamServer {
 public:
  JetStreamServer() : dir_(MakeDir()), server_({"-js", "-sd", dir_}) {}
  ~JetStreamServer() {
    server_.Stop();
    std::error_code ignored;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
  }

  bool Start() { return !dir_.empty() && server_.Start(); }
  // SIGKILL; Start() again brings it back on the same port and store.
  void Stop() { server_.Stop(); }
  std::string url() const { return server_.url(); }

  // A bus that reconnects quickly (a restart in the tests takes well under
  // its wait).
  std::unique_ptr<NatsBus> Connect() const {
    NatsBus::Options options;
    options.urls = {url()};
    options.reconnect_wait = std::chrono::milliseconds(100);
    auto bus = NatsBus::Connect(options);
    return bus.ok() ? std::move(*bus) : nullptr;
  }

 private:
  static std::string MakeDir() {
    char tmpl[] = "/tmp/sb_js_XXXXXX";
    return mkdtemp(tmpl) != nullptr ? tmpl : "";
  }
  std::string dir_;
  NatsServer server_;
};

}  // namespace switchboard::bus::testing
