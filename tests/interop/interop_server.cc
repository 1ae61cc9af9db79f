// sb-interop-server: a Socket.IO server built on the edge library, with the
// namespaces and events that the interop tests (tests/interop/*.test.mjs,
// *_test.py) drive from the official clients.
//
//   sb-interop-server --listen HOST:PORT [--threads N] [--max-http-buffer-size B]
//                     [--ping-interval MS] [--ping-timeout MS]
//
// Prints "listening on http://HOST:PORT" once it accepts connections; exits
// 0 on SIGTERM / SIGINT.
//
// Namespace "/":
//   middleware  auth {token:"bad"}  -> CONNECT_ERROR {"not authorized", {"code":"E_AUTH"}}
//               auth {token:"slow"} -> accepted after 50 ms (asynchronous Next)
//   on connect  emit "hello" {id, nsp, auth}
// Namespace "/admin":
//   middleware  auth.role != "admin" -> CONNECT_ERROR {"admin only"} (no data)
//   on connect  emit "hello" {id, nsp, auth}; auth.observe == true joins room
//               "observers", which gets "left" {id, nsp, reason} whenever a
//               socket of "/" disconnects.
// Events (both namespaces):
//   "echo" ...args          ack(args) when asked, else emit "echo" args back
//   "whoami"                ack {id, nsp, transport, auth}
//   "server-ack" {args, timeoutMs}
//                           EmitWithAck("ask", args, timeoutMs); then emit
//                           "server-ack-result" {ok:true, args:<client's ack args>}
//                           or {ok:false, code:"DEADLINE_EXCEEDED"|...}
//   "join" room / "leave" room   ack(sorted rooms except the socket's own id)
//   "rooms"                 ack(sorted rooms except own id)
//   "to-room" {room, msg}   nsp.To(room).Emit("room-msg", {room, msg, from}); ack(true)
//   "to-room-except" {room, except, msg}
//                           nsp.To(room).Except(except).Emit("room-msg", ...); ack(true)
//   "broadcast-except-sender" {msg[, room]}
//                           socket.broadcast()[.To(room)].Emit("broadcast", {msg, from}); ack(true)
//   "to-all" {msg}          nsp.Emit("all", {msg, from}); ack(true)
//   "to-socket" {id, msg}   nsp.To(id).Emit("direct", {msg, from}); ack(true)
//   "kick"                  socket.Disconnect()
//   "kick-close"            socket.Disconnect(true)
//   anything else           ack(["unknown", event]) when asked (OnAnyEvent)

#include <CLI/CLI.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "edge/http/server.h"
#include "edge/runtime.h"
#include "edge/socketio/namespace.h"
#include "edge/socketio/server.h"
#include "edge/socketio/socket.h"

namespace {

using switchboard::edge::HttpOptions;
using switchboard::edge::HttpServer;
using switchboard::edge::Runtime;
using switchboard::sio::Ack;
using switchboard::sio::ConnectError;
using switchboard::sio::Json;
using switchboard::sio::Namespace;
using switchboard::sio::Next;
using switchboard::sio::SocketPtr;
namespace sio = switchboard::sio;
namespace eio = switchboard::eio;

// Splits "host:port" / "[v6]:port".
bool ParseListen(const std::string& spec, std::string& host, uint16_t& port) {
  const auto colon = spec.rfind(':');
  if (colon == std::string::npos || colon + 1 == spec.size()) return false;
  host = spec.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  try {
    const unsigned long value = std::stoul(spec.substr(colon + 1));
    if (value > 65535) return false;
    port = static_cast<uint16_t>(value);
  } catch (...) {
    return false;
  }
  return !host.empty();
}

const Json* Field(const Json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

std::string StringField(const Json& obj, const char* key) {
  const Json* v = Field(obj, key);
  return v && v->is_string() ? v->get<std::string>() : std::string();
}

// A copy of obj[key], null when absent.
Json Get(const Json& obj, const char* key) {
  const Json* v = Field(obj, key);
  return v ? *v : Json();
}

Json FirstArg(const Json& args) {
  return args.is_array() && !args.empty() ? args[0] : Json();
}

Json RoomsOf(const sio::Socket& socket) {
  std::vector<std::string> rooms;
  for (const auto& room : socket.rooms()) {
    if (room != socket.id()) rooms.push_back(room);
  }
  std::sort(rooms.begin(), rooms.end());
  Json out = Json::array();
  for (auto& room : rooms) out.push_back(std::move(room));
  return out;
}

void AckIf(const Ack& ack, Json args) {
  if (ack) ack(std::move(args));
}

Json Hello(const SocketPtr& socket) {
  Json hello = Json::object();
  hello["id"] = socket->id();
  hello["nsp"] = socket->nsp().name();
  hello["auth"] = socket->auth();
  return Json::array({hello});
}

// Events common to every namespace.
void AddCommonEvents(Namespace& nsp) {
  nsp.On("echo", [](const SocketPtr& socket, std::string_view, Json& args, Ack ack) {
    if (ack) {
      ack(args);
    } else {
      socket->Emit("echo", args);
    }
  });

  nsp.On("whoami", [](const SocketPtr& socket, std::string_view, Json&, Ack ack) {
    Json me = Json::object();
    me["id"] = socket->id();
    me["nsp"] = socket->nsp().name();
    me["transport"] = std::string(socket->transport());
    me["auth"] = socket->auth();
    AckIf(ack, Json::array({me}));
  });

  nsp.On("server-ack", [](const SocketPtr& socket, std::string_view, Json& args, Ack ack) {
    const Json request = FirstArg(args);
    Json ask_args = Json::array();
    if (const Json* a = Field(request, "args"); a && a->is_array()) ask_args = *a;
    int64_t timeout_ms = 2000;
    if (const Json* t = Field(request, "timeoutMs"); t && t->is_number_integer()) {
      timeout_ms = t->get<int64_t>();
    }
    std::weak_ptr<sio::Socket> weak = socket;
    socket->EmitWithAck(
        "ask", std::move(ask_args), std::chrono::milliseconds(timeout_ms),
        [weak](absl::StatusOr<Json> answer) {
          auto self = weak.lock();
          if (!self || !self->connected()) return;
          Json result = Json::object();
          if (answer.ok()) {
            result["ok"] = true;
            result["args"] = *std::move(answer);
          } else {
            result["ok"] = false;
            result["code"] = absl::StatusCodeToString(answer.status().code());
          }
          self->Emit("server-ack-result", Json::array({result}));
        });
    AckIf(ack, Json::array({true}));
  });

  nsp.On("join", [](const SocketPtr& socket, std::string_view, Json& args, Ack ack) {
    const Json room = FirstArg(args);
    if (room.is_string()) socket->Join(room.get<std::string>());
    AckIf(ack, Json::array({RoomsOf(*socket)}));
  });

  nsp.On("leave", [](const SocketPtr& socket, std::string_view, Json& args, Ack ack) {
    const Json room = FirstArg(args);
    if (room.is_string()) socket->Leave(room.get<std::string>());
    AckIf(ack, Json::array({RoomsOf(*socket)}));
  });

  nsp.On("rooms", [](const SocketPtr& socket, std::string_view, Json&, Ack ack) {
    AckIf(ack, Json::array({RoomsOf(*socket)}));
  });

  nsp.On("to-room", [&nsp](const SocketPtr& socket, std::string_view, Json& args, Ack ack) {
    const Json request = FirstArg(args);
    const std::string room = StringField(request, "room");
    Json msg = Get(request, "msg");
    Json out = Json::object();
    out["room"] = room;
    out["msg"] = std::move(msg);
    out["from"] = socket->id();
    nsp.To(room).Emit("room-msg", Json::array({out}));
    AckIf(ack, Json::array({true}));
  });

  nsp.On("to-room-except",
         [&nsp](const SocketPtr& socket, std::string_view, Json& args, Ack ack) {
           const Json request = FirstArg(args);
           const std::string room = StringField(request, "room");
           Json out = Json::object();
           out["room"] = room;
           out["msg"] = Get(request, "msg");
           out["from"] = socket->id();
           auto b = nsp.To(room);
           if (const Json* except = Field(request, "except")) {
             if (except->is_string()) {
               b.Except(except->get<std::string>());
             } else if (except->is_array()) {
               for (const auto& e : *except) {
                 if (e.is_string()) b.Except(e.get<std::string>());
               }
             }
           }
           b.Emit("room-msg", Json::array({out}));
           AckIf(ack, Json::array({true}));
         });

  nsp.On("broadcast-except-sender",
         [](const SocketPtr& socket, std::string_view, Json& args, Ack ack) {
           const Json request = FirstArg(args);
           Json out = Json::object();
           out["msg"] = Get(request, "msg");
           out["from"] = socket->id();
           auto b = socket->broadcast();
           const std::string room = StringField(request, "room");
           if (!room.empty()) b.To(room);
           b.Emit("broadcast", Json::array({out}));
           AckIf(ack, Json::array({true}));
         });

  nsp.On("to-all", [&nsp](const SocketPtr& socket, std::string_view, Json& args, Ack ack) {
    Json out = Json::object();
    out["msg"] = Get(FirstArg(args), "msg");
    out["from"] = socket->id();
    nsp.Emit("all", Json::array({out}));
    AckIf(ack, Json::array({true}));
  });

  nsp.On("to-socket", [&nsp](const SocketPtr& socket, std::string_view, Json& args, Ack ack) {
    const Json request = FirstArg(args);
    Json out = Json::object();
    out["msg"] = Get(request, "msg");
    out["from"] = socket->id();
    nsp.To(StringField(request, "id")).Emit("direct", Json::array({out}));
    AckIf(ack, Json::array({true}));
  });

  nsp.On("kick", [](const SocketPtr& socket, std::string_view, Json&, Ack) {
    socket->Disconnect(false);
  });

  nsp.On("kick-close", [](const SocketPtr& socket, std::string_view, Json&, Ack) {
    socket->Disconnect(true);
  });

  nsp.OnAnyEvent([](const SocketPtr&, std::string_view event, Json&, Ack ack) {
    AckIf(ack, Json::array({"unknown", std::string(event)}));
  });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Switchboard interop test server"};
  std::string listen = "127.0.0.1:0";
  unsigned threads = 2;
  size_t max_http_buffer_size = 1'000'000;
  int64_t ping_interval_ms = 25000;
  int64_t ping_timeout_ms = 20000;
  app.add_option("--listen", listen, "HOST:PORT to listen on (port 0: any free port)");
  app.add_option("--threads", threads, "shards (threads)")->check(CLI::Range(1u, 64u));
  app.add_option("--max-http-buffer-size", max_http_buffer_size,
                 "largest accepted message / polling body, bytes");
  app.add_option("--ping-interval", ping_interval_ms, "Engine.IO ping interval, ms");
  app.add_option("--ping-timeout", ping_timeout_ms, "Engine.IO ping timeout, ms");
  CLI11_PARSE(app, argc, argv);

  HttpOptions http_options;
  if (!ParseListen(listen, http_options.host, http_options.port)) {
    std::cerr << "sb-interop-server: bad --listen '" << listen << "' (want HOST:PORT)\n";
    return 2;
  }

  Runtime runtime(threads);

  eio::Options engine_options;
  engine_options.max_http_buffer_size = max_http_buffer_size;
  engine_options.ping_interval = std::chrono::milliseconds(ping_interval_ms);
  engine_options.ping_timeout = std::chrono::milliseconds(ping_timeout_ms);
  sio::ServerOptions server_options;
  sio::Server io(runtime, engine_options, server_options);

  Namespace& root = io.Of("/");
  Namespace& admin = io.Of("/admin");

  root.Use([](const SocketPtr& socket, Next next) {
    const std::string token = StringField(socket->auth(), "token");
    if (token == "bad") {
      next(ConnectError{"not authorized", Json{{"code", "E_AUTH"}}});
      return;
    }
    if (token == "slow") {
      // Asynchronous middleware: continue later, on the socket's shard.
      const int shard = Runtime::CurrentShard();
      auto& ctx = socket->nsp().server().runtime().context(shard < 0 ? 0 : shard);
      auto timer = std::make_shared<boost::asio::steady_timer>(ctx, std::chrono::milliseconds(50));
      timer->async_wait([timer, next](const boost::system::error_code&) { next(std::nullopt); });
      return;
    }
    next(std::nullopt);
  });
  root.OnConnection([](const SocketPtr& socket) { socket->Emit("hello", Hello(socket)); });
  root.OnDisconnect([&admin](const SocketPtr& socket, std::string_view reason) {
    Json left = Json::object();
    left["id"] = socket->id();
    left["nsp"] = socket->nsp().name();
    left["reason"] = std::string(reason);
    admin.To("observers").Emit("left", Json::array({left}));
  });
  AddCommonEvents(root);

  admin.Use([](const SocketPtr& socket, Next next) {
    if (StringField(socket->auth(), "role") != "admin") {
      next(ConnectError{"admin only", Json()});
      return;
    }
    next(std::nullopt);
  });
  admin.OnConnection([](const SocketPtr& socket) {
    if (const Json* observe = Field(socket->auth(), "observe"); observe && *observe == true) {
      socket->Join("observers");
    }
    socket->Emit("hello", Hello(socket));
  });
  AddCommonEvents(admin);

  HttpServer http(runtime, http_options);
  http.Mount("/socket.io/", io.engine());
  if (auto status = http.Listen(); !status.ok()) {
    std::cerr << "sb-interop-server: " << status << "\n";
    return 1;
  }

  boost::asio::signal_set signals(runtime.context(0), SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (ec) return;
    http.Close();
    runtime.Stop();
  });

  runtime.Start();
  std::cout << "listening on http://" << http_options.host << ":" << http.port() << std::endl;
  runtime.Join();
  return 0;
}
