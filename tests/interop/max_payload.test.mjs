// NATS's max_payload in a cluster (issue 14, item 6): nats-server with
// `max_payload: 65536` (a configuration file: nats-server 2.9 has no flag), 1 broker, 2 edges (the relay rules of
// config/cluster.json), official socket.io-client clients on both edges.
//
// - a client's broadcast larger than the bus takes is answered with an error
//   ack, counted on its edge, and reaches nobody (not even the clients of its
//   own edge); one under the limit reaches every edge
// - an API Publish larger than the bus takes is INVALID_ARGUMENT naming the
//   limit, and reaches nobody
// - the edges report the limit they read at connect

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

import { json, status } from "./lib/api.mjs";
import { SETTLE_MS, assertGrpcError, expectDelivery, record, waitEmpty, waitIndex } from "./lib/cases.mjs";
import { CONFIG_DIR, Clients, eventually, startCluster } from "./lib/cluster.mjs";
import { httpGet } from "./lib/http.mjs";
import { call } from "./lib/wait.mjs";

const MAX_PAYLOAD = 65536;
const OVER = "x".repeat(MAX_PAYLOAD + 4096);
const UNDER = "y".repeat(MAX_PAYLOAD / 2);

let cluster;
let clients;
let natsDir;
let a; // edge 1, the sender
let b; // edge 1
let c; // edge 2

/** The value of one sample of the edge's /metrics (0 when absent). */
async function sample(edge, name) {
  const { status: code, body } = await httpGet(edge.server.adminPort, "/metrics");
  assert.equal(code, 200);
  for (const line of body.split("\n")) {
    if (line.startsWith(`${name} `)) return Number(line.slice(name.length + 1));
  }
  return 0;
}

before(async () => {
  natsDir = mkdtempSync(path.join(os.tmpdir(), "sb-max-payload-"));
  const natsConfig = path.join(natsDir, "nats.conf");
  writeFileSync(natsConfig, `max_payload: ${MAX_PAYLOAD}\n`);
  cluster = await startCluster({
    edges: 2,
    brokers: 1,
    config: path.join(CONFIG_DIR, "cluster.json"),
    edgeArgs: ["--heartbeat-ms", "500"],
    natsArgs: ["-c", natsConfig],
  });
  clients = new Clients();
  const [e1, e2] = cluster.edges;
  a = await clients.connect({ name: "a", url: e1.url, edge: e1.id });
  b = await clients.connect({ name: "b", url: e1.url, edge: e1.id });
  c = await clients.connect({ name: "c", url: e2.url, edge: e2.id, transport: "polling" });
  await waitIndex(cluster.apis, [a, b, c], "a, b, c known to the broker");
});

after(async () => {
  clients?.closeAll();
  if (cluster) {
    await waitEmpty(cluster.apis).catch(() => {});
    await cluster.stop();
  }
  if (natsDir) rmSync(natsDir, { recursive: true, force: true });
});

test("every edge reports the server's max_payload", async () => {
  for (const edge of cluster.edges) {
    assert.equal(await sample(edge, "switchboard_bus_max_payload_bytes"), MAX_PAYLOAD, edge.id);
  }
});

test("a client's broadcast over max_payload gets an error ack, a count, and reaches nobody", async () => {
  const [e1] = cluster.edges;
  const refusedBefore = await sample(e1, 'switchboard_bus_errors_total{op="max_payload"}');
  const got = record([a, b, c], "message");
  try {
    assert.deepEqual(await call(a, "message", { text: OVER }), { ok: false, error: "message too large" });
    await sleep(SETTLE_MS);
    assert.deepEqual(got.counts(), { a: 0, b: 0, c: 0 }, "delivered although refused");
  } finally {
    got.stop();
  }
  assert.equal(await sample(e1, 'switchboard_bus_errors_total{op="max_payload"}'), refusedBefore + 1);

  // Under the limit: every edge, the sender included (the rule's exceptSender is false).
  const { got: small } = await expectDelivery({
    all: [a, b, c],
    expected: [a, b, c],
    event: "message",
    publish: async () => assert.deepEqual(await call(a, "message", { text: UNDER }), { ok: true }),
  });
  for (const list of small.values()) assert.equal(list[0][0].text.length, UNDER.length);
});

test("an API Publish over max_payload is INVALID_ARGUMENT naming the limit, and reaches nobody", async () => {
  const [api] = cluster.apis;
  const got = record([a, b, c], "big");
  try {
    await assertGrpcError(
      api.publish({ target: { namespace: "/" }, event: "big", args: [json(OVER)] }),
      status.INVALID_ARGUMENT,
      "publish over max_payload",
    );
    await assert.rejects(api.publish({ target: { namespace: "/" }, event: "big", args: [json(OVER)] }), (err) => {
      assert.match(err.details, new RegExp(`max_payload of ${MAX_PAYLOAD} bytes`));
      return true;
    });
    await sleep(SETTLE_MS);
    assert.deepEqual(got.counts(), { a: 0, b: 0, c: 0 });
  } finally {
    got.stop();
  }
  await expectDelivery({
    all: [a, b, c],
    expected: [a, b, c],
    event: "big",
    publish: () => api.publish({ target: { namespace: "/" }, event: "big", args: [json(UNDER)] }),
  });
  // The edges' connections survived (NATS closes a connection that publishes
  // over the limit: none did).
  await eventually(async () => {
    for (const edge of cluster.edges) assert.equal(await sample(edge, "switchboard_bus_connected"), 1);
  });
});
