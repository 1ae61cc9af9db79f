// Connection state recovery in a cluster (issue 17): nats-server with
// JetStream (file storage), a broker and five edges. The subjects reach the
// edges through a round-robin balancer (no affinity); each one's edge fails
// in turn — a network blip, SIGKILL, SIGTERM drain, SIGKILL again, a blip —
// and the balancer sends it to the next edge. Two publishers run all the
// time, numbering their messages: gRPC to a room, and a client's broadcast to
// the namespace through a relay rule (from an edge that is never failed).
// Every subject must come back each time with `recovered`, its socket id,
// user and rooms, and hold exactly 0..N-1 from each publisher, in order.
// Then: expiry, a pid in use, another user's pid, and a nats-server restart
// between a crash and the recovery.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

import { io } from "socket.io-client";

import { json } from "./lib/api.mjs";
import { eventually, startCluster, startEdge } from "./lib/cluster.mjs";
import { startRoundRobinProxy } from "./lib/rr_proxy.mjs";
import { call, once, waitForCount } from "./lib/wait.mjs";

const RULES = [
  { event: "join-room", action: "join", room: "$.room|$", ack: { ok: true, room: "$room" } },
  { event: "count", action: "relay", target: "namespace", exceptSender: false, ack: { ok: true } },
];
const POOL = 4; // edges behind the balancer, failed one after the other

let cluster;
let proxy;
let dir;
let api;
let publisherEdge;
const sockets = [];

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "sb-recovery-cluster-"));
  const config = path.join(dir, "config.json");
  writeFileSync(config, JSON.stringify({
    // A polling client whose edge dies between two requests hears nothing:
    // it finds out when the pings stop.
    engine: { pingInterval: 1000, pingTimeout: 2000 },
    namespaces: {
      "/": {
        userIdFromAuth: "userId",
        // The relay publisher sends about 100 events a second.
        eventRate: { perSecond: 0 },
        connectionStateRecovery: { maxDisconnectionDuration: 60000, skipMiddlewares: true },
        rules: RULES,
      },
      "/short": {
        userIdFromAuth: "userId",
        connectionStateRecovery: { maxDisconnectionDuration: 1000 },
        rules: RULES,
      },
      "/checked": {
        userIdFromAuth: "userId",
        connectionStateRecovery: { maxDisconnectionDuration: 60000, skipMiddlewares: false },
        rules: RULES,
      },
    },
  }));
  cluster = await startCluster({
    edges: POOL,
    brokers: 1,
    config,
    natsArgs: ["-js", "-sd", path.join(dir, "jetstream")],
  });
  api = cluster.apis[0];
  publisherEdge = await startEdge(cluster.nats.url, "pub", ["--config", config, "--threads", "1"]);
  await cluster.waitForEdges([...cluster.edgeIds(), "pub"].sort());
  proxy = await startRoundRobinProxy(
    cluster.edges.map((e) => ({ host: "127.0.0.1", port: Number(new URL(e.url).port) })),
  );
});

after(async () => {
  for (const s of sockets) s.disconnect();
  await proxy?.close();
  await publisherEdge?.server.stop();
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function client(url, options = {}) {
  const socket = io(url, {
    forceNew: true,
    reconnectionDelay: 100,
    reconnectionDelayMax: 300,
    randomizationFactor: 0,
    ...options,
  });
  sockets.push(socket);
  return socket;
}

async function connected(socket) {
  if (!socket.connected) await once(socket, "connect", 10000);
  return socket;
}

// Only upstream `i` of the balancer takes new connections.
function only(i) {
  for (let k = 0; k < POOL; k++) proxy.setDown(k, k !== i);
}

const range = (n) => Array.from({ length: n }, (_, i) => i);

// Resolves once `socket` has connected again after now.
function reconnection(socket, ms = 15000) {
  return once(socket, "connect", ms);
}

// The Prometheus counter switchboard_recoveries_total{namespace, result}, summed over edges.
async function recoveries(nsp, result) {
  let total = 0;
  for (const edge of [...cluster.edges, publisherEdge]) {
    if (edge.server.proc.exitCode !== null || edge.server.proc.signalCode !== null) continue;
    const text = await (await fetch(`http://127.0.0.1:${edge.server.adminPort}/metrics`)).text();
    const line = text
      .split("\n")
      .find((l) => l.startsWith("switchboard_recoveries_total{") && l.includes(`namespace="${nsp}"`) && l.includes(`result="${result}"`));
    total += line ? Number(line.split(" ").pop()) : 0;
  }
  return total;
}

test("blip, SIGKILL, SIGTERM drain, SIGKILL, blip: every client recovers on the next edge with nothing missed", async () => {
  only(0);
  const N = 400;
  const subjects = [];
  for (const [k, transports] of [["websocket"], ["polling"], ["polling", "websocket"]].entries()) {
    for (let j = 0; j < 2; j++) {
      const name = `u${k}${j}`;
      const socket = await connected(client(proxy.url, { transports, auth: { userId: name } }));
      assert.match(socket.id, /^e1\./, "the balancer sent it to edge 1");
      assert.deepEqual(await call(socket, "join-room", "red"), { ok: true, room: "red" });
      const got = { api: [], relay: [], offsets: [], recoveries: 0 };
      socket.on("api", (n, offset) => {
        got.api.push(n);
        got.offsets.push(offset);
      });
      socket.on("count", (n, offset) => {
        got.relay.push(n.n);
        got.offsets.push(offset);
      });
      subjects.push({ socket, name, id: socket.id, transports, got });
    }
  }
  const publisher = await connected(client(publisherEdge.url, { transports: ["websocket"], auth: { userId: "pub" } }));

  let failed = null;
  const viaApi = (async () => {
    for (let i = 0; i < N; i++) {
      await api.publish({ target: { namespace: "/", rooms: ["red"] }, event: "api", args: [json(i)] });
      await sleep(8);
    }
  })().catch((e) => (failed = e));
  const viaClient = (async () => {
    for (let i = 0; i < N; i++) {
      assert.deepEqual(await call(publisher, "count", { n: i }), { ok: true }, `relay ${i} taken`);
      await sleep(8);
    }
  })().catch((e) => (failed = e));

  // Each step fails edge `from` and lets the balancer send the clients to `to`.
  const steps = [
    { what: "blip", from: 0, to: 0 },
    { what: "SIGKILL", from: 0, to: 1 },
    { what: "SIGTERM", from: 1, to: 2 },
    { what: "SIGKILL", from: 2, to: 3 },
    { what: "blip", from: 3, to: 3 },
  ];
  for (const step of steps) {
    await sleep(250);
    const back = subjects.map((s) => reconnection(s.socket));
    const edge = cluster.edges[step.from];
    if (step.what === "blip") {
      for (const s of subjects) s.socket.io.engine.close();
    } else if (step.what === "SIGKILL") {
      // Killed first, then out of the balancer (its health check notices).
      assert.ok(edge.server.proc.kill("SIGKILL"));
      only(step.to);
    } else {
      // Out of the balancer first (the pod turns not ready), then drained.
      only(step.to);
      edge.server.proc.kill("SIGTERM");
    }
    const started = Date.now();
    await Promise.all(back);
    process.stderr.write(`[recovery-cluster] ${step.what} e${step.from + 1}: all back in ${Date.now() - started} ms\n`);
    for (const s of subjects) {
      assert.equal(s.socket.recovered, true, `${step.what} e${step.from + 1}: ${s.name} (${s.transports}) recovered`);
      assert.equal(s.socket.id, s.id, `${step.what}: ${s.name} keeps its socket id`);
      s.got.recoveries++;
    }
  }
  await Promise.all([viaApi, viaClient]);
  assert.equal(failed, null, `the publishers ran to the end: ${failed}`);
  for (const s of subjects) {
    await waitForCount(s.got.api, N, `${s.name}: API publishes`, 15000);
    await waitForCount(s.got.relay, N, `${s.name}: relayed broadcasts`, 15000);
  }
  await sleep(200); // nothing more may come
  for (const s of subjects) {
    assert.deepEqual(s.got.api, range(N), `${s.name} (${s.transports}): the room's publishes once each, in order`);
    assert.deepEqual(s.got.relay, range(N), `${s.name} (${s.transports}): the broadcasts once each, in order`);
    for (let i = 1; i < s.got.offsets.length; i++) {
      assert.ok(BigInt(s.got.offsets[i]) > BigInt(s.got.offsets[i - 1]), `${s.name}: offsets increase`);
    }
  }
  // The broker sees them on edge 4 with their users and rooms.
  await eventually(async () => {
    const listed = await api.listSockets({ namespace: "/", room: "red" });
    for (const s of subjects) {
      const found = listed.sockets.find((x) => x.id === s.id);
      if (!found || found.user_id !== s.name || found.edge_id !== "e4") {
        throw new Error(`${s.name} not listed in red on e4: ${JSON.stringify(listed.sockets.map((x) => [x.id, x.edge_id]))}`);
      }
    }
  }, { what: "the restored sockets in the broker's index" });
  assert.ok((await recoveries("/", "recovered")) >= subjects.length * 2, "counted as recovered");
});

test("expired, in use, another user's: a new session each, counted", async () => {
  // The edges still standing: e4 and pub. Clients go to e4.
  only(3);
  const late = await connected(client(`${proxy.url}/short`, {
    transports: ["websocket"], auth: { userId: "late" }, reconnectionDelay: 2500, reconnectionDelayMax: 2500,
  }));
  await call(late, "join-room", "r");
  const got = once(late, "api");
  await api.publish({ target: { namespace: "/short", rooms: ["r"] }, event: "api", args: [json(1)] });
  await got;
  const lateId = late.id;
  const expiredBefore = await recoveries("/short", "expired");
  const back = reconnection(late);
  late.io.engine.close();
  await back;
  assert.equal(late.recovered, false, "expired: a new session");
  assert.notEqual(late.id, lateId);
  assert.equal(await recoveries("/short", "expired"), expiredBefore + 1, "counted as expired");

  // A pid presented on another edge while its session is connected.
  const owner = await connected(client(`${proxy.url}/checked`, { transports: ["websocket"], auth: { userId: "owner" } }));
  await call(owner, "join-room", "secret");
  const ownerGot = once(owner, "api");
  await api.publish({ target: { namespace: "/checked", rooms: ["secret"] }, event: "api", args: [json(1)] });
  const [, offset] = await ownerGot;
  const reusedBefore = await recoveries("/checked", "reused");
  const thief = await connected(client(`${publisherEdge.url}/checked`, {
    transports: ["websocket"], auth: { userId: "owner", pid: owner._pid, offset },
  }));
  assert.equal(thief.recovered, false, "a pid in use: a new session");
  assert.notEqual(thief.id, owner.id);
  assert.equal(await recoveries("/checked", "reused"), reusedBefore + 1, "counted as reused");

  // Another user presenting a disconnected session's pid (middlewares run again).
  const pid = owner._pid;
  owner.io.reconnection(false);
  owner.io.engine.close();
  await sleep(300);
  const unknownBefore = await recoveries("/checked", "unknown");
  const mallory = await connected(client(`${publisherEdge.url}/checked`, {
    transports: ["websocket"], auth: { userId: "mallory", pid, offset },
  }));
  assert.equal(mallory.recovered, false, "another user's pid: a new session");
  const leak = [];
  mallory.on("api", (...args) => leak.push(args));
  await api.publish({ target: { namespace: "/checked", rooms: ["secret"] }, event: "api", args: [json(2)] });
  await sleep(200);
  assert.deepEqual(leak, [], "not in the owner's rooms");
  assert.equal(await recoveries("/checked", "unknown"), unknownBefore + 1, "counted as unknown");
});

test("a polling session that upgrades on another edge moves with its pid: nothing missed or doubled, then recoverable", async () => {
  // Polling requests go to e4, WebSocket upgrades to the other edge: each
  // session moves there as it upgrades, with publishes flowing.
  const e4 = cluster.edges[3];
  const lb = await startRoundRobinProxy(
    [e4, publisherEdge].map((e) => ({ host: "127.0.0.1", port: Number(new URL(e.url).port) })),
  );
  lb.setDown(1, true);
  lb.routeUpgrades(1);
  try {
    const M = 300;
    let published = 0;
    const publishing = (async () => {
      for (let i = 0; i < M; i++) {
        await api.publish({ target: { namespace: "/", rooms: ["green"] }, event: "api", args: [json(i)] });
        published = i + 1;
        await sleep(4);
      }
    })();
    const clients = [];
    for (let k = 0; k < 4; k++) {
      const socket = await connected(client(lb.url, { transports: ["polling", "websocket"], auth: { userId: `mover${k}` } }));
      const got = [];
      socket.on("api", (n) => got.push(n));
      await call(socket, "join-room", "green");
      clients.push({ socket, got, id: socket.id });
    }
    assert.ok(published < M, "the sessions moved while publishes flowed");
    await publishing;
    for (const c of clients) {
      await eventually(async () => {
        if (c.got.at(-1) !== M - 1) throw new Error(`${c.id} got up to ${c.got.at(-1)}`);
      }, { what: `${c.id}: the last publish` });
    }
    await sleep(150);
    const listed = await api.listSockets({ namespace: "/", room: "green" });
    const moved = clients.filter((c) => {
      const info = listed.sockets.find((x) => x.id === c.id);
      return info && !c.id.startsWith(`${info.edge_id}.`);
    });
    assert.equal(moved.length, clients.length, `every session moved: ${JSON.stringify(listed.sockets.map((x) => [x.id, x.edge_id]))}`);
    for (const c of clients) {
      assert.equal(c.socket.io.engine.transport.name, "websocket", "upgraded");
      // From its join on: every publish once, in order, across the move.
      assert.deepEqual(c.got, range(M).slice(c.got[0]), `${c.id}: once each, in order, across the move`);
    }
    // The moved sessions kept their pid: a blip recovers them.
    for (const c of clients) {
      const back = reconnection(c.socket);
      c.socket.io.engine.close();
      await back;
      assert.equal(c.socket.recovered, true, `${c.id} recovered after the move`);
      assert.equal(c.socket.id, c.id);
    }
  } finally {
    await lb.close();
  }
});

test("nats-server restarts (file storage) between a crash and the recovery: nothing missed", async () => {
  const e4 = cluster.edges[3];
  const spare = await startEdge(cluster.nats.url, "e6", ["--config", path.join(dir, "config.json"), "--threads", "1"]);
  const lb = await startRoundRobinProxy([
    { host: "127.0.0.1", port: Number(new URL(e4.url).port) },
    { host: "127.0.0.1", port: Number(new URL(spare.url).port) },
  ]);
  try {
    lb.setDown(1, true);
    const socket = await connected(client(lb.url, { transports: ["websocket"], auth: { userId: "dora" } }));
    assert.match(socket.id, /^e4\./);
    await call(socket, "join-room", "blue");
    const got = [];
    socket.on("api", (n) => got.push(n));
    for (let i = 0; i < 5; i++) {
      await api.publish({ target: { namespace: "/", rooms: ["blue"] }, event: "api", args: [json(i)] });
    }
    await waitForCount(got, 5, "before the crash");
    const id = socket.id;
    lb.setDown(0, true); // nowhere to go until NATS is back
    const back = reconnection(socket, 30000);
    assert.ok(e4.server.proc.kill("SIGKILL"));
    await e4.server.exited;
    for (let i = 5; i < 10; i++) {
      await api.publish({ target: { namespace: "/", rooms: ["blue"] }, event: "api", args: [json(i)] });
    }
    await cluster.nats.stop();
    await cluster.nats.start();
    // The spare edge and the broker reconnect; then the client may come back.
    const standing = [...cluster.edges, publisherEdge]
      .filter((e) => e.server.proc.exitCode === null && e.server.proc.signalCode === null)
      .map((e) => e.id);
    await cluster.waitForEdges([...standing, "e6"].sort(), 20000);
    await sleep(1500); // the edges' log consumers come back after the restart
    lb.setDown(1, false);
    await back;
    assert.equal(socket.recovered, true, "recovered after the NATS restart");
    assert.equal(socket.id, id);
    await waitForCount(got, 10, "after the recovery");
    await api.publish({ target: { namespace: "/", rooms: ["blue"] }, event: "api", args: [json(10)] });
    await waitForCount(got, 11, "live again");
    await sleep(100);
    assert.deepEqual(got, range(11), "the missed publishes once each, in order, then live ones");
  } finally {
    await lb.close();
    await spare.server.stop();
  }
});
