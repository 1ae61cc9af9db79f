// In-process protocol test harness: a Switchboard server on a free port
// (the endpoints of services/conformance_fixture.cc plus a few extra ones)
// and small blocking HTTP / WebSocket clients built on Beast. Every wait is
// bounded, so a broken server fails a test instead of hanging it.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "edge/engineio/server.h"
#include "edge/http/server.h"
#include "edge/runtime.h"
#include "edge/socketio/server.h"

namespace switchboard::protocol_test {

// The longest a test waits for any single reply.
inline constexpr std::chrono::milliseconds kWait{3000};

// Heartbeat of the conformance endpoints (/engine.io/, /socket.io/), as the
// official test suites expect.
inline constexpr std::chrono::milliseconds kPingInterval{300};
inline constexpr std::chrono::milliseconds kPingTimeout{200};

using Headers = std::vector<std::pair<std::string, std::string>>;

// ---------------------------------------------------------------- HTTP --

struct HttpResult {
  int status = 0;  // 0: no response (refused, reset or timed out)
  std::string body;
  std::map<std::string, std::string> headers;  // names in lower case

  // The header's value, "" when absent. `name` is case-insensitive.
  std::string Header(std::string_view name) const;
};

// One HTTP/1.1 exchange over its own connection, split in two so that a
// test can leave a request pending (a long-poll GET) while it does
// something else, or abort it.
class HttpConnection {
 public:
  explicit HttpConnection(uint16_t port);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  bool connected() const { return connected_; }
  // Writes the request ("Connection: close"). False if it could not.
  bool Send(boost::beast::http::verb method, std::string_view target, std::string body = {},
            const Headers& headers = {});
  // Reads the response, waiting at most `timeout`.
  HttpResult Receive(std::chrono::milliseconds timeout = kWait);
  // Closes the socket without reading the response.
  void Abort();

 private:
  // Runs the io_context until `done` or the deadline.
  void RunUntil(const bool& done, std::chrono::milliseconds timeout);

  uint16_t port_;
  boost::asio::io_context ioc_;
  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  bool connected_ = false;
};

// Sends one request over a fresh connection and reads the response.
HttpResult HttpExchange(uint16_t port, boost::beast::http::verb method, std::string_view target,
                        std::string body = {}, const Headers& headers = {});

// ----------------------------------------------------------- WebSocket --

struct WsMessage {
  enum class Kind { kText, kBinary, kClosed, kTimeout };
  Kind kind = Kind::kTimeout;
  std::string data;

  static WsMessage Text(std::string data) { return {Kind::kText, std::move(data)}; }
  static WsMessage Binary(std::string data) { return {Kind::kBinary, std::move(data)}; }
  static WsMessage Closed() { return {Kind::kClosed, {}}; }
  static WsMessage Timeout() { return {Kind::kTimeout, {}}; }

  bool operator==(const WsMessage&) const = default;
};
void PrintTo(const WsMessage& message, std::ostream* os);

// Escapes control and non-ASCII bytes, for readable failure messages.
std::string Printable(std::string_view bytes);

// A WebSocket client with its own I/O thread: frames are read as they come
// and queued for Read(). With auto-pong on, an Engine.IO ping ("2") is
// answered ("3") at once on that thread and never queued, so a slow test
// cannot trip the server's short ping timeout.
class WsClient {
 public:
  WsClient();
  ~WsClient();
  WsClient(const WsClient&) = delete;
  WsClient& operator=(const WsClient&) = delete;

  // Connects and performs the upgrade. Returns the HTTP status of the
  // server's answer: 101 on success, 0 when there was none.
  int Connect(uint16_t port, std::string target);

  void set_auto_pong(bool on) { auto_pong_ = on; }

  // Queue a text / binary frame; frames go out in call order.
  void Send(std::string text);
  void SendBinary(std::string bytes);

  // The next frame, Closed() once the connection has ended (after every
  // frame received before that), Timeout() after `timeout`.
  WsMessage Read(std::chrono::milliseconds timeout = kWait);
  // Like Read, but answers and skips pings (for when auto-pong is off).
  WsMessage ReadSkippingPings(std::chrono::milliseconds timeout = kWait);

  // Starts the closing handshake.
  void Close();

 private:
  void Write(std::string data, bool binary);
  void DoRead();
  void DoWrite();
  void Push(WsMessage message);

  boost::asio::io_context ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  boost::beast::websocket::stream<boost::beast::tcp_stream> ws_;
  std::thread thread_;
  std::atomic<bool> auto_pong_{true};

  // I/O thread only.
  boost::beast::flat_buffer read_buffer_;
  std::deque<std::pair<std::string, bool>> writes_;
  bool writing_ = false;
  bool open_ = false;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<WsMessage> inbox_;
  bool closed_ = false;
};

// ------------------------------------------------------------- fixture --

// Starts, for each test, a 2-thread Runtime and an HttpServer on
// 127.0.0.1:<free port> serving:
//   /engine.io/  Engine.IO echo server, conformance settings: pingInterval
//                300, pingTimeout 200, maxHttpBufferSize 1e6, CORS "*".
//   /socket.io/  Socket.IO server, same engine settings, connectTimeout
//                1000; namespaces "/", "/custom" (conformance handlers plus
//                the test events below) and "/private" (with middleware).
//   /eio-calm/   the echo server with a 60 s heartbeat, for tests whose
//                outcome a heartbeat could otherwise change.
//   /sio-calm/   the Socket.IO server with a 60 s heartbeat.
//   /small/      the echo server with maxHttpBufferSize 100 (60 s heartbeat).
//
// Events handled on every Socket.IO namespace but "/private":
//   "message"          -> emits "message-back" with the same arguments
//   "message-with-ack" -> acks with the same arguments
//   "sync"             -> acks [] (a barrier for the client)
//   "1" (or 1)         -> acks [event name, [args...]]
//   "join"  [room]     -> joins the room, acks []
//   "shout" [rooms, except_rooms, text]
//                      -> nsp.To(each room).Except(each except room)
//                         .Emit("shouted", [text]), acks []
//   "others" [text]    -> socket.broadcast().Emit("from-other", [text]), acks []
//   "ask" [timeout_ms, args...]
//                      -> EmitWithAck("question", [args...], timeout_ms); then
//                         emits "answer" with the client's ack arguments, or
//                         "no-answer" [status code name] on failure.
// On connection every namespace emits "auth" [the CONNECT auth payload].
// "/private"'s middleware rejects auth {"token":"bad"} with
// ConnectError{"not authorized", {"code":"E_AUTH"}}, {"token":"plain"} with
// ConnectError{"go away"} (no data), and accepts {"token":"later"} from a
// later turn of the event loop.
class ProtocolTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  uint16_t port() const { return port_; }

  HttpResult HttpGet(std::string_view target, const Headers& headers = {});
  HttpResult HttpPost(std::string_view target, std::string body, const Headers& headers = {});
  HttpResult HttpRequest(boost::beast::http::verb method, std::string_view target,
                         std::string body = {}, const Headers& headers = {});
  // A GET whose response is read later (or never).
  std::unique_ptr<HttpConnection> StartGet(std::string_view target);

  // A connected WebSocket; nullptr (with a test failure) if the upgrade
  // was refused.
  std::unique_ptr<WsClient> ConnectWs(std::string_view target, bool auto_pong = true);

  // Opens a polling session on `mount` (e.g. "/engine.io/"); returns the
  // open packet's JSON text (after the '0'), "" with a test failure on error.
  std::string OpenPolling(std::string_view mount, std::string* sid);

  // Polls `condition` until it holds or `timeout` passes.
  static bool WaitUntil(const std::function<bool()>& condition,
                        std::chrono::milliseconds timeout = kWait);

  // Engine.IO sessions on the WebSocket transport still alive on the echo
  // servers (asked on each session's shard).
  size_t LiveEchoWebSockets();

  std::unique_ptr<edge::Runtime> runtime_;
  std::unique_ptr<edge::HttpServer> http_;
  std::unique_ptr<eio::Server> echo_;
  std::unique_ptr<eio::Server> calm_echo_;
  std::unique_ptr<eio::Server> small_echo_;
  std::unique_ptr<sio::Server> io_;
  std::unique_ptr<sio::Server> calm_io_;

 private:
  void Echo(eio::Server& server);

  uint16_t port_ = 0;
  // Every session of the echo servers, to wait for the end of those that
  // hold their transport in a reference cycle before the runtime stops.
  struct Tracked {
    std::weak_ptr<eio::Session> session;
    size_t shard;
  };
  std::mutex tracked_mu_;
  std::vector<Tracked> tracked_;
};

// "/engine.io/?EIO=4&transport=polling&sid=<sid>" and friends.
std::string PollingUrl(std::string_view mount, std::string_view sid = {});
std::string WebSocketUrl(std::string_view mount, std::string_view sid = {});

}  // namespace switchboard::protocol_test
