// Failures of a cluster (1 nats-server, 2 brokers, 3 edges; brokers run with
// --edge-timeout-ms 3000, edges with --heartbeat-ms 500), each in a fresh
// cluster, with official socket.io-client clients:
//
// - an edge killed with SIGKILL: both brokers drop its sockets within the
//   edge timeout; the other edges keep serving; its clients can reconnect
//   elsewhere;
// - a broker restarted: its index equals the other broker's within 5 s, even
//   though sockets came, went and joined rooms while it was down;
// - nats-server stopped and restarted on the same port: edges keep serving
//   their own clients meanwhile, reconnect, their room subscriptions come
//   back, publishes reach everyone again and both brokers' indexes
//   re-converge (changes made during the outage included).

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

import { json, status } from "./lib/api.mjs";
import {
  SETTLE_MS,
  disconnected,
  expectDelivery,
  joinByRule,
  record,
  waitIndex,
} from "./lib/cases.mjs";
import { CONFIG_DIR, Clients, eventually, expectedSockets, socketView, startCluster } from "./lib/cluster.mjs";
import { call, waitForCount } from "./lib/wait.mjs";

const CONFIG = path.join(CONFIG_DIR, "cluster.json");
const EDGE_TIMEOUT_MS = 3000;
const HEARTBEAT_MS = 500;
const RECONVERGE_MS = 15_000;

function start() {
  return startCluster({
    edges: 3,
    brokers: 2,
    config: CONFIG,
    edgeArgs: ["--heartbeat-ms", String(HEARTBEAT_MS)],
    brokerArgs: ["--edge-timeout-ms", String(EDGE_TIMEOUT_MS)],
  });
}

async function connectTo(clients, cluster, name, edgeIndex, extra = {}) {
  const edge = cluster.edges[edgeIndex];
  return clients.connect({ name, url: edge.url, edge: edge.id, ...extra });
}

// --------------------------------------------------------------------------

describe("an edge killed with SIGKILL", () => {
  let cluster;
  const clients = new Clients();
  before(async () => {
    cluster = await start();
  });
  after(async () => {
    clients.closeAll();
    if (cluster) await cluster.stop();
  });

  test("both brokers drop its sockets within the edge timeout; the rest keeps working", async () => {
    const k1 = await connectTo(clients, cluster, "k1", 0, { userId: "uk" });
    const k2 = await connectTo(clients, cluster, "k2", 1, { transport: "polling" });
    const k3 = await connectTo(clients, cluster, "k3", 2, { userId: "uk" });
    const k4 = await connectTo(clients, cluster, "k4", 2, { transport: "polling" });
    for (const s of [k1, k3, k4]) await joinByRule(s, "kroom");
    await waitIndex(cluster.apis, [k1, k2, k3, k4], "every client in the index");

    const victim = cluster.edges[2];
    const lost = [disconnected(k3, 15_000), disconnected(k4, 15_000)];
    const killedAt = Date.now();
    assert.ok(victim.server.proc.kill("SIGKILL"), "SIGKILL sent to the edge's PID");
    const { signal } = await victim.server.exited;
    assert.equal(signal, "SIGKILL");

    // Both brokers: the edge and its sockets are gone.
    const survivors = [k1, k2];
    const dropTimes = await Promise.all(
      cluster.apis.map(async (api) => {
        await eventually(
          async () => {
            const stats = await api.getStats();
            assert.deepEqual(stats.edges.map((e) => e.edge_id), ["e1", "e2"], "live edges");
            assert.deepEqual((await api.listAllSockets()).map(socketView), expectedSockets(survivors));
          },
          { timeoutMs: EDGE_TIMEOUT_MS + 7000, what: `broker at ${api.address} drops e3` },
        );
        return Date.now() - killedAt;
      }),
    );
    process.stderr.write(`[cluster_failure] brokers dropped the killed edge after ${dropTimes.join(" / ")} ms\n`);
    for (const ms of dropTimes) {
      // The timeout, plus one heartbeat interval and some scheduling slack.
      assert.ok(ms <= EDGE_TIMEOUT_MS + 2000, `dropped ${ms} ms after the kill (edge timeout ${EDGE_TIMEOUT_MS} ms)`);
    }
    for (const api of cluster.apis) {
      assert.deepEqual(
        (await api.listAllRooms()).map((r) => [r.namespace, r.name, r.members]),
        [["/", "kroom", 1]],
        "kroom only has k1",
      );
      const presence = await api.getPresence({ user_id: "uk" });
      assert.deepEqual(presence.sockets.map((s) => s.id), [k1.id], "uk is only on e1");
      const stats = await api.getStats();
      assert.deepEqual([stats.totals.sockets, stats.totals.users, stats.totals.rooms], [2, 1, 1], "totals");
    }

    // Its clients lost their connection.
    for (const reason of await Promise.all(lost)) {
      assert.ok(["transport close", "transport error", "ping timeout"].includes(reason), `disconnect reason ${reason}`);
    }

    // The other edges still serve, through either broker.
    const ns = await expectDelivery({
      all: [k1, k2],
      expected: [k1, k2],
      event: "after-kill",
      publish: () => cluster.apis[1].publish({ target: { namespace: "/" }, event: "after-kill", args: [] }),
    });
    assert.equal(ns.result.recipients, 2);

    // A client of the dead edge reconnects to another one and is reachable by user.
    const k3again = await connectTo(clients, cluster, "k3again", 0, { userId: "uk", transport: "polling" });
    await joinByRule(k3again, "kroom");
    await waitIndex(cluster.apis, [k1, k2, k3again], "k3 back on e1");
    await expectDelivery({
      all: [k1, k2, k3again],
      expected: [k1, k3again],
      event: "to-uk",
      publish: () => cluster.apis[0].publish({ target: { user_ids: ["uk"] }, event: "to-uk", args: [] }),
    });
  });
});

// --------------------------------------------------------------------------

describe("a broker restarted", () => {
  let cluster;
  const clients = new Clients();
  before(async () => {
    cluster = await start();
  });
  after(async () => {
    clients.closeAll();
    if (cluster) await cluster.stop();
  });

  test("its index equals the other broker's within 5 s, changes made while it was down included", async () => {
    const r = [];
    for (let i = 0; i < 6; i++) {
      r.push(
        await connectTo(clients, cluster, `r${i}`, i % 3, {
          transport: i % 2 ? "polling" : "websocket",
          userId: i % 3 === 0 ? "ur" : undefined,
        }),
      );
    }
    await joinByRule(r[0], "before");
    await joinByRule(r[4], "before");
    let live = [...r];
    await waitIndex(cluster.apis, live, "first clients");

    const { code, signal } = await cluster.brokers[1].server.stop();
    assert.equal(code, 0, `broker b2 exits cleanly on SIGTERM (code ${code}, signal ${signal})`);

    // While b2 is down: a socket leaves, one arrives, rooms change (by rule and by b1's API).
    r[1].disconnect();
    live = live.filter((s) => s !== r[1]);
    const late = await connectTo(clients, cluster, "late", 1, { userId: "ur" });
    live.push(late);
    await joinByRule(r[2], "during");
    await cluster.apis[0].joinRooms({ selector: { user_ids: ["ur"] }, rooms: ["ur-room"] });
    for (const s of live.filter((x) => x.meta.userId === "ur")) s.meta.rooms.add("ur-room");
    assert.deepEqual(await call(r[4], "leave-room", "before"), { ok: true, room: "before" });
    r[4].meta.rooms.delete("before");
    await waitIndex([cluster.apis[0]], live, "b1 sees the changes");

    await cluster.restartBroker(1);
    const restartedAt = Date.now();
    const [one, two] = cluster.apis;
    await eventually(
      async () => {
        assert.deepEqual(await two.listAllSockets(), await one.listAllSockets(), "ListSockets of b2 = of b1");
      },
      { timeoutMs: 5000, what: "restarted b2 rebuilt its index" },
    );
    const rebuiltMs = Date.now() - restartedAt;
    assert.deepEqual((await two.listAllSockets()).map(socketView), expectedSockets(live), "and it is the truth");
    assert.deepEqual(await two.listAllRooms(), await one.listAllRooms(), "ListRooms");
    const [s1, s2] = [await one.getStats(), await two.getStats()];
    assert.deepEqual(s2.edges.map((e) => e.edge_id), ["e1", "e2", "e3"], "b2 knows every edge");
    assert.deepEqual(
      [s2.totals.sockets, s2.totals.users, s2.totals.rooms],
      [s1.totals.sockets, s1.totals.users, s1.totals.rooms],
      "GetStats totals",
    );
    assert.equal(s2.broker_id, "b2");
    process.stderr.write(`[cluster_failure] restarted broker rebuilt its index in ${rebuiltMs} ms\n`);

    // And it publishes.
    await expectDelivery({
      all: live,
      expected: live.filter((s) => s.meta.rooms.has("ur-room")),
      event: "from-new-b2",
      publish: () => two.publish({ target: { rooms: ["ur-room"] }, event: "from-new-b2", args: [json(1)] }),
    });
  });
});

// --------------------------------------------------------------------------

describe("nats-server stopped and restarted on the same port", () => {
  let cluster;
  const clients = new Clients();
  const n = {};
  let live;

  before(async () => {
    cluster = await start();
    n.n1 = await connectTo(clients, cluster, "n1", 0, { userId: "un" });
    n.n2 = await connectTo(clients, cluster, "n2", 1, { transport: "polling" });
    n.n3 = await connectTo(clients, cluster, "n3", 2, { userId: "un" });
    n.n4 = await connectTo(clients, cluster, "n4", 0, { transport: "polling" });
    for (const s of [n.n1, n.n2, n.n3]) await joinByRule(s, "nroom");
    live = Object.values(n);
    await waitIndex(cluster.apis, live, "every client in the index");
    const port = cluster.nats.port;
    await cluster.nats.stop();
    assert.equal(cluster.nats.port, port);
  });

  after(async () => {
    clients.closeAll();
    if (cluster) await cluster.stop();
  });

  test("while NATS is down, edges keep serving their own clients", async () => {
    await sleep(1000);
    for (const s of live) assert.equal(s.connected, true, `${s.name} is still connected`);
    // A namespace relay from n1 reaches n4 on the same edge (other edges may get it later or never).
    const rec = record(live, "message");
    try {
      assert.deepEqual(await call(n.n1, "message", { text: "local" }), { ok: true });
      await waitForCount(rec.got.get("n1"), 1, "n1's own message");
      await waitForCount(rec.got.get("n4"), 1, "n1's message at n4 (same edge)");
    } finally {
      rec.stop();
    }
    // Membership changes made during the outage: a join on e1, a disconnect on e2.
    await joinByRule(n.n4, "nroom2");
    n.n2.disconnect();
    live = live.filter((s) => s !== n.n2);
  });

  test("while NATS is down, Publish is UNAVAILABLE", async () => {
    for (const api of cluster.apis) {
      await eventually(
        async () => {
          await assert.rejects(
            api.publish({ target: { rooms: ["nroom"] }, event: "during-outage", args: [] }, { deadlineMs: 2000 }),
            (err) => {
              assert.equal(err.code, status.UNAVAILABLE, `status ${err.code} (${err.details})`);
              return true;
            },
          );
        },
        { timeoutMs: 5000, intervalMs: 200, what: `Publish on ${api.address} during the outage` },
      );
    }
  });

  test("after the restart both brokers' indexes re-converge, outage changes included", async () => {
    await cluster.nats.start();
    const restartedAt = Date.now();
    await waitIndex(cluster.apis, live, "indexes after the NATS restart", RECONVERGE_MS);
    for (const api of cluster.apis) {
      await eventually(
        async () => {
          const stats = await api.getStats();
          assert.deepEqual(stats.edges.map((e) => e.edge_id), ["e1", "e2", "e3"]);
          // Heard from since the restart: every edge is back on the bus (the
          // index alone may still hold an edge that has not reconnected yet).
          for (const e of stats.edges) {
            const heardMs = Number(e.last_heartbeat.seconds) * 1000 + e.last_heartbeat.nanos / 1e6;
            assert.ok(heardMs >= restartedAt, `${e.edge_id} heard from since the restart`);
          }
        },
        { timeoutMs: RECONVERGE_MS, what: `broker at ${api.address} hears every edge again` },
      );
    }
    process.stderr.write(`[cluster_failure] indexes re-converged ${Date.now() - restartedAt} ms after the NATS restart\n`);
  });

  test("after the restart room, user and namespace publishes and relays reach everyone again", async () => {
    const [one, two] = cluster.apis;
    const { n1, n3, n4 } = n;
    const room = await expectDelivery({
      all: live,
      expected: [n1, n3],
      event: "nroom-again",
      publish: () => one.publish({ target: { rooms: ["nroom"] }, event: "nroom-again", args: [] }),
    });
    assert.equal(room.result.recipients, 2);
    await expectDelivery({
      all: live,
      expected: [n4],
      event: "nroom2-again",
      publish: () => two.publish({ target: { rooms: ["nroom2"] }, event: "nroom2-again", args: [] }),
    });
    await expectDelivery({
      all: live,
      expected: [n1, n3],
      event: "user-again",
      publish: () => two.publish({ target: { user_ids: ["un"] }, event: "user-again", args: [] }),
    });
    await expectDelivery({
      all: live,
      expected: [n1, n3, n4],
      event: "ns-again",
      publish: () => one.publish({ target: { namespace: "/" }, event: "ns-again", args: [] }),
    });
    await expectDelivery({
      all: live,
      expected: [n3],
      event: "socket-again",
      publish: () => one.publish({ target: { socket_ids: [n3.id] }, event: "socket-again", args: [] }),
    });
    // A relay rule crossing edges: n3 (e3) → room nroom → n1 (e1).
    await expectDelivery({
      all: live,
      expected: [n1],
      event: "room-message",
      publish: async () => assert.deepEqual(await call(n3, "room-message", { room: "nroom", message: "back" }), { ok: true }),
    });
    await sleep(SETTLE_MS);
  });
});
