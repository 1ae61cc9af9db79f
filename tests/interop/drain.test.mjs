// Graceful drain of an edge (SIGTERM), end to end: nats-server, a broker, two edges, and a TCP
// proxy in front of the edges that, like a Kubernetes Service, sends each new connection to an
// edge whose /readyz answers 200 (edge 1 first). The official socket.io-client (reconnection on)
// connects through the proxy and lands on edge 1. Then edge 1 gets SIGTERM:
//
// - its /readyz turns 503 ("draining") while /healthz stays 200, and its metrics say draining;
// - the client is told to go (Engine.IO close), reconnects through the proxy, lands on edge 2;
// - the next publish through the broker reaches it there;
// - edge 1 exits 0 within its grace period, and the broker forgets it.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

import { io } from "socket.io-client";

import { json } from "./lib/api.mjs";
import { eventually, startBroker, startEdge, startNats } from "./lib/cluster.mjs";
import { httpGet } from "./lib/http.mjs";
import { withTimeout } from "./lib/wait.mjs";

const DRAIN_WINDOW_MS = 1000;
const GRACE_MS = 4000;

// A TCP proxy to the first ready edge (readiness polled every 50 ms from /readyz).
async function startProxy(edges) {
  const ready = new Map(edges.map((e) => [e.id, true]));
  let polling = true;
  (async () => {
    while (polling) {
      for (const e of edges) {
        try {
          ready.set(e.id, (await httpGet(e.server.adminPort, "/readyz")).status === 200);
        } catch {
          ready.set(e.id, false);
        }
      }
      await sleep(50);
    }
  })();
  const server = net.createServer((client) => {
    const edge = edges.find((e) => ready.get(e.id));
    if (!edge) return client.destroy();
    const upstream = net.connect(edge.server.port, "127.0.0.1");
    client.pipe(upstream).pipe(client);
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close() {
      polling = false;
      server.close();
    },
  };
}

let nats;
let broker;
let edges = [];
let proxy;

before(async () => {
  nats = await startNats();
  broker = await startBroker(nats.url, "b1");
  const args = ["--threads", "1", "--heartbeat-ms", "300", "--drain-window-ms", String(DRAIN_WINDOW_MS),
    "--drain-grace-ms", String(GRACE_MS)];
  edges = [await startEdge(nats.url, "e1", args), await startEdge(nats.url, "e2", args)];
  assert.ok(edges.every((e) => e.server.adminPort > 0), "every edge printed its admin port");
  await eventually(async () => {
    const stats = await broker.api.getStats();
    assert.deepEqual(stats.edges.map((e) => e.edge_id), ["e1", "e2"]);
  }, { timeoutMs: 10_000, what: "broker knows both edges" });
  proxy = await startProxy(edges);
});

after(async () => {
  proxy?.close();
  broker?.api.close();
  await Promise.all([...edges, broker].filter(Boolean).map((p) => p.server.stop()));
  await nats?.stop();
});

test("a draining edge sends its client to another edge, which gets the next publish", async () => {
  const [e1, e2] = edges;
  assert.equal((await httpGet(e1.server.adminPort, "/readyz")).status, 200);

  const socket = io(proxy.url, {
    transports: ["websocket"],
    reconnectionDelay: 100,
    reconnectionDelayMax: 200,
    randomizationFactor: 0,
  });
  const received = [];
  socket.on("news", (arg) => received.push({ arg, id: socket.id }));
  const reasons = [];
  socket.on("disconnect", (reason) => reasons.push(reason));
  try {
    await withTimeout(new Promise((resolve) => socket.once("connect", resolve)), 5000, "connect");
    assert.match(socket.id, /^e1\./, "the proxy sent the client to edge 1");

    const started = Date.now();
    e1.server.proc.kill("SIGTERM");

    // Not ready (but alive) at once.
    await eventually(async () => {
      const r = await httpGet(e1.server.adminPort, "/readyz");
      assert.equal(r.status, 503);
      assert.match(r.body, /draining/);
    }, { timeoutMs: 2000, what: "edge 1 /readyz 503" });
    const alive = await httpGet(e1.server.adminPort, "/healthz").catch(() => null);
    if (alive) assert.equal(alive.status, 200);

    // Told to go within the window, back on edge 2.
    await eventually(() => assert.match(socket.id ?? "", /^e2\./), {
      timeoutMs: DRAIN_WINDOW_MS + 4000,
      what: "client reconnected to edge 2",
    });
    assert.deepEqual(reasons, ["transport close"], "an Engine.IO close, not an io server disconnect");

    // The next publish reaches it on edge 2 (once the broker has it in the index).
    await eventually(async () => {
      const sockets = await broker.api.listSockets({ namespace: "/" });
      assert.ok(sockets.sockets.some((s) => s.id === socket.id), "broker lists the new socket");
    }, { timeoutMs: 5000, what: "broker index has the socket on e2" });
    await broker.api.publish({ target: { namespace: "/" }, event: "news", args: [json("after drain")] });
    await eventually(() => assert.deepEqual(received.map((r) => r.arg), ["after drain"]), {
      what: "publish after the drain",
    });
    assert.match(received[0].id, /^e2\./);

    // Edge 1 exits cleanly within its grace period.
    const { code, signal } = await withTimeout(e1.server.exited, GRACE_MS + 2000, "edge 1 exit");
    assert.equal(signal, null);
    assert.equal(code, 0);
    const took = Date.now() - started;
    assert.ok(took < GRACE_MS + 1000, `edge 1 took ${took} ms to drain`);
    process.stderr.write(`drain of edge 1 (1 client, window ${DRAIN_WINDOW_MS} ms) took ${took} ms\n`);
    assert.equal((await httpGet(e2.server.adminPort, "/readyz")).status, 200);
  } finally {
    socket.disconnect();
  }
});
