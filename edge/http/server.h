#pragma once

#include <absl/status/status.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "edge/http/handler.h"
#include "edge/http/options.h"
#include "edge/http/pending_slot.h"
#include "edge/runtime.h"

namespace switchboard::edge {

// A file served as-is, held in memory.
struct StaticFile {
  std::string content_type;  // e.g. "text/html; charset=UTF-8"
  std::string body;
  std::string etag = {};  // strong validator; ServeFile derives it from the body when empty
  // Non-empty: not a file but a redirect (302) to this path, the query kept (ServeRedirect).
  std::string location = {};
};

// The TCP listener. Accepted connections are spread over the runtime's
// shards; each request is routed first to a static file by its exact path,
// then by path prefix to a mounted HttpHandler (the Engine.IO server).
// Anything else gets 404.
class HttpServer {
 public:
  HttpServer(Runtime& runtime, HttpOptions options);
  ~HttpServer();

  // `path` is the mount prefix, e.g. "/socket.io/".
  void Mount(std::string path, HttpHandler& handler);
  // Serves `file` at exactly `path` (query ignored), GET and HEAD only (else
  // 405), with an ETag so that a browser revalidates with a 304. Only the
  // files registered so are served: no request reaches the file system, and
  // a path is never normalized (`/x/../` is not `/`). Call before Listen().
  void ServeFile(std::string path, StaticFile file);
  // Answers GET and HEAD at exactly `path` with a 302 to `location` (the request's query
  // appended), e.g. "/admin-ui" to "/admin-ui/" for a page with relative URLs. Call before
  // Listen().
  void ServeRedirect(std::string path, std::string location);
  // Binds and starts accepting. port() is the bound port afterwards.
  absl::Status Listen();
  uint16_t port() const { return bound_port_; }
  // Stops accepting new connections.
  void Close();
  // Serves HTTP on `fd`, a connected stream socket on `shard` (the plaintext
  // end of a TlsRelay), for a client at `remote_address`. Call on `shard`.
  void Adopt(size_t shard, int fd, std::string remote_address, PendingSlot slot);
  // A slot for a connection about to wait for a request; empty (and counted)
  // at max_pending_connections.
  PendingSlot TakePendingSlot();
  // Connections holding a PendingSlot now.
  size_t pending_connections() const { return pending_->load(std::memory_order_relaxed); }

  // Internal.
  HttpHandler* Route(std::string_view target) const;
  const StaticFile* StaticRoute(std::string_view target) const;
  const HttpOptions& options() const { return options_; }
  Runtime& runtime() { return runtime_; }

  // Connections closed by a limit since the start.
  struct LimitCounters {
    uint64_t header_too_large = 0;  // 431
    uint64_t headers_timeout = 0;   // headers not complete within headersTimeout
    uint64_t body_timeout = 0;      // body not complete within bodyTimeout
    uint64_t idle_timeout = 0;      // keep-alive connection idle for idleTimeout
    uint64_t tls_handshake_failed = 0;   // not TLS, no common cipher, bad record...
    uint64_t tls_handshake_timeout = 0;  // handshake not done within headersTimeout
    uint64_t write_timeout = 0;          // a response or a TLS record not taken within writeTimeout
    uint64_t pending_connections = 0;    // closed at maxPendingConnections
    // Connections refused because the process was out of descriptors
    // (accept, the TLS relay's socketpair): EMFILE / ENFILE.
    uint64_t descriptors = 0;
  };
  LimitCounters limit_counters() const;
  enum class Limit {
    kHeaderTooLarge,
    kHeadersTimeout,
    kBodyTimeout,
    kIdleTimeout,
    kTlsHandshakeFailed,
    kTlsHandshakeTimeout,
    kWriteTimeout,
    kPendingConnections,
    kDescriptors,
    kCount
  };
  void Count(Limit limit) {
    counters_[static_cast<size_t>(limit)].fetch_add(1, std::memory_order_relaxed);
  }

 private:
  void DoAccept();
  // accept() failed (out of descriptors or memory): refuses the connection at
  // the head of the backlog if a reserve descriptor allows, then pauses.
  void AcceptFailed(const boost::system::error_code& ec);

  Runtime& runtime_;
  HttpOptions options_;
  std::vector<std::pair<std::string, HttpHandler*>> mounts_;
  std::map<std::string, StaticFile, std::less<>> files_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
  uint16_t bound_port_ = 0;
  size_t next_shard_ = 0;
  // Accept pauses after a failure: doubles while accept keeps failing.
  std::unique_ptr<boost::asio::steady_timer> accept_timer_;
  std::chrono::milliseconds accept_backoff_{0};
  // Closed to make room for accepting (and at once closing) a connection
  // when the process is out of descriptors, then opened again.
  int reserve_fd_ = -1;
  std::shared_ptr<std::atomic<size_t>> pending_ = std::make_shared<std::atomic<size_t>>(0);
  std::atomic<uint64_t> counters_[static_cast<size_t>(Limit::kCount)] = {};
};

}  // namespace switchboard::edge
