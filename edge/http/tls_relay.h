#pragma once

#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "edge/http/pending_slot.h"

namespace switchboard::edge {

class HttpServer;

// Terminates TLS for one client connection on the shard that accepted it and
// relays the plaintext over a socketpair to an ordinary HttpSession
// (HttpServer::Adopt). The session then works as on a TCP connection: it can
// move to another shard (the relay stays where its TLS state is) and upgrade
// to WebSocket. Costs one more descriptor pair and a copy per direction; a
// deployment that wants neither terminates TLS in front of the edge.
class TlsRelay : public std::enable_shared_from_this<TlsRelay> {
 public:
  // `slot` is handed to the session once the handshake is done.
  TlsRelay(HttpServer& server, size_t shard, boost::asio::ip::tcp::socket socket,
           boost::asio::ssl::context& context, PendingSlot slot);

  // Runs the handshake (bounded by the headers timeout), then relays. A
  // record to the client not taken within the write timeout ends the
  // connection (both the TCP socket and the socketpair).
  void Start();

 private:
  void OnHandshake(boost::system::error_code ec);
  void ReadFromClient();
  void ReadFromSession();
  // The session closed its end: everything it wrote has been relayed.
  void FinishToClient();
  void Abort();
  // A write to the client starts / ends; the timer checks that none lasts
  // longer than the write timeout.
  void WriteStarted();
  void ArmWriteTimer(std::chrono::steady_clock::time_point at);
  void OnTimer();

  HttpServer& server_;
  size_t shard_;
  std::string remote_address_;
  boost::asio::ssl::stream<boost::asio::ip::tcp::socket> tls_;
  boost::asio::local::stream_protocol::socket plain_;
  PendingSlot pending_;
  // The handshake's deadline, then the deadline of writes to the client.
  boost::asio::steady_timer timer_;
  std::chrono::steady_clock::time_point write_started_;
  bool handshake_done_ = false;
  bool handshake_timed_out_ = false;
  bool writing_ = false;        // a write to the client is under way
  bool timer_waiting_ = false;  // a write-deadline wait is pending
  // One TLS record's worth per direction; the reader waits for the writer.
  std::array<char, 16 * 1024> from_client_;
  std::array<char, 16 * 1024> to_client_;
};

}  // namespace switchboard::edge
