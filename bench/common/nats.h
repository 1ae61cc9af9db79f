// What the issue-16 benches share: a nats-server (the one given, or one of
// their own on a free port) and edge-like NATS connections to it.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "bus/nats_bus.h"
#include "tests/bus/nats_server.h"

namespace switchboard::bench {

// `url` when given; else starts a nats-server kept in `owned` (exits on failure).
inline std::string NatsUrlOrStart(std::string url,
                                  std::unique_ptr<bus::testing::NatsServer>& owned) {
  if (!url.empty()) return url;
  owned = std::make_unique<bus::testing::NatsServer>();
  if (!owned->Start()) {
    std::fprintf(stderr, "cannot start nats-server\n");
    std::exit(1);
  }
  return owned->url();
}

// A connection as an edge's: no echo, each publish written at once unless
// `send_asap` is false (exits on failure).
inline std::unique_ptr<bus::Bus> ConnectEdgeBus(const std::string& url, const std::string& name,
                                                bool send_asap) {
  bus::NatsBus::Options options;
  options.urls = {url};
  options.name = name;
  options.no_echo = true;
  options.send_asap = send_asap;
  auto connected = bus::NatsBus::Connect(options);
  if (!connected.ok()) {
    std::fprintf(stderr, "nats: %s\n", connected.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(*connected);
}

}  // namespace switchboard::bench
