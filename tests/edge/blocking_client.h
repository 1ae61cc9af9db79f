#pragma once

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>
#include <cstdint>
#include <string>

namespace switchboard::testing_support {

// A TCP socket whose blocking reads and writes go on after EINTR. A server in
// the same process that uses io_uring (edge/uring_sends.h) now and then
// interrupts other threads' blocking calls: the kernel wakes tasks for io_uring
// work with a signal-like notice (axboe/liburing#504).
class RetryingSocket {
  using tcp = boost::asio::ip::tcp;

 public:
  using executor_type = tcp::socket::executor_type;
  explicit RetryingSocket(boost::asio::io_context& ioc) : socket_(ioc) {}
  executor_type get_executor() { return socket_.get_executor(); }
  tcp::socket& socket() { return socket_; }

  template <typename Buffers>
  size_t read_some(const Buffers& buffers, boost::system::error_code& ec) {
    return Retried([&] { return socket_.read_some(buffers, ec); }, ec);
  }
  template <typename Buffers>
  size_t read_some(const Buffers& buffers) {
    boost::system::error_code ec;
    return Thrown(read_some(buffers, ec), ec);
  }
  template <typename Buffers>
  size_t write_some(const Buffers& buffers, boost::system::error_code& ec) {
    return Retried([&] { return socket_.write_some(buffers, ec); }, ec);
  }
  template <typename Buffers>
  size_t write_some(const Buffers& buffers) {
    boost::system::error_code ec;
    return Thrown(write_some(buffers, ec), ec);
  }

 private:
  template <typename Call>
  static size_t Retried(Call call, boost::system::error_code& ec) {
    for (;;) {
      size_t n = call();
      if (ec != boost::asio::error::interrupted) return n;
    }
  }
  static size_t Thrown(size_t n, const boost::system::error_code& ec) {
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

  tcp::socket socket_;
};

// The WebSocket closing handshake's end, for Beast (found by argument lookup).
inline void teardown(boost::beast::role_type role, RetryingSocket& socket,
                     boost::system::error_code& ec) {
  boost::beast::websocket::teardown(role, socket.socket(), ec);
}

// A blocking Socket.IO client over WebSocket; every read gives up after 10 s.
class BlockingClient {
  using tcp = boost::asio::ip::tcp;

 public:
  // `small_window`: a small receive buffer, so a client that stops reading
  // backs up soon.
  // `connect`: the Socket.IO CONNECT packet to send (e.g. with an auth payload).
  explicit BlockingClient(uint16_t port, bool small_window = false,
                          const std::string& connect = "40")
      : ws_(ioc_) {
    tcp::endpoint endpoint(boost::asio::ip::make_address("127.0.0.1"), port);
    tcp::socket& socket = ws_.next_layer().socket();
    socket.open(tcp::v4());
    if (small_window) socket.set_option(boost::asio::socket_base::receive_buffer_size(16 * 1024));
    socket.set_option(tcp::no_delay(true));
    socket.connect(endpoint);
    timeval timeout{10, 0};
    setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    ws_.handshake("127.0.0.1", "/socket.io/?EIO=4&transport=websocket");
    EXPECT_EQ(Read().substr(0, 1), "0");  // Engine.IO open
    Send(connect);
    EXPECT_EQ(Read().substr(0, 2), "40");  // Socket.IO CONNECT
  }

  void Send(const std::string& text) {
    ws_.text(true);
    ws_.write(boost::asio::buffer(text));
  }

  // The next message that is not a ping (pings are answered).
  std::string Read() {
    for (;;) {
      boost::beast::flat_buffer buffer;
      ws_.read(buffer);
      std::string message = boost::beast::buffers_to_string(buffer.data());
      if (message != "2") return message;
      Send("3");
    }
  }

  // Closes the WebSocket (the server sees "transport close").
  void Close() { ws_.close(boost::beast::websocket::close_code::normal); }

  // Emits with an ack and waits for it.
  void Call(const std::string& event_json_array) {
    Send("421" + event_json_array);
    while (Read().rfind("431", 0) != 0) {
    }
  }

 private:
  boost::asio::io_context ioc_;
  boost::beast::websocket::stream<RetryingSocket> ws_;
};

}  // namespace switchboard::testing_support
