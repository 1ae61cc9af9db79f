#include "edge/socketio/server.h"

#include "edge/socketio/client.h"

namespace switchboard::sio {

Server::Server(edge::Runtime& runtime, eio::Options engine_options, ServerOptions options)
    : runtime_(runtime),
      options_(std::move(options)),
      engine_(std::make_unique<eio::Server>(runtime, std::move(engine_options))) {
  Of("/");  // the main namespace always exists
  engine_->OnConnection([this](const eio::SessionPtr& session) {
    std::make_shared<Client>(*this, session)->Start();
  });
}

Server::~Server() = default;

Namespace& Server::Of(std::string_view name) {
  if (Namespace* existing = Find(name)) return *existing;
  namespaces_.push_back(std::make_unique<Namespace>(*this, std::string(name)));
  return *namespaces_.back();
}

Namespace* Server::Find(std::string_view name) {
  for (auto& nsp : namespaces_) {
    if (nsp->name() == name) return nsp.get();
  }
  return nullptr;
}

}  // namespace switchboard::sio
