// Operating a cluster: `sbctl edges` (the real binary) and the publish → deliver latency
// histogram, end to end with nats-server, a broker and two edges (short heartbeats and edge
// timeout), official socket.io-client clients, and `switchboard standalone`.
//
// - both edges are listed `ready`, with the binary's version and their socket counts;
// - a publish that reaches a client grows switchboard_publish_deliver_latency_seconds_count on
//   that edge's /metrics, with a plausible sum;
// - edge 1 gets SIGTERM with a long drain window: `draining`;
// - edge 2 gets SIGKILL: after the broker's edge timeout, `lost` (and edge 1 still draining);
// - standalone: its one edge is listed ready, and its histogram grows too.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";

import { io } from "socket.io-client";

import { connectApi, json } from "./lib/api.mjs";
import { eventually, startBroker, startEdge, startNats } from "./lib/cluster.mjs";
import { httpGet } from "./lib/http.mjs";
import { BIN_DIR, startServer, stopProcess } from "./lib/server.mjs";
import { withTimeout } from "./lib/wait.mjs";

const HEARTBEAT_MS = 200;
const EDGE_TIMEOUT_MS = 1500;
const LATENCY = "switchboard_publish_deliver_latency_seconds";

function run(binary, args) {
  return new Promise((resolve) => {
    execFile(path.join(BIN_DIR, binary), args, { timeout: 15_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (err.code ?? -1) : 0, stdout, stderr });
    });
  });
}

/** `sbctl edges` as rows of { EDGE, STATE, VERSION, UPTIME, SOCKETS, ... } by edge id. */
async function sbctlEdges(address) {
  const { code, stdout, stderr } = await run("sbctl", ["--server", address, "edges"]);
  assert.equal(code, 0, `sbctl edges failed: ${stderr}`);
  const [header, ...lines] = stdout.trim().split("\n").map((l) => l.trim().split(/\s+/));
  assert.deepEqual(header, ["EDGE", "STATE", "VERSION", "UPTIME", "SOCKETS", "STARTED", "LAST_HEARTBEAT"]);
  const rows = {};
  for (const cells of lines) {
    assert.equal(cells.length, header.length, `row ${cells.join(" ")}`);
    rows[cells[0]] = Object.fromEntries(header.map((h, i) => [h, cells[i]]));
  }
  return rows;
}

/** The latency histogram on an edge's /metrics: { count, sum, buckets: Map(le → cumulative) }. */
async function latency(adminPort) {
  const { status, body } = await httpGet(adminPort, "/metrics");
  assert.equal(status, 200);
  const value = (re) => {
    const m = body.match(re);
    assert.ok(m, `/metrics has ${re}`);
    return Number(m[1]);
  };
  const buckets = new Map();
  for (const m of body.matchAll(new RegExp(`^${LATENCY}_bucket\\{le="([^"]+)"\\} (\\S+)$`, "gm"))) {
    buckets.set(m[1], Number(m[2]));
  }
  assert.match(body, new RegExp(`^# TYPE ${LATENCY} histogram$`, "m"));
  return {
    count: value(new RegExp(`^${LATENCY}_count (\\S+)$`, "m")),
    sum: value(new RegExp(`^${LATENCY}_sum (\\S+)$`, "m")),
    buckets,
  };
}

async function connectClient(url) {
  const socket = io(url, { transports: ["websocket"], reconnection: false, forceNew: true });
  await withTimeout(new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", reject);
  }), 5000, `connect to ${url}`);
  return socket;
}

function nextEvent(socket, event) {
  return withTimeout(new Promise((resolve) => socket.once(event, resolve)), 5000, `${event} on ${socket.id}`);
}

let version;
let nats;
let broker;
let edges = [];
const clients = [];

before(async () => {
  const v = await run("switchboard", ["--version"]);
  assert.equal(v.code, 0);
  version = v.stdout.trim();
  assert.match(version, /^\d+\.\d+\.\d+/);

  nats = await startNats();
  broker = await startBroker(nats.url, "b1", ["--edge-timeout-ms", String(EDGE_TIMEOUT_MS)]);
  const args = ["--threads", "1", "--heartbeat-ms", String(HEARTBEAT_MS),
    "--drain-window-ms", "60000", "--drain-grace-ms", "60000"];
  edges = [await startEdge(nats.url, "e1", args), await startEdge(nats.url, "e2", args)];
});

after(async () => {
  for (const c of clients) c.disconnect();
  broker?.api.close();
  // Edge 1 drains for a minute: no need to wait for it.
  for (const e of edges) {
    if (e) await stopProcess(e.server.proc, e.server.exited, `[edge ${e.id}]`, "SIGKILL");
  }
  await broker?.server.stop();
  await nats?.stop();
});

test("sbctl edges: ready with version and sockets, then draining, then lost", async () => {
  const [e1, e2] = edges;
  clients.push(await connectClient(e1.url));
  clients.push(await connectClient(e2.url), await connectClient(e2.url));

  const ready = await eventually(async () => {
    const rows = await sbctlEdges(broker.address);
    assert.deepEqual(Object.keys(rows).sort(), ["e1", "e2"]);
    assert.equal(rows.e1.STATE, "ready");
    assert.equal(rows.e2.STATE, "ready");
    assert.equal(rows.e1.SOCKETS, "1");
    assert.equal(rows.e2.SOCKETS, "2");
    return rows;
  }, { timeoutMs: 10_000, what: "sbctl edges: e1 and e2 ready" });
  for (const id of ["e1", "e2"]) {
    assert.equal(ready[id].VERSION, version);
    assert.match(ready[id].UPTIME, /^\d+s$/, "started seconds ago");
    assert.match(ready[id].STARTED, /^\d{4}-\d\d-\d\dT/);
  }

  // --json prints the ListEdges response.
  const j = await run("sbctl", ["--server", broker.address, "--json", "edges"]);
  assert.equal(j.code, 0, j.stderr);
  const listed = JSON.parse(j.stdout);
  assert.equal(listed.broker_id, "b1");
  assert.deepEqual(listed.edges.map((e) => [e.edge_id, e.state, e.version]),
    [["e1", "EDGE_STATE_READY", version], ["e2", "EDGE_STATE_READY", version]]);

  // Edge 1 drains for a minute: listed draining, its client still on it.
  e1.server.proc.kill("SIGTERM");
  await eventually(async () => {
    const rows = await sbctlEdges(broker.address);
    assert.equal(rows.e1.STATE, "draining");
    assert.equal(rows.e2.STATE, "ready");
  }, { timeoutMs: 5000, what: "sbctl edges: e1 draining" });

  // Edge 2 dies: lost after the edge timeout, with the sockets it had.
  const killed = Date.now();
  e2.server.proc.kill("SIGKILL");
  await e2.server.exited;
  const rows = await eventually(async () => {
    const r = await sbctlEdges(broker.address);
    assert.equal(r.e2.STATE, "lost");
    return r;
  }, { timeoutMs: EDGE_TIMEOUT_MS + 5000, what: "sbctl edges: e2 lost" });
  const took = Date.now() - killed;
  assert.equal(rows.e2.VERSION, version);
  assert.equal(rows.e2.SOCKETS, "2");
  assert.equal(rows.e2.UPTIME, "-");
  assert.equal(rows.e1.STATE, "draining");
  process.stderr.write(`e2 listed lost ${took} ms after SIGKILL (edge timeout ${EDGE_TIMEOUT_MS} ms)\n`);
});

test("publish → deliver latency on the edge's /metrics (cluster)", async (t) => {
  // Its own edge: the other test drains and kills e1 and e2.
  const e3 = await startEdge(nats.url, "e3", ["--threads", "1", "--heartbeat-ms", String(HEARTBEAT_MS)]);
  t.after(() => e3.server.stop());
  const client = await connectClient(e3.url);
  t.after(() => client.disconnect());
  await eventually(async () => {
    const sockets = await broker.api.listSockets({ namespace: "/" });
    assert.ok(sockets.sockets.some((s) => s.id === client.id), "broker lists the client");
  }, { timeoutMs: 5000, what: "broker index has the client" });

  const before = await latency(e3.server.adminPort);
  const got = nextEvent(client, "news");
  await broker.api.publish({ target: { socket_ids: [client.id] }, event: "news", args: [json("hi")] });
  assert.equal(await got, "hi");
  const after = await eventually(async () => {
    const l = await latency(e3.server.adminPort);
    assert.ok(l.count > before.count, `count ${l.count} grew from ${before.count}`);
    return l;
  }, { timeoutMs: 5000, what: "latency _count grew" });
  assert.equal(after.count, before.count + 1, "one delivery, one observation");
  const observed = after.sum - before.sum;
  assert.ok(observed > 0 && observed < 5, `publish → deliver took ${observed} s`);
  assert.equal(after.buckets.get("+Inf"), after.count);
  process.stderr.write(`cluster publish → deliver latency: ${(observed * 1000).toFixed(3)} ms\n`);
});

test("standalone: sbctl edges lists its edge, and the latency histogram grows", async (t) => {
  const server = await startServer(
    "switchboard",
    ["standalone", "--threads", "1", "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0"],
    { ready: ["grpc", "http"], name: "standalone" },
  );
  t.after(() => server.stop());
  const api = connectApi(server.grpcAddress);
  t.after(() => api.close());
  const client = await connectClient(server.url);
  t.after(() => client.disconnect());

  await eventually(async () => {
    const rows = await sbctlEdges(server.grpcAddress);
    assert.deepEqual(Object.keys(rows), ["local"]);
    assert.equal(rows.local.STATE, "ready");
    assert.equal(rows.local.VERSION, version);
    assert.equal(rows.local.SOCKETS, "1");
  }, { timeoutMs: 5000, what: "standalone: sbctl edges" });

  const before = await latency(server.adminPort);
  const got = nextEvent(client, "news");
  await api.publish({ target: { namespace: "/" }, event: "news", args: [json("hi")] });
  assert.equal(await got, "hi");
  // The client may see the event a moment before the edge has counted it.
  const after = await eventually(async () => {
    const l = await latency(server.adminPort);
    assert.equal(l.count, before.count + 1);
    return l;
  }, { timeoutMs: 5000, what: "standalone latency _count grew" });
  const observed = after.sum - before.sum;
  assert.ok(observed > 0 && observed < 5, `publish → deliver took ${observed} s`);
  process.stderr.write(`standalone publish → deliver latency: ${(observed * 1000).toFixed(3)} ms\n`);
});

test("standalone: reads and writes go through io_uring, counted on /metrics (none with --no-io-uring)", async (t) => {
  const counters = async (adminPort) => {
    const { status, body } = await httpGet(adminPort, "/metrics");
    assert.equal(status, 200);
    const value = (name) => {
      const m = body.match(new RegExp(`^${name} (\\S+)$`, "m"));
      assert.ok(m, `/metrics has ${name}`);
      return Number(m[1]);
    };
    return { reads: value("switchboard_io_uring_reads_total"), sends: value("switchboard_io_uring_sends_total") };
  };
  for (const flag of ["--io-uring", "--no-io-uring"]) {
    const server = await startServer(
      "switchboard",
      ["standalone", "--threads", "1", "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0", flag],
      { ready: ["grpc", "http"], name: `standalone ${flag}` },
    );
    try {
      const client = await connectClient(server.url);
      client.disconnect();
      const { reads, sends } = await counters(server.adminPort);
      if (flag === "--no-io-uring") {
        assert.deepEqual({ reads, sends }, { reads: 0, sends: 0 });
      } else if (server.log.some((line) => line.includes("io_uring is not available"))) {
        t.diagnostic("io_uring is refused here: the edge uses send() and recv()");
      } else {
        // The client's CONNECT was read, and its answer sent, through the ring.
        assert.ok(reads > 0, `reads through io_uring: ${reads}`);
        assert.ok(sends > 0, `sends through io_uring: ${sends}`);
      }
    } finally {
      await server.stop();
    }
  }
});
