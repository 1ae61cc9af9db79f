// No sticky sessions (issue 16): nats + 1 broker + 3 edges behind a per-request
// round-robin proxy (lib/rr_proxy.mjs: every HTTP request and every upgrade to
// the next edge, no affinity), Engine.IO pingInterval 1.5 s so heartbeats cross
// edges. What a client behind a plain load balancer sees:
//
// - one edge behind the balancer: the same scenario passes (the proxy itself
//   is sound, and it is a real deployment)
// - socket.io-client in polling-only, default (polling, then upgrade) and
//   WebSocket-only modes: all connect, stay connected through heartbeats, join
//   rooms, get every publish (room, user, socket id, namespace) exactly once
//   and in order, acks answered; no HTTP 400 at the proxy; every edge served
//   requests
// - python-socketio, polling only (no_sticky_python_client.py): the same
// - 200 default-mode clients upgrading (their sessions moving) while a
//   publisher sends numbered messages to their rooms and socket ids: per
//   client no loss, no duplicate, no reordering
// - SIGKILL of the edge that made the handshakes of sessions upgraded on
//   other edges: those sessions stay connected and keep receiving

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

import { json } from "./lib/api.mjs";
import { waitEmpty } from "./lib/cases.mjs";
import { CONFIG_DIR, Clients, eventually, startCluster } from "./lib/cluster.mjs";
import { startRoundRobinProxy } from "./lib/rr_proxy.mjs";
import { call, withTimeout } from "./lib/wait.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PING_INTERVAL_MS = 1500;
// Room for a slow (sanitizer) build under 200 upgrading clients: heartbeats still cross edges
// every 1.5 s, and a pong later than this still ends the session.
const PING_TIMEOUT_MS = 5000;
/** Heartbeats every client must live through. */
const PINGS = 4;
/** Upper bound of a wait for PINGS heartbeats (not a threshold: the wait ends at the 4th). */
const PINGS_WAIT_MS = PINGS * (PING_INTERVAL_MS + PING_TIMEOUT_MS) + 10_000;
/** After the expected deliveries arrived: how long to wait for unexpected ones. */
const SETTLE_MS = 300;
const KINDS = ["room", "user", "sid", "ns"];

// The cluster tests' rules (join-room, private-message, ... with acks) with a short heartbeat.
const configDir = mkdtempSync(path.join(tmpdir(), "sb-no-sticky-"));
const CONFIG = path.join(configDir, "no_sticky.json");
{
  const config = JSON.parse(readFileSync(path.join(CONFIG_DIR, "cluster.json"), "utf8"));
  config.comment = "no_sticky.test.mjs: cluster.json with a 1.5 s Engine.IO ping interval";
  config.engine = { ...config.engine, pingInterval: PING_INTERVAL_MS, pingTimeout: PING_TIMEOUT_MS };
  writeFileSync(CONFIG, JSON.stringify(config));
}

let cluster;
let api;
const proxies = [];

async function proxyOver(edges) {
  const proxy = await startRoundRobinProxy(edges.map((e) => ({ host: "127.0.0.1", port: e.server.port })));
  proxies.push(proxy);
  return proxy;
}

before(async () => {
  cluster = await startCluster({ edges: 3, brokers: 1, config: CONFIG, edgeArgs: ["--heartbeat-ms", "500"] });
  api = cluster.apis[0];
  // A process that dies on its own is the first thing to know about a failure here.
  for (const p of [...cluster.edges, ...cluster.brokers]) {
    p.server.exited.then(({ code, signal }) => process.stderr.write(`[no_sticky] ${p.id} exited: code ${code}, signal ${signal}\n`));
  }
});

/**
 * After a test (in its finally): waits until the broker lists no socket. Logs
 * instead of throwing, so that it never hides the test's own failure.
 */
async function settleEmpty(timeoutMs = 10_000) {
  try {
    await waitEmpty([api], timeoutMs);
  } catch (err) {
    process.stderr.write(`[no_sticky] cleanup: ${err.message}\n`);
  }
}

after(async () => {
  for (const p of proxies) await p.close();
  if (cluster) await cluster.stop();
  rmSync(configDir, { recursive: true, force: true });
});

// ------------------------------------------------------------------ helpers

function statsText(proxy) {
  return JSON.stringify(proxy.stats);
}

function assertNo400(proxy, what) {
  assert.equal(proxy.stats.byStatus[400] ?? 0, 0, `${what}: HTTP 400 answers at the proxy (stats ${statsText(proxy)})`);
}

const range = (from, to) => Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);

/** The prefix of `<edge-id>.<random>` ids. */
// Sum of a metric's samples (with `labels`, e.g. 'direction="in"') over every edge's /metrics.
async function sumMetric(edges, name, labels = "") {
  let total = 0;
  for (const edge of edges) {
    const text = await (await fetch(`http://127.0.0.1:${edge.server.adminPort}/metrics`)).text();
    for (const line of text.split("\n")) {
      if (!line.startsWith(name)) continue;
      const rest = line.slice(name.length);
      if (labels ? rest.startsWith(`{${labels}`) || rest.includes(`,${labels}`) : /^[ {]/.test(rest)) {
        total += Number(line.slice(line.lastIndexOf(" ") + 1));
      }
    }
  }
  return total;
}

const edgeOfId = (id) => (typeof id === "string" && id.includes(".") ? id.slice(0, id.indexOf(".")) : null);

/**
 * Follows one socket: "seq" events by kind, "private-message" payloads,
 * disconnects and the Engine.IO heartbeats (pings) it answered.
 */
function watch(socket) {
  const w = { seqs: Object.fromEntries(KINDS.map((k) => [k, []])), privates: [], disconnects: [], pings: 0 };
  socket.on("seq", (arg) => w.seqs[arg.k].push(arg.n));
  socket.on("private-message", (arg) => w.privates.push(arg.message));
  socket.on("disconnect", (reason) => w.disconnects.push(reason));
  socket.io.engine.on("ping", () => w.pings++);
  socket.watch = w;
  return w;
}

/** Connects every spec ({ name, transport, userId }) through `url`; reports every failure at once. */
async function connectAll(clients, url, specs) {
  const results = await Promise.allSettled(specs.map((spec) => clients.connect({ ...spec, url })));
  const failed = results.map((r, i) => [specs[i].name, r]).filter(([, r]) => r.status === "rejected");
  return { sockets: results.map((r) => (r.status === "fulfilled" ? r.value : null)), failed };
}

function assertConnected(proxy, { sockets, failed }, what) {
  assertNo400(proxy, what);
  assert.deepEqual(
    failed.map(([name, r]) => `${name}: ${r.reason.message}`),
    [],
    `${what}: every client connects (proxy ${statsText(proxy)})`,
  );
  return sockets;
}

async function waitUpgraded(sockets, what) {
  await eventually(
    () => {
      const stuck = sockets.filter((s) => s.io.engine?.transport?.name !== "websocket").map((s) => s.name);
      assert.deepEqual(stuck, [], "still polling");
    },
    { timeoutMs: 10_000, what: `${what}: default-mode clients upgraded to WebSocket` },
  );
}

/** Waits until the broker lists every socket with (at least) its rooms; resolves with id → SocketInfo. */
async function waitListed(sockets, what, { transport } = {}) {
  let byId;
  await eventually(
    async () => {
      byId = new Map((await api.listAllSockets({ namespace: "/" })).map((info) => [info.id, info]));
      for (const s of sockets) {
        const info = byId.get(s.id);
        assert.ok(info, `${s.name} (${s.id}) listed`);
        for (const room of s.meta.rooms) assert.ok(info.rooms.includes(room), `${s.name} listed in ${room}`);
        if (transport) assert.equal(info.transport, transport, `${s.name}'s transport`);
      }
    },
    { timeoutMs: 10_000, what: `${what}: the broker lists every client and its rooms` },
  );
  return byId;
}

async function waitPings(sockets, since, what) {
  await eventually(
    () => {
      const short = sockets.filter((s) => s.watch.pings - since.get(s) < PINGS).map((s) => `${s.name}:${s.watch.pings - since.get(s)}`);
      assert.deepEqual(short, [], `clients with fewer than ${PINGS} heartbeats`);
    },
    { timeoutMs: PINGS_WAIT_MS, intervalMs: 100, what: `${what}: ${PINGS} heartbeats at every client` },
  );
}

function assertAlive(sockets, what) {
  assert.deepEqual(
    sockets.filter((s) => !s.connected || s.watch.disconnects.length).map((s) => `${s.name}: ${s.watch.disconnects.join(",")}`),
    [],
    `${what}: no client disconnected`,
  );
}

/**
 * Publishes "seq" { k, n } for n in [from, to) to every room, user, socket id
 * of `sockets` (one publish each) and to the namespace, one call after the
 * other (so each target's numbers leave in order).
 */
async function publishSeqs(sockets, from, to) {
  const rooms = [...new Set(sockets.flatMap((s) => [...s.meta.rooms]))];
  const users = [...new Set(sockets.map((s) => s.meta.userId))];
  for (let n = from; n < to; n++) {
    for (const room of rooms) await api.publish({ target: { rooms: [room] }, event: "seq", args: [json({ k: "room", n })] });
    for (const user of users) await api.publish({ target: { user_ids: [user] }, event: "seq", args: [json({ k: "user", n })] });
    for (const s of sockets) await api.publish({ target: { socket_ids: [s.id] }, event: "seq", args: [json({ k: "sid", n })] });
    await api.publish({ target: { namespace: "/" }, event: "seq", args: [json({ k: "ns", n })] });
  }
}

/** Waits until every socket got `n` of every kind, lets SETTLE_MS pass, then compares exactly. */
async function assertSeqs(sockets, n, what) {
  const want = Object.fromEntries(KINDS.map((k) => [k, range(0, n)]));
  await eventually(
    () => {
      for (const s of sockets) for (const k of KINDS) assert.ok(s.watch.seqs[k].length >= n, `${s.name} ${k}: ${s.watch.seqs[k].length}/${n}`);
    },
    { timeoutMs: 10_000, what: `${what}: every publish arrives` },
  ).catch(() => {}); // the exact comparison below says what is missing
  await sleep(SETTLE_MS);
  for (const s of sockets) {
    assert.deepEqual(s.watch.seqs, want, `${what}: ${s.name} (${s.meta.transport}) gets every publish exactly once, in order`);
  }
}

// --------------------------------------------------- the client scenario

/**
 * Nine socket.io-client clients (3 polling-only, 3 default, 3 WebSocket-only)
 * through `proxy`: connect, join rooms, publishes before and after PINGS
 * heartbeats, acked emits, no disconnect, no 400.
 */
async function scenario(proxy, label) {
  const clients = new Clients();
  const modes = ["polling", "upgrade", "websocket"];
  const specs = range(0, 9).map((i) => ({
    name: `${label}-${modes[i % 3]}-${Math.floor(i / 3)}`,
    transport: modes[i % 3],
    userId: `${label}-user-${i}`,
  }));
  try {
    const sockets = assertConnected(proxy, await connectAll(clients, proxy.url, specs), label);
    for (const s of sockets) watch(s);
    const pingsAtStart = new Map(sockets.map((s) => [s, s.watch.pings]));
    await waitUpgraded(sockets.filter((s) => s.meta.transport === "upgrade"), label);

    // Rooms through the join-room rule; its ack names the room.
    for (const [i, s] of sockets.entries()) {
      const room = `${label}-room-${i % 2}`;
      assert.deepEqual(await call(s, "join-room", room), { ok: true, room }, `${s.name} joins ${room}`);
      s.meta.rooms.add(room);
    }
    await waitListed(sockets, label);

    await publishSeqs(sockets, 0, 10);
    await assertSeqs(sockets, 10, `${label}, before the heartbeats`);
    await waitPings(sockets, pingsAtStart, label);
    assertAlive(sockets, `${label}, after ${PINGS} heartbeats`);
    await publishSeqs(sockets, 10, 20);
    await assertSeqs(sockets, 20, `${label}, after the heartbeats`);

    // Emits with an ack; the private-message rule relays each to the socket's own id.
    for (const s of sockets) {
      for (let i = 0; i < 3; i++) {
        assert.deepEqual(await call(s, "private-message", { to: s.id, message: i }), { ok: true }, `${s.name}: ack ${i}`);
      }
    }
    await eventually(() => sockets.forEach((s) => assert.ok(s.watch.privates.length >= 3)), {
      what: `${label}: private messages`,
    }).catch(() => {});
    await sleep(SETTLE_MS);
    for (const s of sockets) assert.deepEqual(s.watch.privates, [0, 1, 2], `${label}: ${s.name}'s private messages, once, in order`);

    assertAlive(sockets, label);
    assertNo400(proxy, label);
    process.stderr.write(`[no_sticky] ${label}: proxy ${statsText(proxy)}\n`);
    return sockets;
  } finally {
    clients.closeAll();
    await settleEmpty();
  }
}

// -------------------------------------------------------------------- tests

describe("one edge behind a round-robin balancer", () => {
  test("polling, default and WebSocket clients: heartbeats, rooms, every publish once and in order, acks", { timeout: 90_000 }, async () => {
    const proxy = await proxyOver([cluster.edges[0]]);
    await scenario(proxy, "single");
    assert.ok(proxy.stats.requests > 0 && proxy.stats.upgrades > 0, `requests and upgrades went through (${statsText(proxy)})`);
  });
});

describe("three edges behind a round-robin balancer, no affinity", () => {
  test("polling, default and WebSocket clients: heartbeats, rooms, every publish once and in order, acks, no 400", { timeout: 90_000 }, async () => {
    const proxy = await proxyOver(cluster.edges);
    await scenario(proxy, "rr");
    assert.ok(
      proxy.stats.perUpstream.every((n) => n > 0),
      `the proxy sent requests to every edge (perUpstream ${JSON.stringify(proxy.stats.perUpstream)})`,
    );
  });

  test("python-socketio, polling only: heartbeats, a room, every publish once and in order, acks", { timeout: 90_000 }, async () => {
    const proxy = await proxyOver(cluster.edges);
    const N = 20;
    const child = spawn("/usr/bin/python3", [path.join(HERE, "no_sticky_python_client.py"), proxy.url, "py-user", "py-room", String(PINGS)], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" },
    });
    const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
    const lines = [];
    let waiting = null;
    let buffered = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk) => {
      buffered += chunk;
      let nl;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = JSON.parse(buffered.slice(0, nl));
        buffered = buffered.slice(nl + 1);
        lines.push(line);
        waiting?.();
      }
    });
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk) => process.stderr.write(`[python] ${chunk}`));
    const next = (what, ms) =>
      withTimeout(
        new Promise((resolve) => {
          const check = () => {
            if (lines.length) {
              waiting = null;
              resolve(lines.shift());
            }
          };
          waiting = check;
          check();
        }),
        ms,
        `python client: ${what}`,
      );
    try {
      const ready = await next("ready line", 20_000);
      assertNo400(proxy, "python-socketio");
      assert.ok(ready.ready, `python client connected and joined: ${JSON.stringify(ready)} (proxy ${statsText(proxy)})`);
      assert.deepEqual(ready.ready.joined, { ok: true, room: "py-room" });
      const sid = ready.ready.sid;
      const socket = { id: sid, meta: { rooms: new Set(["py-room"]), userId: "py-user" } };
      await waitListed([{ ...socket, name: "python" }], "python-socketio");
      await publishSeqs([socket], 0, N);
      child.stdin.write(`published ${N}\n`);
      const { result, error } = await next("result line", PINGS_WAIT_MS + 40_000);
      assert.equal(error, undefined, "python client error");
      assert.deepEqual(result.seqs, Object.fromEntries(KINDS.map((k) => [k, range(0, N)])), "every publish once, in order");
      assert.ok(result.pings >= PINGS, `${PINGS} heartbeats answered (got ${result.pings})`);
      assert.deepEqual(result.acks, [{ ok: true }, { ok: true }, { ok: true }], "acks answered");
      assert.deepEqual(result.private, [0, 1, 2], "private messages once, in order");
      assert.equal(result.disconnects, 0, "no disconnect");
      assert.equal(result.connected, true);
      assert.equal(result.transport, "polling");
      assertNo400(proxy, "python-socketio");
      assert.ok(proxy.stats.perUpstream.every((n) => n > 0), `every edge served it (${statsText(proxy)})`);
      assert.deepEqual(await withTimeout(exited, 10_000, "python client exit"), { code: 0, signal: null });
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await settleEmpty();
    }
  });

  test("moves under traffic: 200 default-mode clients upgrade while their rooms and ids get ~200 msg/s", { timeout: 120_000 }, async () => {
    const proxy = await proxyOver(cluster.edges);
    const CLIENTS = 200;
    const GROUPS = 10;
    const TICKS = 200; // 50 ms apart: 10 s
    const PER_TICK = 10; // publishes per tick: 5 to rooms, 5 to socket-id groups
    const clients = new Clients();
    const roomOf = (g) => `mv-${g}`;
    // Per group: next room number, next socket-id number, members addressed by id (with the first number each gets).
    const roomNext = new Array(GROUPS).fill(0);
    const sidNext = new Array(GROUPS).fill(0);
    const members = Array.from({ length: GROUPS }, () => []);
    const firstSid = new Map(); // socket → first socket-id number it is addressed with
    const roomListedAt = new Map(); // socket id → room number next to leave once the broker listed it in its room
    const sockets = [];
    const failures = [];
    let publishing = true;
    let sent = 0;

    const publisher = (async () => {
      let g = 0;
      for (let tick = 0; tick < TICKS; tick++) {
        const started = Date.now();
        for (let i = 0; i < PER_TICK / 2; i++, g = (g + 1) % GROUPS) {
          const rn = roomNext[g]++;
          await api.publish({ target: { rooms: [roomOf(g)] }, event: "seq", args: [json({ k: "room", n: rn })] });
          const ids = members[g].map((s) => s.id);
          if (ids.length) {
            const sn = sidNext[g]++;
            await api.publish({ target: { socket_ids: ids }, event: "seq", args: [json({ k: "sid", n: sn })] });
            sent++;
          }
          sent++;
        }
        await sleep(Math.max(0, 50 - (Date.now() - started)));
      }
      publishing = false;
    })();
    publisher.catch(() => {}); // awaited below; not an unhandled rejection meanwhile

    // Which clients the broker lists in their rooms, and since which room number.
    const indexer = (async () => {
      while (publishing) {
        const listed = await api.listAllSockets({ namespace: "/" });
        const snapshot = roomNext.slice();
        for (const info of listed) {
          const s = sockets.find((x) => x.id === info.id);
          if (s && !roomListedAt.has(s.id) && info.rooms.includes(roomOf(s.group))) roomListedAt.set(s.id, snapshot[s.group]);
        }
        await sleep(100);
      }
    })();
    indexer.catch(() => {});

    try {
      // 20 clients every 250 ms: all connect during the first half of the traffic.
      const joins = [];
      for (let i = 0; i < CLIENTS; i++) {
        if (i && i % 20 === 0) await sleep(250);
        const g = i % GROUPS;
        joins.push(
          (async () => {
            const s = await clients.connect({ name: `mv${i}`, url: proxy.url, transport: "upgrade", userId: `mv-user-${i}`, waitMs: 20_000 });
            watch(s);
            s.group = g;
            sockets.push(s);
            firstSid.set(s, sidNext[g]);
            members[g].push(s);
            assert.deepEqual(await call(s, "join-room", roomOf(g)), { ok: true, room: roomOf(g) }, `mv${i} joins`);
          })().catch((err) => failures.push(`mv${i}: ${err.message}`)),
        );
      }
      await Promise.all(joins);
      assertNo400(proxy, "moves under traffic, connecting");
      assert.deepEqual(failures, [], `every client connects and joins (proxy ${statsText(proxy)})`);
      await waitUpgraded(sockets, "moves under traffic");
      await withTimeout(publisher, 60_000, "the publisher");
      await withTimeout(indexer, 10_000, "the index poller");

      // Every client got the last number of its room and of its group.
      await eventually(
        () => {
          for (const s of sockets) {
            assert.equal(s.watch.seqs.room.at(-1), roomNext[s.group] - 1, `${s.name} room`);
            assert.equal(s.watch.seqs.sid.at(-1), sidNext[s.group] - 1, `${s.name} sid`);
          }
        },
        { timeoutMs: 10_000, what: "the last messages" },
      ).catch(() => {});
      await sleep(SETTLE_MS);

      const listed = new Map((await api.listAllSockets({ namespace: "/" })).map((i) => [i.id, i]));
      let expected = 0;
      let received = 0;
      let moved = 0;
      const bad = [];
      for (const s of sockets) {
        const { room, sid } = s.watch.seqs;
        received += room.length + sid.length;
        const wantSid = range(firstSid.get(s), sidNext[s.group]);
        expected += wantSid.length;
        if (JSON.stringify(sid) !== JSON.stringify(wantSid)) {
          bad.push(`${s.name} by id: got ${sid.length} [${sid.slice(0, 5)}...${sid.slice(-3)}], want ${wantSid[0]}..${wantSid.at(-1)}`);
        }
        // Room numbers: consecutive up to the last, from no later than the index listed the membership.
        const first = room[0];
        const wantRoom = first === undefined ? [] : range(first, roomNext[s.group]);
        expected += roomNext[s.group] - (roomListedAt.get(s.id) ?? 0);
        if (!roomListedAt.has(s.id) || first === undefined || first > roomListedAt.get(s.id) || JSON.stringify(room) !== JSON.stringify(wantRoom)) {
          bad.push(
            `${s.name} room ${roomOf(s.group)}: got ${room.length} [${room.slice(0, 5)}...${room.slice(-3)}], ` +
              `want ${roomListedAt.get(s.id)}..${roomNext[s.group] - 1} (listed at ${roomListedAt.get(s.id)})`,
          );
        }
        const info = listed.get(s.id);
        if (info && info.edge_id !== edgeOfId(s.id)) moved++;
      }
      process.stderr.write(
        `[no_sticky] moves under traffic: ${sockets.length} clients, ${sent} publishes, ` +
          `>= ${expected} deliveries expected, ${received} received, ${moved} sessions held by another edge than their handshake's, ` +
          `${bad.length} clients with loss/duplicate/reordering; proxy ${statsText(proxy)}\n`,
      );
      assert.deepEqual(bad.slice(0, 20), [], `per client: no loss, no duplicate, no reordering (${bad.length} bad)`);
      assertAlive(sockets, "moves under traffic");
      assertNo400(proxy, "moves under traffic");
      assert.ok(moved > 0, "some sessions moved (upgraded on another edge than their handshake's)");
      // The edges count what they did for each other.
      const movedIn = await sumMetric(cluster.edges, "switchboard_session_moves_total", 'direction="in"');
      const movedOut = await sumMetric(cluster.edges, "switchboard_session_moves_total", 'direction="out"');
      assert.ok(movedIn >= moved, `switchboard_session_moves_total{direction="in"} ${movedIn} >= ${moved} moved sessions`);
      assert.equal(movedOut, movedIn, "every move counted in on one edge and out on another");
      assert.ok((await sumMetric(cluster.edges, "switchboard_session_move_latency_seconds_count")) >= moved, "each move timed");
      assert.ok((await sumMetric(cluster.edges, "switchboard_polling_forwarded_total", 'role="served"')) > 0, "polling requests served for other edges");
      assert.equal(
        await sumMetric(cluster.edges, "switchboard_polling_forwarded_total", 'role="sent"'),
        await sumMetric(cluster.edges, "switchboard_polling_forwarded_total", 'role="served"'),
        "every polling request passed on was served by its owner",
      );
    } finally {
      publishing = false;
      await Promise.allSettled([publisher, indexer]);
      clients.closeAll();
      await settleEmpty(15_000);
    }
  });

  // Last: it kills an edge.
  test("SIGKILL of the handshake edge: sessions upgraded on other edges stay connected and keep receiving", { timeout: 90_000 }, async () => {
    const proxy = await proxyOver(cluster.edges);
    const clients = new Clients();
    try {
      const specs = range(0, 12).map((i) => ({ name: `k${i}`, transport: "upgrade", userId: `k-user-${i}` }));
      const sockets = assertConnected(proxy, await connectAll(clients, proxy.url, specs), "kill");
      for (const s of sockets) watch(s);
      await waitUpgraded(sockets, "kill");
      for (const s of sockets) {
        assert.deepEqual(await call(s, "join-room", `kill-${s.name}`), { ok: true, room: `kill-${s.name}` });
        s.meta.rooms.add(`kill-${s.name}`);
      }
      const listed = await waitListed(sockets, "kill", { transport: "TRANSPORT_WEBSOCKET" });

      // The handshake edge is named by the Engine.IO sid; the edge holding the WebSocket by the broker.
      const ids = cluster.edgeIds();
      const moved = new Map(ids.map((id) => [id, []])); // handshake edge → sessions now held elsewhere
      for (const s of sockets) {
        const handshake = edgeOfId(s.io.engine.id);
        assert.ok(ids.includes(handshake), `Engine.IO sid ${s.io.engine.id} names an edge (${ids})`);
        assert.equal(edgeOfId(s.id), handshake, `${s.name}: socket id ${s.id} names the handshake edge`);
        if (listed.get(s.id).edge_id !== handshake) moved.get(handshake).push(s);
      }
      const [victimId, subjects] = [...moved].sort((a, b) => b[1].length - a[1].length)[0];
      assert.ok(subjects.length > 0, "some sessions upgraded on another edge than their handshake's");
      const victim = cluster.edges.findIndex((e) => e.id === victimId);
      process.stderr.write(`[no_sticky] kill: ${subjects.length} sessions made on ${victimId} and held elsewhere; SIGKILL ${victimId}\n`);

      const pingsBefore = new Map(subjects.map((s) => [s, s.watch.pings]));
      assert.ok(cluster.edges[victim].server.proc.kill("SIGKILL"), `SIGKILL sent to edge ${victimId}`);
      assert.equal((await withTimeout(cluster.edges[victim].server.exited, 5_000, "the edge to die")).signal, "SIGKILL");
      proxy.setDown(victim); // a balancer's health check takes it out

      await waitPings(subjects, pingsBefore, "after the kill");
      assertAlive(subjects, "after the kill");
      // Rooms and socket ids (which name the dead edge) still reach them, once, in order.
      await publishSeqs(subjects, 0, 10);
      const want = Object.fromEntries(KINDS.map((k) => [k, range(0, 10)]));
      await eventually(() => subjects.forEach((s) => KINDS.forEach((k) => assert.ok(s.watch.seqs[k].length >= 10))), {
        timeoutMs: 10_000,
        what: "publishes after the kill",
      }).catch(() => {});
      await sleep(SETTLE_MS);
      for (const s of subjects) {
        // Namespace publishes also reach the survivors that were not moved; only the subjects are checked.
        assert.deepEqual(s.watch.seqs, want, `${s.name} (made on ${victimId}, held by ${listed.get(s.id).edge_id}) keeps receiving`);
      }
      assertAlive(subjects, "after the kill and the publishes");
    } finally {
      clients.closeAll();
    }
  });
});
