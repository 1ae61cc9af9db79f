// The official socket.io-client 4.8.x against sb-interop-server (see
// interop_server.cc for what each event does), over every transport mode:
// WebSocket only, HTTP long-polling only, and polling upgraded to WebSocket.
// The server runs 2 shards, so clients land on different threads and
// broadcasts cross shards.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Manager } from "socket.io-client";

import { startServer } from "./lib/server.mjs";
import { WAIT_MS, callAll, collect, once, waitForCount, withTimeout } from "./lib/wait.mjs";


const MODES = [
  { name: "websocket", transports: ["websocket"], upgrade: false, final: "websocket" },
  { name: "polling", transports: ["polling"], upgrade: false, final: "polling" },
  { name: "polling+upgrade", transports: ["polling", "websocket"], upgrade: true, final: "websocket" },
];

// ---------------------------------------------------------------- helpers

// After this, anything the server sent `socket` before the fence was
// started has arrived: a round trip on the same connection, plus slack for
// deliveries posted from the other shard.
async function fence(...sockets) {
  for (const s of sockets) {
    assert.deepEqual(await callAll(s, "echo", "fence"), ["fence"]);
  }
  await sleep(100);
}

// Binary nodes as plain Buffers (the client returns Buffers in Node), so that
// deepStrictEqual compares content and not the kind of view.
function norm(value) {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof ArrayBuffer) return Buffer.from(value);
  if (ArrayBuffer.isView(value)) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (Array.isArray(value)) return value.map(norm);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, norm(v)]));
  }
  return value;
}

function assertBuffer(value, expected, what) {
  assert.ok(Buffer.isBuffer(value), `${what}: expected a Buffer, got ${Object.prototype.toString.call(value)}`);
  assert.deepEqual(value, Buffer.from(expected));
}

// Clients of one test; closed when the test ends.
class Clients {
  constructor(url, mode) {
    this.url = url;
    this.mode = mode;
    this.managers = [];
  }

  manager(extra = {}) {
    const m = new Manager(this.url, {
      transports: this.mode.transports,
      reconnectionDelay: 100,
      reconnectionDelayMax: 300,
      randomizationFactor: 0,
      timeout: WAIT_MS,
      ...extra,
    });
    this.managers.push(m);
    return m;
  }

  // Resolves when the engine of `m` has upgraded to WebSocket.
  static upgraded(m) {
    const engine = m.engine;
    assert.ok(engine, "manager has no engine yet");
    return withTimeout(
      new Promise((resolve, reject) => {
        engine.once("upgrade", () => resolve());
        engine.once("upgradeError", (err) => reject(new Error(`upgrade failed: ${err.message}`)));
      }),
      WAIT_MS,
      "the transport upgrade",
    ).then(() => {
      assert.equal(engine.transport.name, "websocket");
    });
  }

  // Connects a socket to `nsp` (on a new Manager unless one is given) and
  // resolves with it and the server's "hello". In upgrade mode a new
  // Manager's upgrade is awaited and checked too.
  async connect({ nsp = "/", auth, manager } = {}) {
    const m = manager ?? this.manager();
    const upgraded = !manager && this.mode.upgrade ? Clients.upgraded(m) : null;
    const socket = m.socket(nsp, auth === undefined ? {} : { auth });
    const hello = once(socket, "hello");
    await withTimeout(
      new Promise((resolve, reject) => {
        socket.once("connect", resolve);
        socket.once("connect_error", (err) => reject(new Error(`connect_error: ${err.message}`)));
      }),
      WAIT_MS,
      `connect to ${nsp}`,
    );
    const [h] = await hello;
    if (upgraded) await upgraded;
    // (On a given Manager in upgrade mode, the caller awaits the upgrade.)
    if (!(manager && this.mode.upgrade)) assert.equal(m.engine.transport.name, this.mode.final);
    return { socket, hello: h, manager: m };
  }

  // A connection attempt that must be refused: resolves with the error.
  async refused({ nsp = "/", auth, manager } = {}) {
    const m = manager ?? this.manager();
    const socket = m.socket(nsp, auth === undefined ? {} : { auth });
    const connected = collect(socket, "connect");
    const [err] = await once(socket, "connect_error");
    assert.equal(connected.length, 0);
    assert.equal(socket.connected, false);
    return { err, socket, manager: m };
  }

  close() {
    for (const m of this.managers) {
      m.reconnection(false);
      for (const s of Object.values(m.nsps)) s.disconnect();
      m.engine?.close();
    }
    this.managers = [];
  }
}

// ---------------------------------------------------------------- tests

let server;
// A second server that accepts only small messages: an oversize message
// makes it drop the connection, which the client must survive by
// reconnecting on its own.
let smallServer;

before(async () => {
  server = await startServer("sb-interop-server", ["--threads", "2"]);
  smallServer = await startServer("sb-interop-server", ["--threads", "2", "--max-http-buffer-size", "10000"]);
});

after(async () => {
  await server?.stop();
  await smallServer?.stop();
});

for (const mode of MODES) {
  describe(`transport ${mode.name}`, () => {
    let clients;
    let smallClients;
    before(() => {
      clients = new Clients(server.url, mode);
      smallClients = new Clients(smallServer.url, mode);
    });
    after(() => {
      clients.close();
      smallClients.close();
    });
    const it = (name, fn) =>
      test(name, { timeout: 30_000 }, async () => {
        try {
          await fn();
        } finally {
          clients.close();
          smallClients.close();
        }
      });

    it("connects with auth; hello carries the socket id, namespace and auth", async () => {
      const auth = { token: "good", user: "alice", n: 42, nested: { a: [1, "two", null] } };
      const { socket, hello, manager } = await clients.connect({ auth });
      assert.equal(typeof socket.id, "string");
      assert.ok(socket.id.length > 0);
      assert.deepEqual(hello, { id: socket.id, nsp: "/", auth });
      assert.notEqual(socket.id, manager.engine.id, "socket id must not be the engine session id");
      assert.deepEqual(await callAll(socket, "whoami"), [
        { id: socket.id, nsp: "/", transport: mode.final, auth },
      ]);

      // No auth at all: the server sees {}.
      const bare = await clients.connect();
      assert.deepEqual(bare.hello, { id: bare.socket.id, nsp: "/", auth: {} });
      assert.notEqual(bare.socket.id, socket.id);

      // Asynchronous middleware (continues 50 ms later).
      const slow = await clients.connect({ auth: { token: "slow" } });
      assert.deepEqual(slow.hello, { id: slow.socket.id, nsp: "/", auth: { token: "slow" } });
    });

    it("refuses a connection with CONNECT_ERROR message and data", async () => {
      const { err } = await clients.refused({ auth: { token: "bad" } });
      assert.equal(err.message, "not authorized");
      assert.deepEqual(err.data, { code: "E_AUTH" });

      // No data field at all.
      const admin = await clients.refused({ nsp: "/admin", auth: { role: "user" } });
      assert.equal(admin.err.message, "admin only");
      assert.equal(admin.err.data, undefined);

      // A namespace nobody declared.
      const nope = await clients.refused({ nsp: "/nope" });
      assert.equal(nope.err.message, "Invalid namespace");

      // A refusal on one namespace leaves the connection usable for another.
      const m = clients.manager();
      const refused = await clients.refused({ manager: m, nsp: "/admin" });
      assert.equal(refused.err.message, "admin only");
      const ok = await clients.connect({ manager: m, nsp: "/", auth: { token: "fine" } });
      assert.deepEqual(await callAll(ok.socket, "echo", "still here"), ["still here"]);
    });

    it("emits with and without acks, in both directions", async () => {
      const { socket } = await clients.connect();

      // client -> server, with ack (all arguments come back)
      const args = ["text", 42, 1.5, true, null, { a: [1, { b: "c" }] }, [], "ünï©ødé ✓"];
      assert.deepEqual(await callAll(socket, "echo", ...args), args);
      assert.deepEqual(await callAll(socket, "echo"), []);

      // client -> server without ack: the server emits "echo" back
      const echoed = once(socket, "echo");
      socket.emit("echo", "no-ack", { x: 1 });
      assert.deepEqual(await echoed, ["no-ack", { x: 1 }]);

      // an event no handler takes (OnAnyEvent)
      assert.deepEqual(await callAll(socket, "no-such-event", 1), ["unknown", "no-such-event"]);

      // a numeric event name, as socket.io-parser allows: the server's
      // listeners see "1" (as the reference server's do), the connection stays
      assert.deepEqual(await callAll(socket, 1, "x"), ["unknown", "1"]);
      assert.equal(socket.connected, true);
      assert.deepEqual(await callAll(socket, "echo", "after"), ["after"]);

      // server -> client with ack: the client's answer is reported back
      socket.on("ask", (...a) => {
        const ack = a.pop();
        assert.equal(typeof ack, "function", "server asked for an ack");
        ack("answer", a, 7);
      });
      const result = once(socket, "server-ack-result");
      assert.deepEqual(await callAll(socket, "server-ack", { args: ["q", { n: 1 }] }), [true]);
      assert.deepEqual(await result, [{ ok: true, args: ["answer", ["q", { n: 1 }], 7] }]);
    });

    it("server ack times out when the client does not answer", async () => {
      const { socket } = await clients.connect();
      const asked = collect(socket, "ask");
      socket.on("ask", () => {}); // never calls the ack
      const result = once(socket, "server-ack-result", 3000);
      socket.emit("server-ack", { args: ["silent"], timeoutMs: 200 });
      assert.deepEqual(await result, [{ ok: false, code: "DEADLINE_EXCEEDED" }]);
      assert.equal(asked.length, 1);
      assert.equal(asked[0][0], "silent");
    });

    it("carries binary both ways (Buffer, Uint8Array, nested, large)", async () => {
      const { socket } = await clients.connect();
      const big = randomBytes(100 * 1024);
      const args = [
        Buffer.from([0, 1, 2, 253, 254, 255]),
        new Uint8Array([9, 8, 7]),
        { nested: { buf: Buffer.from("héllo"), list: [1, Buffer.from([0x1e, 0x00]), "x"] } },
        "text between",
        big,
      ];
      const back = await callAll(socket, "echo", ...args);
      assert.equal(back.length, 5);
      assertBuffer(back[0], [0, 1, 2, 253, 254, 255], "arg 0");
      assertBuffer(back[1], [9, 8, 7], "arg 1");
      assertBuffer(back[2].nested.buf, Buffer.from("héllo"), "nested buf");
      assertBuffer(back[2].nested.list[1], [0x1e, 0x00], "nested list buf");
      assert.deepStrictEqual(norm(back), norm(args));

      // binary event without ack, echoed as an event
      const echoed = once(socket, "echo");
      socket.emit("echo", { blob: Buffer.from([42]) });
      const [ev] = await echoed;
      assertBuffer(ev.blob, [42], "echoed event");

      // server -> client binary in an ack request, client answers with binary
      socket.on("ask", (a, b, ack) => {
        assertBuffer(a, [1, 2, 3], "ask arg 0");
        assertBuffer(b.deep[0], [4], "ask arg 1");
        ack(Buffer.from("reply"), { inner: new Uint8Array([5, 6]) });
      });
      const result = once(socket, "server-ack-result");
      socket.emit("server-ack", { args: [Buffer.from([1, 2, 3]), { deep: [Buffer.from([4])] }] });
      const [r] = await result;
      assert.equal(r.ok, true);
      assertBuffer(r.args[0], Buffer.from("reply"), "ack arg 0");
      assertBuffer(r.args[1].inner, [5, 6], "ack arg 1");
      assert.deepStrictEqual(norm(r), { ok: true, args: [Buffer.from("reply"), { inner: Buffer.from([5, 6]) }] });
    });

    it("multiplexes two namespaces on one connection", async () => {
      const m = clients.manager();
      const upgraded = mode.upgrade ? Clients.upgraded(m) : null;
      const root = await clients.connect({ manager: m, nsp: "/", auth: { user: "bob" } });
      const admin = await clients.connect({ manager: m, nsp: "/admin", auth: { role: "admin" } });
      if (upgraded) await upgraded;
      assert.equal(root.socket.io, admin.socket.io, "both sockets share one Manager");
      assert.deepEqual(root.hello, { id: root.socket.id, nsp: "/", auth: { user: "bob" } });
      assert.deepEqual(admin.hello, { id: admin.socket.id, nsp: "/admin", auth: { role: "admin" } });
      assert.notEqual(root.socket.id, admin.socket.id);
      assert.deepEqual(await callAll(admin.socket, "whoami"), [
        { id: admin.socket.id, nsp: "/admin", transport: mode.final, auth: { role: "admin" } },
      ]);

      // Same event name, each namespace answers for itself, interleaved.
      const [a, b] = await Promise.all([
        callAll(root.socket, "echo", "root", Buffer.from([1])),
        callAll(admin.socket, "echo", "admin", Buffer.from([2])),
      ]);
      assert.deepStrictEqual(norm(a), ["root", Buffer.from([1])]);
      assert.deepStrictEqual(norm(b), ["admin", Buffer.from([2])]);

      // Namespace broadcasts stay in their namespace.
      const rootAll = collect(root.socket, "all");
      const adminAll = collect(admin.socket, "all");
      await callAll(root.socket, "to-all", { msg: "for /" });
      await waitForCount(rootAll, 1, '"all" on /');
      await callAll(admin.socket, "to-all", { msg: "for /admin" });
      await waitForCount(adminAll, 1, '"all" on /admin');
      await fence(root.socket, admin.socket);
      assert.deepEqual(rootAll, [[{ msg: "for /", from: root.socket.id }]]);
      assert.deepEqual(adminAll, [[{ msg: "for /admin", from: admin.socket.id }]]);

      // Leaving one namespace keeps the other (and the connection) alive.
      admin.socket.disconnect();
      assert.deepEqual(await callAll(root.socket, "echo", "after"), ["after"]);
      assert.equal(root.socket.connected, true);
    });

    it("joins and leaves rooms; to-room reaches members only", async () => {
      const A = (await clients.connect()).socket;
      const B = (await clients.connect()).socket;
      const C = (await clients.connect()).socket;
      const weird = "weird room/ü*>.#{}";
      assert.deepEqual(await callAll(A, "join", "r1"), [["r1"]]);
      assert.deepEqual(await callAll(B, "join", "r1"), [["r1"]]);
      assert.deepEqual(await callAll(B, "join", "r2"), [["r1", "r2"]]);
      assert.deepEqual(await callAll(C, "join", weird), [[weird]]);
      assert.deepEqual(await callAll(B, "rooms"), [["r1", "r2"]]);

      const got = { A: collect(A, "room-msg"), B: collect(B, "room-msg"), C: collect(C, "room-msg") };
      assert.deepEqual(await callAll(A, "to-room", { room: "r1", msg: "m1" }), [true]);
      await waitForCount(got.A, 1, "room-msg at A");
      await waitForCount(got.B, 1, "room-msg at B");
      await fence(C);
      const m1 = [{ room: "r1", msg: "m1", from: A.id }];
      assert.deepEqual(got.A, [m1]);
      assert.deepEqual(got.B, [m1]);
      assert.deepEqual(got.C, []);

      // Any string is a legal room name; a non-member can send to a room.
      await callAll(A, "to-room", { room: weird, msg: { deep: [1] } });
      await waitForCount(got.C, 1, "room-msg at C");
      assert.deepEqual(got.C, [[{ room: weird, msg: { deep: [1] }, from: A.id }]]);

      assert.deepEqual(await callAll(B, "leave", "r1"), [["r2"]]);
      await callAll(A, "to-room", { room: "r1", msg: "m2" });
      await waitForCount(got.A, 2, "second room-msg at A");
      await fence(B, C);
      assert.deepEqual(got.A[1], [{ room: "r1", msg: "m2", from: A.id }]);
      assert.equal(got.B.length, 1, "B left r1 and must not get m2");
      assert.equal(got.C.length, 1);

      // Leaving a room one is not in is harmless; an empty room reaches nobody.
      assert.deepEqual(await callAll(C, "leave", "never-joined"), [[weird]]);
      await callAll(A, "to-room", { room: "empty", msg: "m3" });
      await fence(A, B, C);
      assert.deepEqual([got.A.length, got.B.length, got.C.length], [2, 1, 1]);
    });

    it("broadcasts with except, excluding the sender, and to one socket", async () => {
      const sockets = [];
      for (let i = 0; i < 5; i++) sockets.push((await clients.connect()).socket);
      const [A, B, C, D, E] = sockets;
      for (const s of [A, B, C]) await callAll(s, "join", "r");
      await callAll(B, "join", "ex");
      await callAll(D, "join", "x");
      const names = ["A", "B", "C", "D", "E"];
      const inbox = (event) => Object.fromEntries(sockets.map((s, i) => [names[i], collect(s, event)]));
      const counts = (box) => names.map((n) => box[n].length);

      // to room r except room ex: A, C
      const roomMsg = inbox("room-msg");
      await callAll(A, "to-room-except", { room: "r", except: "ex", msg: "e1" });
      await waitForCount(roomMsg.A, 1, "room-msg at A");
      await waitForCount(roomMsg.C, 1, "room-msg at C");
      await fence(...sockets);
      assert.deepEqual(counts(roomMsg), [1, 0, 1, 0, 0]);
      assert.deepEqual(roomMsg.C[0], [{ room: "r", msg: "e1", from: A.id }]);

      // except a socket id (a socket is a room of its own): A, B
      await callAll(A, "to-room-except", { room: "r", except: C.id, msg: "e2" });
      await waitForCount(roomMsg.B, 1, "room-msg at B");
      await fence(...sockets);
      assert.deepEqual(counts(roomMsg), [2, 1, 1, 0, 0]);
      assert.deepEqual(roomMsg.B[0], [{ room: "r", msg: "e2", from: A.id }]);

      // several excepted rooms: only A (B in ex, C by id)
      await callAll(A, "to-room-except", { room: "r", except: ["ex", C.id], msg: "e3" });
      await waitForCount(roomMsg.A, 3, "third room-msg at A");
      await fence(...sockets);
      assert.deepEqual(counts(roomMsg), [3, 1, 1, 0, 0]);

      // whole namespace except the sender: everyone but A (and only once each)
      const bc = inbox("broadcast");
      await callAll(A, "broadcast-except-sender", { msg: "b1" });
      for (const n of ["B", "C", "D", "E"]) await waitForCount(bc[n], 1, `broadcast at ${n}`);
      await fence(...sockets);
      assert.deepEqual(counts(bc), [0, 1, 1, 1, 1]);
      assert.deepEqual(bc.E[0], [{ msg: "b1", from: A.id }]);

      // a room except the sender: B, C
      await callAll(A, "broadcast-except-sender", { msg: "b2", room: "r" });
      await waitForCount(bc.B, 2, "second broadcast at B");
      await waitForCount(bc.C, 2, "second broadcast at C");
      await fence(...sockets);
      assert.deepEqual(counts(bc), [0, 2, 2, 1, 1]);
      assert.deepEqual(bc.C[1], [{ msg: "b2", from: A.id }]);

      // one socket by id
      const direct = inbox("direct");
      await callAll(A, "to-socket", { id: D.id, msg: { hi: "D" } });
      await waitForCount(direct.D, 1, "direct at D");
      await fence(...sockets);
      assert.deepEqual(counts(direct), [0, 0, 0, 1, 0]);
      assert.deepEqual(direct.D[0], [{ msg: { hi: "D" }, from: A.id }]);
    });

    it("delivers a namespace broadcast exactly once to many clients", async () => {
      const sockets = await Promise.all(
        Array.from({ length: 12 }, () => clients.connect().then((c) => c.socket)),
      );
      const boxes = sockets.map((s) => collect(s, "all"));
      const payload = { msg: { n: 1, bin: Buffer.from([7, 7]) } };
      await callAll(sockets[0], "to-all", payload);
      for (const [i, box] of boxes.entries()) await waitForCount(box, 1, `"all" at client ${i}`);
      await fence(...sockets);
      for (const box of boxes) {
        assert.equal(box.length, 1);
        assert.deepStrictEqual(norm(box[0]), [{ msg: { n: 1, bin: Buffer.from([7, 7]) }, from: sockets[0].id }]);
      }
    });

    it("server-side disconnect: the client gets 'io server disconnect' and stays down", async () => {
      const observer = (await clients.connect({ nsp: "/admin", auth: { role: "admin", observe: true } })).socket;
      const left = collect(observer, "left");

      const { socket, manager } = await clients.connect();
      const id = socket.id;
      const reasons = collect(socket, "disconnect");
      const connects = collect(socket, "connect");
      socket.emit("kick");
      await waitForCount(reasons, 1, "disconnect");
      assert.equal(reasons[0][0], "io server disconnect");
      assert.equal(socket.connected, false);
      await waitForCount(left, 1, '"left" at the observer');
      assert.deepEqual(left[0], [{ id, nsp: "/", reason: "server namespace disconnect" }]);
      await sleep(500);
      assert.equal(connects.length, 0, "must not reconnect after a server disconnect");

      // The application may reconnect explicitly.
      const hello = once(socket, "hello");
      socket.connect();
      await once(socket, "connect");
      const [h] = await hello;
      assert.notEqual(socket.id, id);
      assert.deepEqual(h, { id: socket.id, nsp: "/", auth: {} });
      assert.deepEqual(await callAll(socket, "echo", "back"), ["back"]);

      // disconnect(close=true) disconnects every namespace of the connection
      // and closes it.
      const adminOnSame = await clients.connect({ manager, nsp: "/admin", auth: { role: "admin" } });
      const rootReasons = collect(socket, "disconnect");
      const adminReasons = collect(adminOnSame.socket, "disconnect");
      socket.emit("kick-close");
      await waitForCount(rootReasons, 1, "disconnect of /");
      await waitForCount(adminReasons, 1, "disconnect of /admin");
      assert.equal(rootReasons[0][0], "io server disconnect");
      assert.equal(adminReasons[0][0], "io server disconnect");
      await sleep(500);
      assert.equal(socket.connected, false);
      assert.equal(adminOnSame.socket.connected, false);
    });

    it("client disconnect is seen by the server as 'client namespace disconnect'", async () => {
      const observer = (await clients.connect({ nsp: "/admin", auth: { role: "admin", observe: true } })).socket;
      const left = collect(observer, "left");
      const { socket } = await clients.connect();
      const id = socket.id;
      socket.disconnect();
      await waitForCount(left, 1, '"left" at the observer');
      assert.deepEqual(left[0], [{ id, nsp: "/", reason: "client namespace disconnect" }]);
    });

    it("reconnects by itself when the connection drops (client side)", async () => {
      const observer = (await clients.connect({ nsp: "/admin", auth: { role: "admin", observe: true } })).socket;
      const left = collect(observer, "left");

      const { socket, manager } = await clients.connect({ auth: { user: "re" } });
      const oldId = socket.id;
      const reasons = collect(socket, "disconnect");
      const hello = once(socket, "hello", 10_000);
      const reconnected = once(socket, "connect", 10_000);
      manager.engine.close();
      await reconnected;
      assert.equal(reasons.length, 1);
      assert.equal(reasons[0][0], "forced close");
      const [h] = await hello;
      assert.notEqual(socket.id, oldId);
      assert.deepEqual(h, { id: socket.id, nsp: "/", auth: { user: "re" } });
      assert.deepEqual(await callAll(socket, "echo", "again", Buffer.from([3])), ["again", Buffer.from([3])]);

      await waitForCount(left, 1, '"left" at the observer');
      assert.deepEqual(left[0], [{ id: oldId, nsp: "/", reason: "transport close" }]);
    });

    it("reconnects by itself when the server drops the connection (oversize message)", async () => {
      const { socket } = await smallClients.connect();
      const oldId = socket.id;
      assert.deepEqual(await callAll(socket, "echo", "small"), ["small"]);
      const reasons = collect(socket, "disconnect");
      const reconnected = once(socket, "connect", 10_000);
      socket.emit("echo", "x".repeat(50_000));
      await reconnected;
      assert.equal(reasons.length, 1);
      assert.ok(
        ["transport close", "transport error"].includes(reasons[0][0]),
        `unexpected disconnect reason ${reasons[0][0]}`,
      );
      assert.notEqual(socket.id, oldId);
      assert.deepEqual(await callAll(socket, "echo", "after"), ["after"]);
    });
  });
}

test("the server exits cleanly on SIGTERM", async () => {
  const { code, signal } = await server.stop();
  assert.deepEqual({ code, signal }, { code: 0, signal: null });
  const small = await smallServer.stop();
  assert.deepEqual(small, { code: 0, signal: null });
});
