#pragma once

// The index's node types, shared by its two halves: index.cc (the streams:
// events, snapshots, heartbeats, expiry) and index_queries.cc. Private to
// the index.

#include <cstdint>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <string_view>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "broker/index.h"
#include "proto/packed_strings.h"

namespace switchboard::broker {

// Strictly smaller prefixes mean strictly smaller ids (zero padding sorts a
// shorter id first, as lexicographic order does); equal prefixes fall back
// to the full comparison.
inline uint64_t IdPrefix(std::string_view id) {
  uint64_t prefix = 0;
  for (size_t i = 0; i < 8; ++i) {
    prefix = (prefix << 8) | (i < id.size() ? static_cast<unsigned char>(id[i]) : 0u);
  }
  return prefix;
}

struct Index::Edge {
  std::string id;
  uint64_t last_seq = 0;
  bool needs_snapshot = false;
  // The last heartbeat's last_seq when it was ahead of last_seq (0: none
  // awaited), and last_seq then: those events were on their way (a heartbeat
  // can overtake them); if none came by the next heartbeat, they were lost.
  uint64_t awaited_seq = 0;
  uint64_t awaited_from = 0;
  TimePoint last_seen{};
  absl::flat_hash_set<Socket*> sockets;
  // Events received while waiting for a snapshot, by seq.
  std::map<uint64_t, Event> pending;
  // Sockets this edge held that another edge reported moved in, before this
  // edge reported them moved out: its heartbeats still count them, and its
  // MovedOut settles each (index.h, "Moves").
  absl::flat_hash_set<std::string> moved_away;
};

struct Index::Room {
  std::string name;
  SocketSet members;
};

struct Index::Namespace {
  std::string name;
  SocketSet sockets;
  absl::flat_hash_map<User*, uint32_t> users;  // user -> its sockets here
  absl::btree_map<std::string_view, std::unique_ptr<Room>, std::less<>> rooms;
};

struct Index::User {
  std::string id;
  SocketSet sockets;
};

// Kept for every socket of the cluster, so it is small: its id, address and
// claims follow it in its own allocation (Make), the id's prefix is recomputed
// (cheap) rather than stored.
struct Index::Socket {
  using Strings = proto::PackedStrings<3>;  // id, remote address, claims

  static std::unique_ptr<Socket> Make(const Strings::Parts& parts) {
    size_t size = Strings::Size(parts);
    std::unique_ptr<Socket> socket(new (Tail{size}) Socket());
    Strings::Write(socket->tail(), parts);
    return socket;
  }
  std::string_view id() const { return Strings::Get(tail(), 0); }
  std::string_view address() const { return Strings::Get(tail(), 1); }
  std::string_view claims() const { return Strings::Get(tail(), 2); }
  SocketRef ref() { return {IdPrefix(id()), this}; }

  // Room for the strings after the object; `delete` (unique_ptr) frees it all.
  struct Tail {
    size_t bytes;
  };
  static void* operator new(size_t size, Tail tail) { return ::operator new(size + tail.bytes); }
  static void operator delete(void* p, Tail) { ::operator delete(p); }  // a throwing constructor
  static void operator delete(void* p) { ::operator delete(p); }

  Edge* edge = nullptr;
  Namespace* nsp = nullptr;
  User* user = nullptr;                    // null: anonymous
  const std::string* transport = nullptr;  // in Index::transports_
  WallTime connected_at{};
  absl::InlinedVector<Room*, 2> rooms;  // unordered, never the own-id room

 private:
  Socket() = default;
  char* tail() { return reinterpret_cast<char*>(this + 1); }
  const char* tail() const { return reinterpret_cast<const char*>(this + 1); }
};

}  // namespace switchboard::broker
