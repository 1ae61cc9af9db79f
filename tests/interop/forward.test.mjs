// Backends drive it: a real cluster (nats-server, 2 brokers, 2 edges of `switchboard`), official
// socket.io-client clients, and backend workers on the gRPC API (@grpc/grpc-js):
//
// - client events forwarded by namespace policy reach 2 workers in one WatchEvents queue group
//   (one per broker): each event handled exactly once; a watcher without a group sees them all;
//   each event carries namespace, name, args (JSON and binary), socket and user id, rooms,
//   handshake (address, configured header), timestamp; on a namespace with JWT auth, the
//   token's user and the claims the namespace keeps
// - acks: the client's callback fires with the worker's Ack(ack_ref, args); a second Ack is
//   NOT_FOUND (JSON and binary arguments); no answer within forward.ackTimeout ->
//   {ok: false, error: "timeout"}
// - backpressure: nobody listening -> {ok: false, error: "no backend"}, counted in GetStats
// - connect hook: allow (user id, initial rooms, data on the socket), reject (CONNECT_ERROR with
//   message and data), time-out and unreachable backend -> the configured verdict (allow or the
//   default, reject)
// - credentials stay on the edge: a token query parameter (that of any namespace reading one) and
//   the Authorization header reach neither the connect hook nor forwarded events

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

import { io } from "socket.io-client";

import { json, binary, argValue, status } from "./lib/api.mjs";
import { eventually, freePort, startCluster } from "./lib/cluster.mjs";
import { startConnectHook } from "./lib/hook.mjs";
import { now, sign } from "./lib/jwt.mjs";
import { WAIT_MS, callAll, withTimeout } from "./lib/wait.mjs";

const ACK_TIMEOUT_MS = 1500;  // generous: a loaded CI machine answers slowly
const HOOK_TIMEOUT_MS = 1000;
const JWT_SECRET = "forward-test-secret-of-a-reasonable-length-42";

let cluster;
let hook;
let tmp;
const sockets = [];

function config(hookAddress, deadAddress, secretFile) {
  return {
    comment: "forward.test.mjs: forwarding, acks, connect hooks",
    logLevel: "info",
    namespaces: {
      "/": {
        userIdFromAuth: "userId",
        forward: { events: "*", ackTimeout: ACK_TIMEOUT_MS, headers: ["x-team"] },
        rules: [{ event: "join-room", action: "join", room: "$" }],
      },
      "/lonely": { forward: { events: ["ask"], ackTimeout: ACK_TIMEOUT_MS } },
      "/hooked": {
        forward: { events: "*", headers: ["x-team", "authorization"] },
        connectHook: { address: hookAddress, timeout: HOOK_TIMEOUT_MS, headers: ["x-team", "authorization"] },
      },
      "/open": {
        connectHook: { address: deadAddress, timeout: HOOK_TIMEOUT_MS, onFailure: "allow" },
      },
      "/closed": { connectHook: { address: deadAddress, timeout: HOOK_TIMEOUT_MS } },
      "/signed": {
        auth: {
          keys: [{ kid: "k", algorithms: ["HS256"], secretFile }],
          claims: ["name", "team"],
          tokenFrom: ["auth", "query"],
          queryParameter: "jwt",
        },
        forward: { events: "*" },
      },
    },
  };
}

function connect(edge, nsp = "/", options = {}) {
  const socket = io(cluster.edges[edge].url + (nsp === "/" ? "" : nsp), {
    transports: ["websocket"],
    forceNew: true,
    reconnection: false,
    timeout: WAIT_MS,
    ...options,
  });
  sockets.push(socket);
  return socket;
}

function connected(socket) {
  return withTimeout(
    new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("connect_error", (err) => reject(new Error(`connect_error: ${err.message}`)));
    }),
    WAIT_MS,
    "connect",
  );
}

function connectError(socket) {
  return withTimeout(
    new Promise((resolve, reject) => {
      socket.once("connect", () => reject(new Error("connected, expected connect_error")));
      socket.once("connect_error", resolve);
    }),
    WAIT_MS,
    "connect_error",
  );
}

before(async () => {
  hook = await startConnectHook(async (request) => {
    const auth = JSON.parse(request.auth || "{}");
    if (auth.delayMs) await sleep(auth.delayMs);
    if (auth.name === "mallory") {
      return { reject: { message: "go away", data: JSON.stringify({ reason: "banned" }) } };
    }
    return {
      allow: {
        user_id: `user-${auth.name}`,
        rooms: ["vip", `team-${request.handshake.headers["x-team"] ?? "none"}`],
        data: JSON.stringify({ tier: "gold" }),
      },
    };
  });
  tmp = mkdtempSync(path.join(os.tmpdir(), "sb-forward-"));
  const file = path.join(tmp, "forward.json");
  const secretFile = path.join(tmp, "jwt-secret");
  writeFileSync(secretFile, JWT_SECRET);
  writeFileSync(file, JSON.stringify(config(hook.address, `127.0.0.1:${await freePort()}`, secretFile)));
  cluster = await startCluster({ edges: 2, brokers: 2, config: file, edgeArgs: ["--heartbeat-ms", "300"] });
});

after(async () => {
  for (const s of sockets) s.disconnect();
  if (cluster) await cluster.stop();
  if (hook) await hook.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const isClient = (e) => e.event === "client_event";

describe("forwarding", () => {
  test("2 workers in one queue group (one per broker): each event handled exactly once", async () => {
    const [b1, b2] = cluster.apis;
    const filter = { namespaces: ["/"], kinds: ["EVENT_KIND_CLIENT_EVENT"], queue_group: "workers" };
    const workers = [b1.watchEvents(filter), b2.watchEvents(filter)];
    const everything = b1.watchEvents({ namespaces: ["/"], kinds: ["EVENT_KIND_CLIENT_EVENT"] });
    try {
      await Promise.all([...workers, everything].map((w) => once(w.call, "metadata")));
      const a = connect(0, "/", { auth: { userId: "alice" }, extraHeaders: { "x-team": "blue" } });
      const b = connect(1, "/", { transports: ["polling"] });
      await Promise.all([connected(a), connected(b)]);
      a.emit("join-room", "lobby");
      const N = 20;
      for (let i = 0; i < N; i++) {
        a.emit("tick", { from: "a", i });
        b.emit("tick", { from: "b", i });
      }
      a.emit("blob", Buffer.from([1, 2, 3]), "text");

      const total = 2 * N + 2; // join-room is forwarded too (its rule answers its ack)
      await eventually(
        () => {
          const got = workers[0].events.length + workers[1].events.length;
          assert.equal(got, total, `the workers handled ${got} events`);
        },
        { what: "every event at one worker" },
      );
      await eventually(() => assert.equal(everything.events.length, total), { what: "the plain watcher" });
      await sleep(300); // a duplicate would show by now
      const handled = [...workers[0].events, ...workers[1].events].filter(isClient);
      assert.equal(handled.length, total);
      const keys = handled.map((e) => `${e.client_event.event} ${e.client_event.args.map((x) => x.json ?? "bin").join()}`);
      assert.equal(new Set(keys).size, total, "no event twice");
      assert.ok(workers[0].events.length > 0 && workers[1].events.length > 0, "both workers got a share");

      const tick = handled.find((e) => e.client_event.event === "tick" && argValue(e.client_event.args[0]).from === "a");
      const ev = tick.client_event;
      assert.equal(ev.namespace, "/");
      assert.equal(ev.socket_id, a.id);
      assert.equal(ev.user_id, "alice");
      assert.equal(tick.edge_id, "e1");
      assert.ok(tick.time.seconds > 0);
      assert.deepEqual(ev.rooms, ["lobby"]);
      assert.equal(ev.handshake.address, "127.0.0.1");
      assert.deepEqual(ev.handshake.headers, { "x-team": "blue" });
      assert.equal(ev.wants_ack, false);
      assert.equal(ev.ack_ref, "");
      const fromB = handled.find((e) => e.client_event.socket_id === b.id);
      assert.equal(fromB.edge_id, "e2");
      const blob = handled.find((e) => e.client_event.event === "blob").client_event;
      assert.deepEqual(argValue(blob.args[0]), Buffer.from([1, 2, 3]));
      assert.equal(argValue(blob.args[1]), "text");
    } finally {
      for (const w of [...workers, everything]) w.close();
    }
  });

  test("acks: answered by the worker's Ack, once; unanswered ones time out", async () => {
    const [b1, b2] = cluster.apis;
    const filter = { namespaces: ["/"], kinds: ["EVENT_KIND_CLIENT_EVENT"], queue_group: "ackers" };
    const answered = [];
    const workers = [b1, b2].map((api) => {
      const w = api.watchEvents(filter);
      w.call.on("data", async (e) => {
        const ev = e.client_event;
        if (ev?.wants_ack && ev.event === "7") {
          // socket.emit(7, ...): forwarded under the name the reference server's listeners see.
          await api.ack({ ack_ref: ev.ack_ref, args: [json({ event: ev.event, arg: argValue(ev.args[0]) })] });
          return;
        }
        if (!ev || !ev.wants_ack || ev.event !== "ask") return;
        const n = argValue(ev.args[0]);
        await api.ack({ ack_ref: ev.ack_ref, args: [json({ ok: true, n, by: api.address }), binary([n, 255])] });
        answered.push(ev.ack_ref);
      });
      return w;
    });
    try {
      await Promise.all(workers.map((w) => once(w.call, "metadata")));
      const c = connect(0);
      const d = connect(1);
      await Promise.all([connected(c), connected(d)]);
      for (let n = 0; n < 6; n++) {
        const socket = n % 2 ? d : c;
        const [reply, bytes] = await callAll(socket, "ask", n);
        assert.equal(reply.ok, true);
        assert.equal(reply.n, n);
        assert.deepEqual(Buffer.from(bytes), Buffer.from([n, 255]), "a binary ack argument");
      }
      assert.deepEqual(await callAll(d, 7, "x"), [{ event: "7", arg: "x" }]);
      // At most once: the same ack_ref again is NOT_FOUND, through either broker.
      for (const api of [b1, b2]) {
        await assert.rejects(api.ack({ ack_ref: answered[0], args: [json(1)] }), (err) => err.code === status.NOT_FOUND);
      }
      await assert.rejects(b1.ack({ ack_ref: "not a ref", args: [] }), (err) => err.code === status.INVALID_ARGUMENT);

      // Nobody answers "slow": the client gets the error ack after forward.ackTimeout.
      const started = Date.now();
      const reply = await c.timeout(WAIT_MS).emitWithAck("slow", 1);
      assert.deepEqual(reply, { ok: false, error: "timeout" });
      assert.ok(Date.now() - started >= ACK_TIMEOUT_MS - 50, `timed out after ${Date.now() - started} ms`);
      const late = workers[0].events.concat(workers[1].events).find((e) => e.client_event?.event === "slow");
      await assert.rejects(b2.ack({ ack_ref: late.client_event.ack_ref, args: [] }), (err) => err.code === status.NOT_FOUND);

      await eventually(
        async () => {
          const stats = await b1.getStats();
          assert.ok(stats.forward.acks_answered >= 6, JSON.stringify(stats.forward));
          assert.ok(stats.forward.acks_timed_out >= 1, JSON.stringify(stats.forward));
        },
        { what: "ack counters in GetStats" },
      );
    } finally {
      for (const w of workers) w.close();
    }
  });

  test("a signed-in socket's events carry its user id and the claims its namespace keeps", async () => {
    // A queue group: a plain watcher would have the broker take every namespace's forwarded
    // events for a while, and the backpressure test below expects nobody on /lonely.
    const watch = cluster.apis[1].watchEvents({
      namespaces: ["/signed"],
      kinds: ["EVENT_KIND_CLIENT_EVENT"],
      queue_group: "signed",
    });
    try {
      await once(watch.call, "metadata");
      const token = sign(
        { sub: "carol", exp: now() + 600, name: "Carol", team: "ops", email: "c@example.com" },
        { alg: "HS256", key: JWT_SECRET, kid: "k" },
      );
      const s = connect(0, "/signed", { auth: { token }, query: { room: "blue" } });
      await connected(s);
      s.emit("hello", { n: 1 });
      const e = await watch.next(isClient);
      const ev = e.client_event;
      assert.equal(ev.namespace, "/signed");
      assert.equal(ev.socket_id, s.id);
      assert.equal(ev.user_id, "carol");
      assert.deepEqual(JSON.parse(ev.handshake.claims), { name: "Carol", team: "ops" }, "only the kept claims");
      assert.deepEqual(ev.handshake.query, { room: "blue" });
      assert.ok(Number(ev.handshake.time.seconds) > 0, "connection time");
      assert.equal(ev.handshake.address, "127.0.0.1");
      assert.deepEqual(argValue(ev.args[0]), { n: 1 });
    } finally {
      watch.close();
    }
  });

  test("backpressure: with no backend an ack request fails at once and the drop is counted", async () => {
    const lonely = connect(0, "/lonely");
    await connected(lonely);
    const before = (await cluster.apis[0].getStats()).forward.dropped;
    const reply = await lonely.timeout(WAIT_MS).emitWithAck("ask", 1);
    assert.deepEqual(reply, { ok: false, error: "no backend" });
    await eventually(
      async () => {
        const stats = await cluster.apis[1].getStats();
        assert.ok(stats.forward.dropped > before, JSON.stringify(stats.forward));
      },
      { what: "dropped in GetStats" },
    );
  });
});

describe("connect hook", () => {
  test("allow: the backend's user id, rooms and data", async () => {
    const watch = cluster.apis[0].watchEvents({ namespaces: ["/hooked"], kinds: ["EVENT_KIND_CLIENT_EVENT"] });
    try {
      await once(watch.call, "metadata");
      const s = connect(1, "/hooked", { auth: { name: "ann" }, extraHeaders: { "x-team": "red" } });
      await connected(s);
      const request = hook.calls.find((c) => JSON.parse(c.auth).name === "ann");
      assert.equal(request.namespace, "/hooked");
      assert.equal(request.edge_id, "e2");
      assert.equal(request.socket_id, s.id);
      assert.equal(request.handshake.address, "127.0.0.1");
      await eventually(
        async () => {
          const { sockets: listed } = await cluster.apis[1].listSockets({ namespace: "/hooked" });
          assert.equal(listed.length, 1);
          assert.equal(listed[0].user_id, "user-ann");
          assert.deepEqual(listed[0].rooms, ["team-red", "vip"]);
        },
        { what: "the hooked socket in the index" },
      );
      s.emit("hello", 1);
      const e = await watch.next(isClient);
      assert.equal(e.client_event.user_id, "user-ann");
      assert.equal(e.client_event.data, JSON.stringify({ tier: "gold" }));
      assert.deepEqual(e.client_event.rooms, ["team-red", "vip"]);
    } finally {
      watch.close();
    }
  });

  test("a token in the query and an Authorization header reach neither the hook nor the events", async () => {
    const watch = cluster.apis[0].watchEvents({ namespaces: ["/hooked"], kinds: ["EVENT_KIND_CLIENT_EVENT"] });
    try {
      await once(watch.call, "metadata");
      // /signed reads tokens from the query parameter "jwt": no backend of any namespace sees it.
      const s = connect(1, "/hooked", {
        auth: { name: "tess" },
        query: { jwt: "secret.jwt.value", room: "blue" },
        extraHeaders: { "x-team": "red", authorization: "Bearer secret.jwt.value" },
      });
      await connected(s);
      const request = hook.calls.find((c) => JSON.parse(c.auth).name === "tess");
      assert.deepEqual(request.handshake.query, { room: "blue" });
      assert.equal(request.handshake.headers["x-team"], "red");
      assert.equal(request.handshake.headers.authorization, undefined);
      s.emit("hello", 1);
      const e = await watch.next(isClient);
      assert.deepEqual(e.client_event.handshake.query, { room: "blue" });
      assert.deepEqual(e.client_event.handshake.headers, { "x-team": "red" });
      assert.ok(!JSON.stringify(e).includes("secret.jwt.value"), JSON.stringify(e));
    } finally {
      watch.close();
    }
  });

  test("reject: CONNECT_ERROR with the backend's message and data", async () => {
    const err = await connectError(connect(0, "/hooked", { auth: { name: "mallory" } }));
    assert.equal(err.message, "go away");
    assert.deepEqual(err.data, { reason: "banned" });
  });

  test("time-out: the configured verdict (reject)", async () => {
    const started = Date.now();
    const err = await connectError(connect(0, "/hooked", { auth: { name: "sloth", delayMs: 3 * HOOK_TIMEOUT_MS } }));
    assert.equal(err.message, "Connection hook unavailable");
    assert.deepEqual(err.data, { code: "hook_unavailable" });
    const took = Date.now() - started;
    assert.ok(took >= HOOK_TIMEOUT_MS - 50 && took < 3 * HOOK_TIMEOUT_MS, `took ${took} ms`);
  });

  test("unreachable backend: the configured verdict (allow)", async () => {
    const s = connect(1, "/open");
    await connected(s);
    assert.ok(s.id);
  });

  test("unreachable backend: the default verdict (reject)", async () => {
    const started = Date.now();
    const err = await connectError(connect(1, "/closed"));
    assert.equal(err.message, "Connection hook unavailable");
    assert.deepEqual(err.data, { code: "hook_unavailable" });
    assert.ok(Date.now() - started < 3 * HOOK_TIMEOUT_MS, "refused without waiting long");
  });
});

function once(emitter, event) {
  return withTimeout(new Promise((resolve) => emitter.once(event, resolve)), WAIT_MS, `"${event}"`);
}
