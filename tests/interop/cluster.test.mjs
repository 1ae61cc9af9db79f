// The cluster end to end: 1 nats-server, 2 brokers, 3 edges (`switchboard
// broker` / `switchboard edge`), official socket.io-client clients spread over
// the edges (WebSocket and polling, some with a user id from the CONNECT
// auth), and the gRPC API of both brokers.
//
// - every Publish target kind reaches exactly the right clients, once
//   (room, rooms, namespace, socket id on a remote edge, user on two edges,
//   except rooms / sockets, another namespace, binary arguments, acks from
//   several edges with a timeout, PublishStream order)      lib/cases.mjs
// - JoinRooms / LeaveRooms / DisconnectSockets across edges  lib/cases.mjs
// - GetStats / ListSockets / ListRooms / GetPresence / WatchEvents agree with
//   what the clients did, on BOTH brokers                   lib/cases.mjs
// - relay rules (examples/chat.json's) cross edges           here
// - both brokers hold the same index                         here

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

import {
  SETTLE_MS,
  expectDelivery,
  joinByRule,
  record,
  registerCommandTests,
  registerDeliveryTests,
  registerValidationTests,
  registerWatchTests,
  waitEmpty,
  waitIndex,
} from "./lib/cases.mjs";
import { CONFIG_DIR, Clients, eventually, startCluster } from "./lib/cluster.mjs";
import { call, waitForCount, withTimeout } from "./lib/wait.mjs";

const CONFIG = path.join(CONFIG_DIR, "cluster.json");

let cluster;
const env = () => ({
  edges: cluster.edges.map((e) => ({ id: e.id, url: e.url })),
  apis: cluster.apis,
  brokerIds: cluster.brokers.map((b) => b.id),
  cluster: true,
});

before(async () => {
  cluster = await startCluster({
    edges: 3,
    brokers: 2,
    config: CONFIG,
    edgeArgs: ["--heartbeat-ms", "500"],
  });
});

after(async () => {
  if (cluster) await cluster.stop();
});

registerDeliveryTests(env);
registerCommandTests(env);
registerWatchTests(env);
registerValidationTests(env);

describe("relay rules cross edges", () => {
  let clients;
  after(async () => {
    clients?.closeAll();
    await waitEmpty(cluster.apis);
  });

  async function connect(name, edgeIndex, transport = "websocket") {
    const edge = cluster.edges[edgeIndex];
    return clients.connect({ name, url: edge.url, edge: edge.id, transport });
  }

  test("a client's join-room on edge 1, then a publish through either broker reaches it", async () => {
    clients = new Clients();
    const p = await connect("p", 0);
    const other = await connect("other", 1);
    await joinByRule(p, "relay-r");
    await waitIndex(cluster.apis, [p, other], "p in relay-r on both brokers");
    for (const api of cluster.apis) {
      await expectDelivery({
        all: [p, other],
        expected: [p],
        event: `via-${api.address}`,
        publish: () => api.publish({ target: { rooms: ["relay-r"] }, event: `via-${api.address}`, args: [] }),
      });
    }
    clients.closeAll();
    await waitEmpty(cluster.apis);
  });

  test("join notifications, room messages and namespace messages reach members on other edges", async () => {
    clients = new Clients();
    const p = await connect("p", 0, "websocket");
    const q = await connect("q", 1, "polling");
    const r = await connect("r", 2, "websocket");
    const s = await connect("s", 1, "websocket"); // not a member
    const all = [p, q, r, s];
    const joined = record(all, "user-joined");
    try {
      // One member at a time, each visible to the brokers before the next
      // joins, so that the earlier members' edges hold the room's subscription.
      await joinByRule(p, "relay-x");
      await waitIndex(cluster.apis, all, "p in relay-x");
      await joinByRule(q, "relay-x");
      await waitIndex(cluster.apis, all, "q in relay-x");
      await joinByRule(r, "relay-x");
      await waitForCount(joined.got.get("p"), 2, "user-joined at p (edge 1) for q and r");
      await waitForCount(joined.got.get("q"), 1, "user-joined at q (edge 2) for r");
      await sleep(SETTLE_MS);
      assert.deepEqual(joined.got.get("p"), [[{ socketId: q.id, room: "relay-x" }], [{ socketId: r.id, room: "relay-x" }]]);
      assert.deepEqual(joined.got.get("q"), [[{ socketId: r.id, room: "relay-x" }]]);
      assert.deepEqual(joined.counts(), { p: 2, q: 1, r: 0, s: 0 }, "the joiner and non-members are not told");
    } finally {
      joined.stop();
    }

    const { got } = await expectDelivery({
      all,
      expected: [q, r],
      event: "room-message",
      publish: async () => assert.deepEqual(await call(p, "room-message", { room: "relay-x", message: "hi" }), { ok: true }),
    });
    for (const name of ["q", "r"]) {
      const [[payload]] = got.get(name);
      assert.equal(payload.from, p.id);
      assert.equal(payload.message, "hi");
      assert.equal(typeof payload.timestamp, "number");
    }

    // A namespace relay from edge 3 reaches every edge, the sender included.
    const ns = await expectDelivery({
      all,
      expected: all,
      event: "message",
      publish: async () => assert.deepEqual(await call(r, "message", { text: "to all" }), { ok: true }),
    });
    for (const list of ns.got.values()) assert.equal(list[0][0].text, "to all");

    // A member that left is no longer reached from another edge.
    assert.deepEqual(await call(q, "leave-room", "relay-x"), { ok: true, room: "relay-x" });
    q.meta.rooms.delete("relay-x");
    await waitIndex(cluster.apis, all, "q left relay-x");
    await expectDelivery({
      all,
      expected: [p],
      event: "room-message",
      publish: async () => assert.deepEqual(await call(r, "room-message", { room: "relay-x", message: 2 }), { ok: true }),
    });
  });

  test("a private message reaches a socket on another edge, and only it", async () => {
    clients?.closeAll();  // the previous test's
    await waitEmpty(cluster.apis);
    clients = new Clients();
    const from = await connect("from", 0);
    const to = await connect("to", 2, "polling");
    const bystander = await connect("bystander", 2);
    const { got } = await expectDelivery({
      all: [from, to, bystander],
      expected: [to],
      event: "private-message",
      publish: async () =>
        assert.deepEqual(await call(from, "private-message", { to: to.id, message: "psst" }), { ok: true }),
    });
    assert.deepEqual(got.get("to"), [[{ from: from.id, message: "psst" }]]);
    clients.closeAll();
    await waitEmpty(cluster.apis);
  });
});

describe("brokers are peers", () => {
  let clients;
  after(async () => {
    clients?.closeAll();
    await waitEmpty(cluster.apis);
  });

  test("both brokers hold the same index: every SocketInfo field, rooms, stats", async () => {
    clients = new Clients();
    const sockets = [];
    for (let i = 0; i < 6; i++) {
      const edge = cluster.edges[i % 3];
      const s = await clients.connect({
        name: `peer${i}`,
        url: edge.url,
        edge: edge.id,
        transport: i % 2 ? "polling" : "websocket",
        userId: i % 3 ? `peer-user-${i % 2}` : undefined,
      });
      if (i % 2) await joinByRule(s, "peers");
      sockets.push(s);
    }
    await waitIndex(cluster.apis, sockets, "the peers' sockets");
    const [one, two] = cluster.apis;
    assert.deepEqual(await two.listAllSockets(), await one.listAllSockets(), "ListSockets, every field");
    assert.deepEqual(await two.listAllRooms(), await one.listAllRooms(), "ListRooms");
    const [s1, s2] = [await one.getStats(), await two.getStats()];
    // (Message counters come with heartbeats, which each broker sees at its own moment.)
    const structure = (st) => ({
      totals: [st.totals.sockets, st.totals.users, st.totals.rooms],
      edges: st.edges.map((e) => [e.edge_id, e.counts.sockets, e.counts.users, e.counts.rooms]),
      namespaces: st.namespaces.map((n) => [n.namespace, n.counts.sockets, n.counts.users, n.counts.rooms]),
    });
    assert.deepEqual(structure(s2), structure(s1), "GetStats");
    assert.notEqual(s1.broker_id, s2.broker_id, "two distinct brokers answered");
  });
});

describe("latency", () => {
  let clients;
  after(async () => {
    clients?.closeAll();
    await waitEmpty(cluster.apis);
  });

  test("50 sequential publishes through both brokers each reach one room member per edge once (prints publish → client latency)", async () => {
    clients = new Clients();
    const members = [];
    for (const [i, edge] of cluster.edges.entries()) {
      const s = await clients.connect({ name: `lat${i}`, url: edge.url, edge: edge.id, transport: "websocket" });
      await joinByRule(s, "latency");
      members.push(s);
    }
    await waitIndex(cluster.apis, members, "the latency room");
    const samples = [];
    for (let i = 0; i < 50; i++) {
      const rec = record(members, "ping");
      const started = process.hrtime.bigint();
      const arrivals = members.map(
        (s) => new Promise((resolve) => s.once("ping", () => resolve(Number(process.hrtime.bigint() - started) / 1e6))),
      );
      await cluster.apis[i % 2].publish({ target: { rooms: ["latency"] }, event: "ping", args: [] });
      const ms = await withTimeout(Promise.all(arrivals), 5000, `publish ${i} at every member`);
      await sleep(20);
      assert.deepEqual(rec.counts(), { lat0: 1, lat1: 1, lat2: 1 }, `publish ${i} arrived once at each member`);
      rec.stop();
      samples.push(Math.max(...ms));
    }
    samples.sort((a, b) => a - b);
    const q = (p) => samples[Math.min(samples.length - 1, Math.floor(p * samples.length))].toFixed(2);
    process.stderr.write(
      `[cluster] publish → last of 3 clients (3 edges, gRPC + NATS + WebSocket): median ${q(0.5)} ms, p90 ${q(0.9)} ms, max ${q(1)} ms\n`,
    );
    assert.equal(samples.length, 50);
  });
});

describe("transport", () => {
  test("a client that upgrades from polling to WebSocket is listed with its new transport", async () => {
    const clients = new Clients();
    try {
      const edge = cluster.edges[1];
      const s = await clients.connect({ name: "upgrader", url: edge.url, edge: edge.id, transport: "upgrade" });
      await eventually(
        () => assert.equal(s.io.engine.transport.name, "websocket", "the client upgraded"),
        { what: "client upgrade" },
      );
      for (const api of cluster.apis) {
        await eventually(
          async () => {
            const { sockets } = await api.listSockets({ namespace: "/" });
            const info = sockets.find((x) => x.id === s.id);
            assert.ok(info, `${s.id} listed`);
            assert.equal(info.transport, "TRANSPORT_WEBSOCKET");
          },
          { what: `transport on ${api.address}` },
        );
      }
    } finally {
      clients.closeAll();
      await waitEmpty(cluster.apis);
    }
  });
});
