// The fixture server that the official Engine.IO v4 and Socket.IO v5
// language-neutral test suites expect (see the "Test suite" sections of the
// two protocol specs): a raw Engine.IO echo server at /engine.io/ and a
// Socket.IO server at /socket.io/, both built on the edge library.
#include <CLI/CLI.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <iostream>

#include "edge/engineio/server.h"
#include "edge/http/server.h"
#include "edge/runtime.h"
#include "edge/socketio/server.h"

using namespace switchboard;

int main(int argc, char** argv) {
  CLI::App app{"Switchboard conformance fixture for the Engine.IO / Socket.IO test suites"};
  uint16_t port = 3000;
  std::string listen;
  unsigned threads = 2;
  app.add_option("--port", port, "Port on 127.0.0.1");
  app.add_option("--listen", listen, "HOST:PORT (overrides --port)");
  app.add_option("--threads", threads, "I/O threads");
  CLI11_PARSE(app, argc, argv);

  edge::HttpOptions http_options;
  http_options.port = port;
  if (!listen.empty()) {
    auto colon = listen.rfind(':');
    if (colon == std::string::npos) {
      std::cerr << "--listen takes HOST:PORT\n";
      return 2;
    }
    http_options.host = listen.substr(0, colon);
    http_options.port = static_cast<uint16_t>(std::stoi(listen.substr(colon + 1)));
  }

  eio::Options engine_options;
  engine_options.ping_interval = std::chrono::milliseconds(300);
  engine_options.ping_timeout = std::chrono::milliseconds(200);
  engine_options.max_http_buffer_size = 1'000'000;
  engine_options.cors.origins = {"*"};

  edge::Runtime runtime(threads);
  edge::HttpServer http(runtime, http_options);

  // Raw Engine.IO: every message is echoed back as it came.
  eio::Server echo(runtime, engine_options);
  echo.OnConnection([](const eio::SessionPtr& session) {
    std::weak_ptr<eio::Session> weak = session;
    session->OnMessage([weak](eio::Packet&& packet) {
      auto s = weak.lock();
      if (!s) return;
      s->Send(packet.binary ? eio::MakeBinaryFrame(packet.data)
                            : eio::MakeTextFrame(eio::PacketType::kMessage, packet.data));
    });
  });
  http.Mount("/engine.io/", echo);

  sio::ServerOptions sio_options;
  sio_options.connect_timeout = std::chrono::milliseconds(1000);
  sio::Server io(runtime, engine_options, sio_options);
  for (const char* name : {"/", "/custom"}) {
    sio::Namespace& nsp = io.Of(name);
    nsp.OnConnection([](const sio::SocketPtr& socket) {
      socket->Emit("auth", sio::Json::array({socket->auth()}));
    });
    nsp.On("message", [](const sio::SocketPtr& socket, std::string_view, sio::Json& args,
                         sio::Ack) { socket->Emit("message-back", std::move(args)); });
    nsp.On("message-with-ack", [](const sio::SocketPtr&, std::string_view, sio::Json& args,
                                  sio::Ack ack) {
      if (ack) ack(std::move(args));
    });
  }
  http.Mount("/socket.io/", io.engine());

  if (auto status = http.Listen(); !status.ok()) {
    std::cerr << status.message() << "\n";
    return 1;
  }
  boost::asio::signal_set signals(runtime.context(0), SIGINT, SIGTERM);
  boost::asio::steady_timer stop_timer(runtime.context(0));
  signals.async_wait([&](boost::system::error_code ec, int) {
    if (ec) return;
    http.Close();
    echo.CloseAll();
    io.engine().CloseAll();
    stop_timer.expires_after(std::chrono::milliseconds(300));
    stop_timer.async_wait([&](boost::system::error_code) { runtime.Stop(); });
  });
  std::cout << "sb-conformance-fixture listening on http://" << http_options.host << ":"
            << http.port() << std::endl;
  runtime.Start();
  runtime.Join();
  return 0;
}
