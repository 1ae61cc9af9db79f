#include "tests/edge/protocol_fixture.h"

#include <absl/status/status.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <cctype>
#include <cstdio>
#include <future>
#include <optional>

namespace switchboard::protocol_test {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;

namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

tcp::endpoint Loopback(uint16_t port) { return {net::ip::make_address("127.0.0.1"), port}; }

}  // namespace

std::string HttpResult::Header(std::string_view name) const {
  auto it = headers.find(Lower(name));
  return it == headers.end() ? std::string() : it->second;
}

std::string Printable(std::string_view bytes) {
  std::string out;
  for (unsigned char c : bytes) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

void PrintTo(const WsMessage& message, std::ostream* os) {
  switch (message.kind) {
    case WsMessage::Kind::kText:
      *os << "Text(\"" << Printable(message.data) << "\")";
      return;
    case WsMessage::Kind::kBinary:
      *os << "Binary(\"" << Printable(message.data) << "\")";
      return;
    case WsMessage::Kind::kClosed:
      *os << "Closed()";
      return;
    case WsMessage::Kind::kTimeout:
      *os << "Timeout()";
      return;
  }
}

std::string PollingUrl(std::string_view mount, std::string_view sid) {
  std::string url = std::string(mount) + "?EIO=4&transport=polling";
  if (!sid.empty()) url += "&sid=" + std::string(sid);
  return url;
}

std::string WebSocketUrl(std::string_view mount, std::string_view sid) {
  std::string url = std::string(mount) + "?EIO=4&transport=websocket";
  if (!sid.empty()) url += "&sid=" + std::string(sid);
  return url;
}

// ------------------------------------------------------ HttpConnection --

HttpConnection::HttpConnection(uint16_t port) : port_(port), stream_(ioc_) {
  bool done = false;
  beast::error_code result;
  stream_.expires_after(kWait);
  stream_.async_connect(Loopback(port), [&](beast::error_code ec) {
    result = ec;
    done = true;
  });
  RunUntil(done, kWait);
  connected_ = done && !result;
  if (connected_) {
    beast::error_code ignored;
    stream_.socket().set_option(tcp::no_delay(true), ignored);
  }
}

HttpConnection::~HttpConnection() { Abort(); }

void HttpConnection::RunUntil(const bool& done, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout + std::chrono::seconds(1);
  ioc_.restart();
  while (!done && std::chrono::steady_clock::now() < deadline) {
    ioc_.run_one_until(deadline);
  }
  if (!done) {
    // Give up: cancel and let the handler run so that nothing refers to
    // this frame's locals afterwards.
    beast::error_code ignored;
    stream_.socket().cancel(ignored);
    stream_.socket().close(ignored);
    connected_ = false;
    ioc_.restart();
    ioc_.run();
  }
}

bool HttpConnection::Send(http::verb method, std::string_view target, std::string body,
                          const Headers& headers) {
  if (!connected_) return false;
  http::request<http::string_body> req{method, target, 11};
  req.set(http::field::host, "127.0.0.1:" + std::to_string(port_));
  req.keep_alive(false);
  for (const auto& [name, value] : headers) req.set(name, value);
  req.body() = std::move(body);
  if (req.chunked() || req.find(http::field::content_length) != req.end()) {
    // Framing given by the caller ("Transfer-Encoding: chunked": the body
    // goes out as one chunk; an explicit Content-Length, even a false one).
  } else if (method != http::verb::get && method != http::verb::options) {
    req.prepare_payload();
  } else if (!req.body().empty()) {
    req.prepare_payload();
  }
  bool done = false;
  beast::error_code result;
  stream_.expires_after(kWait);
  http::async_write(stream_, req, [&](beast::error_code ec, size_t) {
    result = ec;
    done = true;
  });
  RunUntil(done, kWait);
  return done && !result;
}

HttpResult HttpConnection::Receive(std::chrono::milliseconds timeout) {
  HttpResult out;
  if (!connected_) return out;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64u << 20);
  bool done = false;
  beast::error_code result;
  stream_.expires_after(timeout);
  http::async_read(stream_, buffer_, parser, [&](beast::error_code ec, size_t) {
    result = ec;
    done = true;
  });
  RunUntil(done, timeout);
  if (!done || result) return out;
  auto& res = parser.get();
  out.status = static_cast<int>(res.result_int());
  out.body = res.body();
  for (const auto& field : res) {
    out.headers[Lower(field.name_string())] = std::string(field.value());
  }
  return out;
}

void HttpConnection::Abort() {
  beast::error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream_.socket().close(ignored);
  connected_ = false;
}

HttpResult HttpExchange(uint16_t port, http::verb method, std::string_view target,
                        std::string body, const Headers& headers) {
  HttpConnection connection(port);
  if (!connection.Send(method, target, std::move(body), headers)) return {};
  return connection.Receive();
}

// ------------------------------------------------------------ WsClient --

WsClient::WsClient() : work_(ioc_.get_executor()), ws_(ioc_) {
  thread_ = std::thread([this] { ioc_.run(); });
}

WsClient::~WsClient() {
  net::post(ioc_, [this] {
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().shutdown(tcp::socket::shutdown_both, ignored);
    beast::get_lowest_layer(ws_).socket().close(ignored);
    // Whatever is still pending is abandoned (destroyed with ioc_).
    ioc_.stop();
  });
  work_.reset();
  thread_.join();
}

int WsClient::Connect(uint16_t port, std::string target) {
  auto promise = std::make_shared<std::promise<int>>();
  auto future = promise->get_future();
  auto response = std::make_shared<websocket::response_type>();
  net::post(ioc_, [this, port, target = std::move(target), promise, response] {
    auto& tcp_layer = beast::get_lowest_layer(ws_);
    tcp_layer.expires_after(kWait);
    tcp_layer.async_connect(Loopback(port), [this, port, target, promise,
                                             response](beast::error_code ec) {
      if (ec) return promise->set_value(0);
      beast::get_lowest_layer(ws_).expires_never();
      beast::error_code ignored;
      beast::get_lowest_layer(ws_).socket().set_option(tcp::no_delay(true), ignored);
      // No Beast timers: Connect bounds the handshake itself.
      websocket::stream_base::timeout timeouts{};
      timeouts.handshake_timeout = websocket::stream_base::none();
      timeouts.idle_timeout = websocket::stream_base::none();
      timeouts.keep_alive_pings = false;
      ws_.set_option(timeouts);
      ws_.async_handshake(*response, "127.0.0.1:" + std::to_string(port), target,
                          [this, promise, response](beast::error_code ec) {
                            if (ec) return promise->set_value(response->result_int());
                            open_ = true;
                            promise->set_value(101);
                            DoRead();
                          });
    });
  });
  if (future.wait_for(kWait) != std::future_status::ready) {
    net::post(ioc_, [this] {
      beast::error_code ignored;
      beast::get_lowest_layer(ws_).socket().close(ignored);
    });
    return 0;
  }
  return future.get();
}

void WsClient::DoRead() {
  ws_.async_read(read_buffer_, [this](beast::error_code ec, size_t) {
    if (ec) {
      // A write in flight keeps its buffer; DoWrite starts no new one.
      open_ = false;
      std::lock_guard lock(mu_);
      closed_ = true;
      cv_.notify_all();
      return;
    }
    std::string data = beast::buffers_to_string(read_buffer_.data());
    read_buffer_.consume(read_buffer_.size());
    bool text = ws_.got_text();
    if (text && data == "2" && auto_pong_) {
      writes_.emplace_back("3", false);
      DoWrite();
    } else {
      Push(text ? WsMessage::Text(std::move(data)) : WsMessage::Binary(std::move(data)));
    }
    DoRead();
  });
}

void WsClient::Push(WsMessage message) {
  std::lock_guard lock(mu_);
  inbox_.push_back(std::move(message));
  cv_.notify_all();
}

void WsClient::Write(std::string data, bool binary) {
  net::post(ioc_, [this, data = std::move(data), binary]() mutable {
    if (!open_) return;
    writes_.emplace_back(std::move(data), binary);
    DoWrite();
  });
}

void WsClient::DoWrite() {
  if (writing_ || writes_.empty() || !open_) return;
  writing_ = true;
  ws_.binary(writes_.front().second);
  ws_.async_write(net::buffer(writes_.front().first), [this](beast::error_code ec, size_t) {
    writing_ = false;
    if (ec) {
      writes_.clear();
      return;
    }
    if (!writes_.empty()) writes_.pop_front();
    DoWrite();
  });
}

void WsClient::Send(std::string text) { Write(std::move(text), false); }
void WsClient::SendBinary(std::string bytes) { Write(std::move(bytes), true); }

WsMessage WsClient::Read(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  if (!cv_.wait_for(lock, timeout, [this] { return !inbox_.empty() || closed_; })) {
    return WsMessage::Timeout();
  }
  if (inbox_.empty()) return WsMessage::Closed();
  WsMessage message = std::move(inbox_.front());
  inbox_.pop_front();
  return message;
}

WsMessage WsClient::ReadSkippingPings(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    WsMessage message = Read(std::max(left, std::chrono::milliseconds(0)));
    if (message != WsMessage::Text("2")) return message;
    Send("3");
  }
}

void WsClient::Close() {
  net::post(ioc_, [this] {
    if (!open_) return;
    open_ = false;
    ws_.async_close(websocket::close_code::normal, [](beast::error_code) {});
  });
}

// ------------------------------------------------------------- fixture --

namespace {

eio::Options EngineOptions(bool calm) {
  eio::Options options;
  options.ping_interval = calm ? std::chrono::milliseconds(60000) : kPingInterval;
  options.ping_timeout = calm ? std::chrono::milliseconds(60000) : kPingTimeout;
  options.max_http_buffer_size = 1'000'000;
  options.cors.origins = {"*"};
  return options;
}

void AckEmpty(const sio::Ack& ack) {
  if (ack) ack(sio::Json::array());
}

void AddHandlers(sio::Namespace& nsp) {
  nsp.OnConnection([](const sio::SocketPtr& socket) {
    socket->Emit("auth", sio::Json::array({socket->auth()}));
  });
  nsp.On("message", [](const sio::SocketPtr& socket, std::string_view, sio::Json& args,
                       sio::Ack) { socket->Emit("message-back", std::move(args)); });
  nsp.On("message-with-ack",
         [](const sio::SocketPtr&, std::string_view, sio::Json& args, sio::Ack ack) {
           if (ack) ack(std::move(args));
         });
  nsp.On("sync", [](const sio::SocketPtr&, std::string_view, sio::Json&, sio::Ack ack) {
    AckEmpty(ack);
  });
  // Where a numeric event name 1 arrives.
  nsp.On("1", [](const sio::SocketPtr&, std::string_view event, sio::Json& args, sio::Ack ack) {
    if (ack) ack(sio::Json::array({event, std::move(args)}));
  });
  nsp.On("join", [](const sio::SocketPtr& socket, std::string_view, sio::Json& args,
                    sio::Ack ack) {
    socket->Join(args.at(0).get<std::string>());
    AckEmpty(ack);
  });
  nsp.On("shout", [](const sio::SocketPtr& socket, std::string_view, sio::Json& args,
                     sio::Ack ack) {
    sio::Broadcast broadcast(socket->nsp());
    for (const auto& room : args.at(0)) broadcast.To(room.get<std::string>());
    for (const auto& room : args.at(1)) broadcast.Except(room.get<std::string>());
    broadcast.Emit("shouted", sio::Json::array({args.at(2)}));
    AckEmpty(ack);
  });
  nsp.On("others", [](const sio::SocketPtr& socket, std::string_view, sio::Json& args,
                      sio::Ack ack) {
    socket->broadcast().Emit("from-other", sio::Json::array({args.at(0)}));
    AckEmpty(ack);
  });
  nsp.On("ask", [](const sio::SocketPtr& socket, std::string_view, sio::Json& args, sio::Ack) {
    auto timeout = std::chrono::milliseconds(args.at(0).get<int64_t>());
    args.erase(args.begin());
    std::weak_ptr<sio::Socket> weak = socket;
    socket->EmitWithAck("question", std::move(args), timeout,
                        [weak](absl::StatusOr<sio::Json> reply) {
                          auto self = weak.lock();
                          if (!self) return;
                          if (reply.ok()) {
                            self->Emit("answer", std::move(*reply));
                          } else {
                            self->Emit("no-answer",
                                       sio::Json::array({absl::StatusCodeToString(
                                           reply.status().code())}));
                          }
                        });
  });
}

void AddPrivate(sio::Server& io) {
  sio::Namespace& nsp = io.Of("/private");
  nsp.Use([&io](const sio::SocketPtr& socket, sio::Next next) {
    const sio::Json& auth = socket->auth();
    std::string token = auth.is_object() && auth.contains("token") && auth["token"].is_string()
                            ? auth["token"].get<std::string>()
                            : std::string();
    if (token == "bad") {
      return next(sio::ConnectError{"not authorized", sio::Json{{"code", "E_AUTH"}}});
    }
    if (token == "plain") return next(sio::ConnectError{"go away", nullptr});
    if (token == "later") {
      int shard = edge::Runtime::CurrentShard();
      io.runtime().Post(static_cast<size_t>(shard), [next] { next(std::nullopt); });
      return;
    }
    next(std::nullopt);
  });
  nsp.OnConnection([](const sio::SocketPtr& socket) {
    socket->Emit("auth", sio::Json::array({socket->auth()}));
  });
}

std::unique_ptr<sio::Server> MakeSocketIo(edge::Runtime& runtime, bool calm) {
  sio::ServerOptions options;
  options.connect_timeout = std::chrono::milliseconds(1000);
  auto io = std::make_unique<sio::Server>(runtime, EngineOptions(calm), options);
  AddHandlers(io->Of("/"));
  AddHandlers(io->Of("/custom"));
  AddPrivate(*io);
  return io;
}

}  // namespace

void ProtocolTest::SetUp() {
  runtime_ = std::make_unique<edge::Runtime>(2);
  edge::HttpOptions http_options;
  http_options.host = "127.0.0.1";
  http_options.port = 0;
  http_ = std::make_unique<edge::HttpServer>(*runtime_, http_options);

  echo_ = std::make_unique<eio::Server>(*runtime_, EngineOptions(false));
  Echo(*echo_);
  calm_echo_ = std::make_unique<eio::Server>(*runtime_, EngineOptions(true));
  Echo(*calm_echo_);
  eio::Options small = EngineOptions(true);
  small.max_http_buffer_size = 100;
  small_echo_ = std::make_unique<eio::Server>(*runtime_, small);
  Echo(*small_echo_);
  io_ = MakeSocketIo(*runtime_, false);
  calm_io_ = MakeSocketIo(*runtime_, true);

  http_->Mount("/engine.io/", *echo_);
  http_->Mount("/socket.io/", io_->engine());
  http_->Mount("/eio-calm/", *calm_echo_);
  http_->Mount("/sio-calm/", calm_io_->engine());
  http_->Mount("/small/", *small_echo_);
  absl::Status status = http_->Listen();
  ASSERT_TRUE(status.ok()) << status;
  port_ = http_->port();
  ASSERT_NE(port_, 0);
  runtime_->Start();
}

void ProtocolTest::Echo(eio::Server& server) {
  server.OnConnection([this](const eio::SessionPtr& session) {
    {
      std::lock_guard lock(tracked_mu_);
      tracked_.push_back({session, session->shard()});
    }
    std::weak_ptr<eio::Session> weak = session;
    session->OnMessage([weak](eio::Packet&& packet) {
      auto s = weak.lock();
      if (!s) return;
      s->Send(packet.binary ? eio::MakeBinaryFrame(packet.data)
                            : eio::MakeTextFrame(eio::PacketType::kMessage, packet.data));
    });
  });
}

size_t ProtocolTest::LiveEchoWebSockets() {
  std::vector<Tracked> tracked;
  {
    std::lock_guard lock(tracked_mu_);
    tracked = tracked_;
  }
  size_t live = 0;
  for (const Tracked& entry : tracked) {
    if (entry.session.expired()) continue;
    auto answer = std::make_shared<std::promise<bool>>();
    auto future = answer->get_future();
    runtime_->Post(entry.shard, [weak = entry.session, answer] {
      auto session = weak.lock();
      answer->set_value(session && session->transport_name() == "websocket");
    });
    if (future.wait_for(kWait) != std::future_status::ready || future.get()) ++live;
  }
  return live;
}

void ProtocolTest::TearDown() {
  if (runtime_ && io_ && calm_io_) {
    // A session still open when the runtime stops is never freed (its
    // transport, or its Socket.IO client, and it refer to each other).
    // Clients are gone by now, so their sessions are ending: let them.
    // Tests close the polling sessions they leave on the Socket.IO servers.
    bool quiet = WaitUntil([&] {
      return io_->engine().SessionCount() == 0 && calm_io_->engine().SessionCount() == 0 &&
             LiveEchoWebSockets() == 0;
    });
    EXPECT_TRUE(quiet) << "sessions still open after their clients left: /socket.io/ "
                       << io_->engine().SessionCount() << ", /sio-calm/ "
                       << calm_io_->engine().SessionCount() << ", echo WebSockets "
                       << LiveEchoWebSockets();
  }
  if (runtime_) {
    // Close what tests left open, and WebSocket sessions the wait above could
    // not see yet (the open packet goes out before the connection handler).
    std::vector<eio::Server*> engines;
    for (eio::Server* engine : {echo_.get(), calm_echo_.get(), small_echo_.get()}) {
      if (engine) engines.push_back(engine);
    }
    for (sio::Server* io : {io_.get(), calm_io_.get()}) {
      if (io) engines.push_back(&io->engine());
    }
    for (eio::Server* engine : engines) {
      auto closed = std::make_shared<std::promise<void>>();
      auto future = closed->get_future();
      engine->CloseAll([closed] { closed->set_value(); });
      future.wait_for(kWait);
    }
    // Closed polling sessions wait for a GET that never comes; they hold no
    // cycle and go with their server. WebSocket ones end on their own.
    EXPECT_TRUE(WaitUntil([&] { return LiveEchoWebSockets() == 0; }))
        << "WebSocket sessions still open after CloseAll";
    runtime_->Stop();
    runtime_->Join();
  }
  calm_io_.reset();
  io_.reset();
  small_echo_.reset();
  calm_echo_.reset();
  echo_.reset();
  http_.reset();
  runtime_.reset();
}

HttpResult ProtocolTest::HttpGet(std::string_view target, const Headers& headers) {
  return HttpExchange(port_, http::verb::get, target, {}, headers);
}

HttpResult ProtocolTest::HttpPost(std::string_view target, std::string body,
                                  const Headers& headers) {
  return HttpExchange(port_, http::verb::post, target, std::move(body), headers);
}

HttpResult ProtocolTest::HttpRequest(http::verb method, std::string_view target,
                                     std::string body, const Headers& headers) {
  return HttpExchange(port_, method, target, std::move(body), headers);
}

std::unique_ptr<HttpConnection> ProtocolTest::StartGet(std::string_view target) {
  auto connection = std::make_unique<HttpConnection>(port_);
  EXPECT_TRUE(connection->Send(http::verb::get, target)) << "GET " << target;
  return connection;
}

std::unique_ptr<WsClient> ProtocolTest::ConnectWs(std::string_view target, bool auto_pong) {
  auto ws = std::make_unique<WsClient>();
  ws->set_auto_pong(auto_pong);
  int status = ws->Connect(port_, std::string(target));
  if (status != 101) {
    ADD_FAILURE() << "WebSocket upgrade of " << target << " answered " << status;
    return nullptr;
  }
  return ws;
}

std::string ProtocolTest::OpenPolling(std::string_view mount, std::string* sid) {
  HttpResult res = HttpGet(PollingUrl(mount));
  if (res.status != 200 || res.body.empty() || res.body[0] != '0') {
    ADD_FAILURE() << "polling handshake on " << mount << ": " << res.status << " "
                  << Printable(res.body);
    return {};
  }
  std::string json = res.body.substr(1);
  auto parsed = sio::Json::parse(json, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object() || !parsed.contains("sid") ||
      !parsed["sid"].is_string()) {
    ADD_FAILURE() << "bad open packet " << Printable(res.body);
    return {};
  }
  if (sid != nullptr) *sid = parsed["sid"].get<std::string>();
  return json;
}

bool ProtocolTest::WaitUntil(const std::function<bool()>& condition,
                             std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

}  // namespace switchboard::protocol_test
