// Connection state recovery in `switchboard standalone` (issue 17, one
// process): the official socket.io-client 4.8 reconnects after its transport
// breaks and gets its session back — `socket.recovered`, the same socket id,
// its rooms, and every packet published meanwhile exactly once and in order
// (a gRPC publisher to a room, and a client's broadcast to the namespace
// through a relay rule). Then what must give a new session instead: an
// expired session, a pid already in use, another user's token when the
// middlewares run again.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

import { io } from "socket.io-client";

import { connectApi, json } from "./lib/api.mjs";
import { eventually } from "./lib/cluster.mjs";
import { sign, now } from "./lib/jwt.mjs";
import { startServer } from "./lib/server.mjs";
import { call, once, waitForCount } from "./lib/wait.mjs";

const SECRET = "a-test-secret-for-recovery-0123456789abcdef";
const ROOM_RULES = [
  { event: "join-room", action: "join", room: "$.room|$", ack: { ok: true, room: "$room" } },
  // A client's broadcast to the whole namespace, the sender included.
  { event: "count", action: "relay", target: "namespace", exceptSender: false, ack: { ok: true } },
];

let server;
let api;
let dir;

before(async () => {
  process.env.SB_TEST_RECOVERY_SECRET = SECRET;
  dir = mkdtempSync(path.join(tmpdir(), "sb-recovery-"));
  const file = path.join(dir, "config.json");
  writeFileSync(file, JSON.stringify(
    {
      namespaces: {
        "/": {
          userIdFromAuth: "userId",
          connectionStateRecovery: { maxDisconnectionDuration: 60000, skipMiddlewares: true },
          rules: ROOM_RULES,
        },
        "/short": {
          userIdFromAuth: "userId",
          connectionStateRecovery: { maxDisconnectionDuration: 300 },
          rules: ROOM_RULES,
        },
        "/secure": {
          auth: { keys: [{ algorithms: ["HS256"], secretEnv: "SB_TEST_RECOVERY_SECRET" }] },
          connectionStateRecovery: { maxDisconnectionDuration: 60000, skipMiddlewares: false },
          rules: ROOM_RULES,
        },
        "/plain": { userIdFromAuth: "userId", rules: ROOM_RULES },
      },
    }));
  server = await startServer(
    "switchboard",
    ["standalone", "--config", file, "--threads", "2", "--grpc-listen", "127.0.0.1:0"],
    { ready: ["grpc", "http"], name: "standalone" },
  );
  api = connectApi(server.grpcAddress);
});

after(async () => {
  api?.close();
  if (server) {
    const { code } = await server.stop();
    assert.equal(code, 0, "switchboard exits cleanly");
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const sockets = [];
after(() => {
  for (const s of sockets) s.disconnect();
});

function client(nsp, options = {}) {
  const socket = io(`${server.url}${nsp}`, {
    forceNew: true,
    reconnectionDelay: 150,
    reconnectionDelayMax: 150,
    randomizationFactor: 0,
    ...options,
  });
  sockets.push(socket);
  return socket;
}

async function connected(socket) {
  if (!socket.connected) await once(socket, "connect");
  return socket;
}

// The Prometheus counter switchboard_recoveries_total{namespace, result}.
async function recoveries(nsp, result) {
  const response = await fetch(`http://127.0.0.1:${server.adminPort}/metrics`);
  const text = await response.text();
  const line = text
    .split("\n")
    .find((l) => l.startsWith("switchboard_recoveries_total{") && l.includes(`namespace="${nsp}"`) && l.includes(`result="${result}"`));
  return line ? Number(line.split(" ").pop()) : 0;
}

// Breaks the client's transport (as a network blip) and waits for the
// reconnection; returns the socket.
async function blip(socket) {
  const reconnected = once(socket, "connect", 10000);
  socket.io.engine.close();
  await reconnected;
  return socket;
}

// Numbers 0..n-1 in order, once each: what a subscriber must have got.
const range = (n) => Array.from({ length: n }, (_, i) => i);

for (const [transport, transports] of [
  ["websocket", ["websocket"]],
  ["polling", ["polling"]],
]) {
  describe(`over ${transport}`, () => {
    test("three blips in a row: recovered, same id and rooms, every packet once and in order", async () => {
      const N = 120;
      const subject = await connected(client("/", { transports, auth: { userId: `alice-${transport}` } }));
      assert.equal(subject.recovered, false, "a first connection is not a recovery");
      assert.deepEqual(await call(subject, "join-room", "red"), { ok: true, room: "red" });
      const publisher = await connected(client("/", { transports: ["websocket"], auth: { userId: "pub" } }));

      const fromApi = [];
      const fromClient = [];
      const offsets = [];
      subject.on("api", (n, offset) => {
        fromApi.push(n);
        offsets.push(offset);
      });
      subject.on("count", (n, offset) => {
        fromClient.push(n.n);
        offsets.push(offset);
      });

      const id = subject.id;
      let running = true;
      // Two publishers, each numbering its messages, all the time.
      const viaApi = (async () => {
        for (let i = 0; i < N; i++) {
          await api.publish({ target: { namespace: "/", rooms: ["red"] }, event: "api", args: [json(i)] });
          await sleep(5);
        }
      })();
      const viaClient = (async () => {
        for (let i = 0; i < N; i++) {
          await call(publisher, "count", { n: i });
          await sleep(5);
        }
      })();
      for (let k = 0; k < 3; k++) {
        await sleep(60);
        await blip(subject);
        assert.equal(subject.recovered, true, `blip ${k + 1}: socket.recovered`);
        assert.equal(subject.id, id, `blip ${k + 1}: the same socket id`);
      }
      await Promise.all([viaApi, viaClient]);
      running = false;
      await waitForCount(fromApi, N, "API publishes", 10000);
      await waitForCount(fromClient, N, "client broadcasts", 10000);
      await sleep(100);  // nothing more may come
      assert.deepEqual(fromApi, range(N), "the room's publishes: each once, in order");
      assert.deepEqual(fromClient, range(N), "the client's broadcasts: each once, in order");
      // Offsets: decimal strings, increasing (the log's order is the delivery order).
      assert.ok(offsets.every((o) => typeof o === "string" && /^\d+$/.test(o)), "an offset string last");
      for (let i = 1; i < offsets.length; i++) {
        assert.ok(BigInt(offsets[i]) > BigInt(offsets[i - 1]), `offsets increase: ${offsets[i - 1]} then ${offsets[i]}`);
      }
      assert.equal(running, false);

      // The rooms came back: the broker's view lists them, and a publish to
      // the room still arrives.
      const listed = await api.listSockets({ namespace: "/", room: "red" });
      assert.ok(
        listed.sockets.some((s) => s.id === id && s.user_id === `alice-${transport}`),
        `the restored socket is in "red" with its user: ${JSON.stringify(listed.sockets)}`,
      );
      const next = once(subject, "api");
      await api.publish({ target: { namespace: "/", user_ids: [`alice-${transport}`] }, event: "api", args: [json(N)] });
      assert.equal((await next)[0], N, "a publish to the user id reaches the restored socket");
      assert.ok((await recoveries("/", "recovered")) >= 3, "counted as recovered");
      subject.disconnect();
      publisher.disconnect();
    });
  });
}

test("a namespace without recovery sends no pid and no offsets", async () => {
  const socket = await connected(client("/plain", { transports: ["websocket"], auth: { userId: "p" } }));
  assert.equal(socket._pid, undefined, "no pid in the CONNECT reply");
  await call(socket, "join-room", "r");
  const got = once(socket, "api");
  await api.publish({ target: { namespace: "/plain", rooms: ["r"] }, event: "api", args: [json(1)] });
  assert.deepEqual(await got, [1], "no offset argument");
  socket.disconnect();
});

test("a session disconnected longer than maxDisconnectionDuration is not recovered", async () => {
  const socket = await connected(
    client("/short", { transports: ["websocket"], auth: { userId: "late" }, reconnectionDelay: 1200, reconnectionDelayMax: 1200 }),
  );
  await call(socket, "join-room", "r");
  const got = once(socket, "api");
  await api.publish({ target: { namespace: "/short", rooms: ["r"] }, event: "api", args: [json(1)] });
  await got;
  const id = socket.id;
  const before = await recoveries("/short", "expired");
  await blip(socket);
  assert.equal(socket.recovered, false, "expired: a new session");
  assert.notEqual(socket.id, id, "a new socket id");
  assert.equal(await recoveries("/short", "expired"), before + 1, "counted as expired");
  socket.disconnect();
});

test("a pid already in use gives a new session; one ended on purpose is unknown", async () => {
  const owner = await connected(client("/", { transports: ["websocket"], auth: { userId: "owner" } }));
  await call(owner, "join-room", "secret-room");
  const got = once(owner, "api");
  await api.publish({ target: { namespace: "/", rooms: ["secret-room"] }, event: "api", args: [json(1)] });
  const [, offset] = await got;
  const pid = owner._pid;
  assert.equal(typeof pid, "string");
  assert.ok(pid.length >= 32, "an unguessable pid");
  await blip(owner);
  assert.equal(owner.recovered, true);

  // Someone else presents the pid while its session is connected.
  const reusedBefore = await recoveries("/", "reused");
  const thief = await connected(client("/", { transports: ["websocket"], auth: { userId: "owner", pid, offset } }));
  assert.notEqual(thief.id, owner.id, "not the owner's socket");
  assert.equal(thief.recovered, false);
  assert.equal(await recoveries("/", "reused"), reusedBefore + 1, "counted as reused");
  const leak = [];
  thief.on("api", (...args) => leak.push(args));
  const ownerGot = once(owner, "api");
  await api.publish({ target: { namespace: "/", rooms: ["secret-room"] }, event: "api", args: [json(2)] });
  await ownerGot;
  await sleep(100);
  assert.deepEqual(leak, [], "the new session is not in the owner's rooms");
  thief.disconnect();

  // The owner leaves on purpose: its pid is forgotten.
  owner.disconnect();
  await sleep(100);
  const unknownBefore = await recoveries("/", "unknown");
  const late = await connected(client("/", { transports: ["websocket"], auth: { userId: "owner", pid, offset } }));
  assert.equal(late.recovered, false);
  assert.equal(await recoveries("/", "unknown"), unknownBefore + 1, "counted as unknown");
  late.disconnect();
});

test("skipMiddlewares false: the token runs again, another user's gets a new session", async () => {
  const token = (sub) => sign({ sub, exp: now() + 600 }, { alg: "HS256", key: SECRET });
  const alice = await connected(client("/secure", { transports: ["websocket"], auth: { token: token("alice") }, reconnection: false }));
  await call(alice, "join-room", "a-room");
  const got = once(alice, "api");
  await api.publish({ target: { namespace: "/secure", rooms: ["a-room"] }, event: "api", args: [json(1)] });
  const [, offset] = await got;
  const { id, _pid: pid } = alice;
  alice.io.engine.close();  // a blip, no automatic reconnection
  await eventually(async () => {
    const listed = await api.listSockets({ namespace: "/secure" });
    assert.ok(!listed.sockets.some((s) => s.id === id), "alice's socket is gone");
  });
  const missed = api.publish({ target: { namespace: "/secure", rooms: ["a-room"] }, event: "api", args: [json(2)] });
  await missed;

  const bob = await connected(client("/secure", { transports: ["websocket"], auth: { token: token("bob"), pid, offset } }));
  assert.notEqual(bob.id, id, "bob does not get alice's session");
  const bobGot = [];
  bob.on("api", (...args) => bobGot.push(args));

  // Alice, with her own token, still can (a raw reconnection: pid and offset
  // in the auth, as the client sends them).
  const replay = [];
  const again = client("/secure", { transports: ["websocket"], auth: { token: token("alice"), pid, offset }, autoConnect: false });
  again.on("api", (...args) => replay.push(args));
  again.connect();
  await connected(again);
  assert.equal(again.id, id, "alice's session restored");
  await waitForCount(replay, 1, "the missed packet");
  assert.equal(replay[0][0], 2, "the packet published while she was away");
  await sleep(100);
  assert.deepEqual(bobGot, [], "bob got nothing of alice's");
  bob.disconnect();
  again.disconnect();
});

test("backends see a restored socket as recovered, with its rooms; GetStats counts recoveries", async () => {
  const watch = api.watchEvents({ namespace: "/" });
  try {
    // The stream starts "from the moment of the call": probe until it sees a connect.
    await eventually(
      async () => {
        const probe = await connected(client("/", { transports: ["websocket"], auth: { userId: "probe" } }));
        const id = probe.id;
        probe.disconnect();
        await watch.next((ev) => ev.event === "connected" && ev.connected.socket.id === id, 1000);
      },
      { timeoutMs: 10_000, what: "WatchEvents is live" },
    );
    const socket = await connected(client("/", { transports: ["polling"], auth: { userId: "watched" } }));
    const first = await watch.next((ev) => ev.event === "connected" && ev.connected.socket.id === socket.id);
    assert.equal(first.connected.recovered, false, "a new session is not recovered");
    await call(socket, "join-room", "w1");
    await call(socket, "join-room", "w2");
    await blip(socket);
    assert.equal(socket.recovered, true);
    const back = await watch.next(
      (ev) => ev.event === "connected" && ev.connected.socket.id === socket.id && ev.connected.recovered,
    );
    assert.equal(back.connected.socket.user_id, "watched");
    assert.deepEqual([...back.connected.socket.rooms].sort(), ["w1", "w2"], "the rooms it came back with");
    socket.disconnect();
  } finally {
    watch.close();
  }
  await eventually(
    async () => {
      const stats = await api.getStats({});
      assert.ok(stats.recovery, "GetStats has recovery counters");
      assert.ok(Number(stats.recovery.recovered) >= 1, `recovered counted: ${JSON.stringify(stats.recovery)}`);
      assert.ok(Number(stats.recovery.reused) >= 1, "reused counted");
      assert.ok(Number(stats.recovery.expired) >= 1, "expired counted");
      assert.ok(Number(stats.recovery.packets_replayed) >= 1, "replayed packets counted");
      assert.ok(Number(stats.recovery.log_entries) >= 1 && Number(stats.recovery.log_bytes) > 0, "log size");
      assert.equal(stats.edges[0].recovery.recovered, stats.recovery.recovered, "per edge too");
    },
    { timeoutMs: 10_000, what: "GetStats' recovery counters (edge heartbeats)" },
  );
});
