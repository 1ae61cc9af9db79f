#include "edge/socketio/server.h"

#include "edge/socketio/client.h"

namespace switchboard::sio {

Server::Server(edge::Runtime& runtime, eio::Options engine_options, ServerOptions options)
    : runtime_(runtime),
      options_(std::move(options)),
      engine_(std::make_unique<eio::Server>(runtime, std::move(engine_options))) {
  if (options_.decoder.max_attachment_bytes == 0) {
    options_.decoder.max_attachment_bytes = engine_->options().max_http_buffer_size;
  }
  Of("/");  // the main namespace always exists
  engine_->OnConnection([this](const eio::SessionPtr& session) {
    std::make_shared<Client>(*this, session)->Start();
  });
}

Server::~Server() = default;

bool Server::ReserveSocket() {
  size_t before = sockets_.fetch_add(1, std::memory_order_relaxed);
  if (options_.limits.max_sockets == 0 || before < options_.limits.max_sockets) return true;
  sockets_.fetch_sub(1, std::memory_order_relaxed);
  return false;
}

Server::LimitCounters Server::limit_counters() const {
  auto get = [this](Limit limit) {
    return counters_[static_cast<size_t>(limit)].load(std::memory_order_relaxed);
  };
  LimitCounters c;
  c.server_at_capacity = get(Limit::kServerAtCapacity);
  c.too_many_namespaces = get(Limit::kTooManyNamespaces);
  c.too_many_user_sockets = get(Limit::kTooManyUserSockets);
  c.room_limit = get(Limit::kRoomLimit);
  c.rate_limited = get(Limit::kRateLimited);
  c.connect_rate = get(Limit::kConnectRate);
  c.flood_disconnects = get(Limit::kFloodDisconnect);
  c.json_depth = get(Limit::kJsonDepth);
  c.attachments = get(Limit::kAttachments);
  c.attachment_bytes = get(Limit::kAttachmentBytes);
  return c;
}

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
