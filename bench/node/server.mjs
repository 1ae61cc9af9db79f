// The reference server of the benchmark suite: socket.io 4.8 with the same publish path the
// floor server offers — POST /publish {"room", "event", "payload"} does io.to(room).emit(event,
// payload) — a "join" event (join the room, ack {ok: true}) and an "echo" event (ack with the
// argument). With --redis URL it uses @socket.io/redis-adapter (the multi-node case).
//
//   node server.mjs [--listen 127.0.0.1:0] [--redis redis://127.0.0.1:6379]
// prints "listening on http://HOST:PORT" once it accepts connections.

import http from "node:http";
import { parseArgs } from "node:util";
import { Server } from "socket.io";

const { values } = parseArgs({
  options: { listen: { type: "string", default: "127.0.0.1:0" }, redis: { type: "string" } },
});
const [host, port] = [values.listen.slice(0, values.listen.lastIndexOf(":")),
  Number(values.listen.slice(values.listen.lastIndexOf(":") + 1))];

const httpServer = http.createServer((req, res) => {
  if (req.method !== "POST" || req.url !== "/publish") {
    res.writeHead(404, { "Content-Length": 0 }).end();
    return;
  }
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString());
    } catch {
      res.writeHead(400, { "Content-Length": 0 }).end();
      return;
    }
    io.to(body.room).emit(body.event, body.payload);
    res.writeHead(200, { "Content-Type": "application/json", "Content-Length": 11 }).end('{"ok":true}');
  });
});
// Same long ping interval as the Switchboard bench config: pings must not disturb the figures.
const io = new Server(httpServer, { pingInterval: 300000, pingTimeout: 60000, transports: ["polling", "websocket"] });

if (values.redis) {
  const { createClient } = await import("redis");
  const { createAdapter } = await import("@socket.io/redis-adapter");
  const pub = createClient({ url: values.redis });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  io.adapter(createAdapter(pub, sub));
}

io.on("connection", (socket) => {
  socket.on("join", (room, ack) => {
    socket.join(typeof room === "string" ? room : room?.room);
    if (typeof ack === "function") ack({ ok: true });
  });
  socket.on("echo", (arg, ack) => {
    if (typeof ack === "function") ack(arg);
  });
});

httpServer.listen(port, host, () => {
  const a = httpServer.address();
  console.log(`listening on http://${a.address}:${a.port}`);
});
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
