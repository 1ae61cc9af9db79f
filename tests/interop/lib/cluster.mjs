// Fixtures for the cluster tests: a real nats-server on a free loopback port,
// brokers and edges of `switchboard` around it, socket.io-client clients, and
// bounded polling.
//
//   const cluster = await startCluster({ edges: 3, brokers: 2, config });
//   cluster.edges[0].url, cluster.brokers[1].api.getStats(), ...
//   await cluster.stop();
//
// Every process is ours: it is stopped by its PID (SIGTERM, then SIGKILL after
// a grace), and killed if this process exits without stopping it.

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { Manager, io } from "socket.io-client";

import { connectApi } from "./api.mjs";
import { startServer, stopProcess } from "./server.mjs";
import { WAIT_MS, withTimeout } from "./wait.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const CONFIG_DIR = path.resolve(HERE, "..", "config");

const NATS_START_MS = 5_000;

// ------------------------------------------------------------------ polling

/**
 * Calls `fn` until it resolves without throwing, every `intervalMs`, for at
 * most `timeoutMs`; then rethrows its last error, prefixed with `what`.
 * Resolves with fn's value.
 */
export async function eventually(fn, { timeoutMs = WAIT_MS, intervalMs = 50, what = "condition" } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() >= deadline) {
        err.message = `${what}: still failing after ${timeoutMs} ms: ${err.message}`;
        throw err;
      }
    }
    await sleep(intervalMs);
  }
}

// --------------------------------------------------------------- processes

const live = new Set();
process.on("exit", () => {
  for (const child of live) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
});

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

function natsBinary() {
  if (process.env.SB_NATS_SERVER) return process.env.SB_NATS_SERVER;
  for (const candidate of ["/usr/sbin/nats-server", "/usr/bin/nats-server"]) {
    if (existsSync(candidate)) return candidate;
  }
  return "nats-server";
}

function pipeLog(stream, prefix) {
  let buffered = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk) => {
    buffered += chunk;
    let nl;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      process.stderr.write(`${prefix} ${buffered.slice(0, nl)}\n`);
      buffered = buffered.slice(nl + 1);
    }
  });
}

// One nats-server process on `port`; resolves once it accepts TCP, rejects if
// it exits first or does not within NATS_START_MS.
async function spawnNats(port, args = []) {
  const proc = spawn(natsBinary(), ["-a", "127.0.0.1", "-p", String(port), ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  live.add(proc);
  const prefix = `[nats-server:${proc.pid}]`;
  pipeLog(proc.stdout, prefix);
  pipeLog(proc.stderr, prefix);
  const exited = new Promise((resolve) => {
    proc.once("exit", (code, signal) => {
      live.delete(proc);
      resolve({ code, signal });
    });
  });
  proc.once("error", (err) => process.stderr.write(`${prefix} ${err}\n`));
  const deadline = Date.now() + NATS_START_MS;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`nats-server on port ${port} exited at start (code ${proc.exitCode})`);
    }
    if (await canConnect(port)) return { proc, exited };
    if (Date.now() > deadline) {
      await stopProcess(proc, exited, prefix);
      throw new Error(`nats-server on port ${port} did not accept connections within ${NATS_START_MS} ms`);
    }
    await sleep(25);
  }
}


/**
 * Starts nats-server on a free loopback port (retrying on a port race), with
 * `args` added (e.g. ["--max_payload", "65536"]).
 * Returns { port, url, stop(), start() }: stop() ends the process (SIGTERM,
 * then SIGKILL); start() starts it again on the SAME port.
 */
export async function startNats({ args = [] } = {}) {
  let lastError;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    try {
      let current = await spawnNats(port, args);
      const nats = {
        port,
        url: `nats://127.0.0.1:${port}`,
        get pid() {
          return current?.proc.pid;
        },
        async stop() {
          if (!current) return null;
          const { proc, exited } = current;
          current = null;
          return stopProcess(proc, exited, `[nats-server:${proc.pid}]`);
        },
        async start() {
          if (current) throw new Error("nats-server is already running");
          let err;
          // The port was ours a moment ago; retry briefly if it is still in TIME_WAIT.
          for (let i = 0; i < 20; i++) {
            try {
              current = await spawnNats(port, args);
              return;
            } catch (e) {
              err = e;
              await sleep(100);
            }
          }
          throw err;
        },
      };
      return nats;
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError;
}

// ------------------------------------------------------------------ cluster

/** Starts `switchboard broker` on `natsUrl`; resolves with { id, server, api, address }. */
export async function startBroker(natsUrl, id, extraArgs = []) {
  const server = await startServer(
    "switchboard",
    ["broker", "--nats", natsUrl, "--grpc-listen", "127.0.0.1:0", "--broker-id", id, ...extraArgs],
    { listen: false, ready: ["grpc"], name: `broker ${id}` },
  );
  return { id, server, address: server.grpcAddress, api: connectApi(server.grpcAddress) };
}

/** Starts `switchboard edge` on `natsUrl`; resolves with { id, server, url }. */
export async function startEdge(natsUrl, id, extraArgs = []) {
  const server = await startServer(
    "switchboard",
    ["edge", "--nats", natsUrl, "--edge-id", id, "--listen", "127.0.0.1:0", ...extraArgs],
    { name: `edge ${id}` },
  );
  return { id, server, url: server.url };
}

async function allOrStop(promises) {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r) => r.status === "rejected");
  if (failed) {
    await Promise.all(
      results
        .filter((r) => r.status === "fulfilled")
        .map((r) => {
          r.value.api?.close();
          return r.value.server.stop();
        }),
    );
    throw failed.reason;
  }
  return results.map((r) => r.value);
}

/**
 * One nats-server, `brokers` brokers (ids b1, b2, ...) and `edges` edges (ids
 * e1, e2, ...), every edge with `config`. Resolves once every broker's
 * GetStats lists every edge.
 *
 * Returns { nats, brokers, edges, apis, restartBroker(i), stop() }.
 */
export async function startCluster({
  edges = 3,
  brokers = 2,
  config,
  edgeArgs = [],
  brokerArgs = [],
  natsArgs = [],
} = {}) {
  const nats = await startNats({ args: natsArgs });
  const edgeExtra = [...(config ? ["--config", config] : []), "--threads", "1", ...edgeArgs];
  let started;
  try {
    started = await allOrStop([
      ...Array.from({ length: brokers }, (_, i) => startBroker(nats.url, `b${i + 1}`, brokerArgs)),
      ...Array.from({ length: edges }, (_, i) => startEdge(nats.url, `e${i + 1}`, edgeExtra)),
    ]);
  } catch (err) {
    await nats.stop();
    throw err;
  }

  const cluster = {
    nats,
    brokers: started.slice(0, brokers),
    edges: started.slice(brokers),
    get apis() {
      return cluster.brokers.map((b) => b.api);
    },
    edgeIds() {
      return cluster.edges.map((e) => e.id);
    },

    /** Stops broker i (SIGTERM) and starts a new one with the same id. */
    async restartBroker(i) {
      const old = cluster.brokers[i];
      old.api.close();
      const { code, signal } = await old.server.stop();
      cluster.brokers[i] = await startBroker(nats.url, old.id, brokerArgs);
      return { code, signal };
    },

    /** Waits until every broker lists exactly `ids` (default: every edge's) in GetStats. */
    async waitForEdges(ids = cluster.edgeIds(), timeoutMs = 10_000) {
      const want = [...ids].sort();
      for (const broker of cluster.brokers) {
        await eventually(
          async () => {
            const stats = await broker.api.getStats();
            const got = stats.edges.map((e) => e.edge_id);
            if (JSON.stringify(got) !== JSON.stringify(want)) {
              throw new Error(`broker ${broker.id} knows edges ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
            }
          },
          { timeoutMs, what: `broker ${broker.id} GetStats.edges` },
        );
      }
    },

    async stop() {
      for (const b of cluster.brokers) b.api.close();
      await Promise.all([...cluster.edges, ...cluster.brokers].map((p) => p.server.stop()));
      await nats.stop();
    },
  };

  try {
    await cluster.waitForEdges();
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

// ------------------------------------------------------------------ clients

export const TRANSPORTS = {
  websocket: { transports: ["websocket"], upgrade: false },
  polling: { transports: ["polling"], upgrade: false },
  upgrade: { transports: ["polling", "websocket"], upgrade: true },
};

function connected(socket, what, waitMs = WAIT_MS) {
  return withTimeout(
    new Promise((resolve, reject) => {
      if (socket.connected) return resolve();
      socket.once("connect", resolve);
      socket.once("connect_error", (err) => reject(new Error(`${what}: connect_error: ${err.message}`)));
    }),
    waitMs,
    `${what} to connect`,
  );
}

/**
 * The socket.io-client clients of one test group. Each socket gets `name`,
 * and `meta` = { name, edge, nsp, transport, userId, rooms: Set } that the
 * tests keep up to date to compute what the brokers should show.
 */
export class Clients {
  constructor() {
    this.sockets = [];
    this.managers = [];
  }

  /**
   * Connects a socket to `url` + `nsp`. `edge` is the edge id the test expects
   * to hold it; `transport` is a key of TRANSPORTS; `userId` goes into the
   * CONNECT auth as { userId }. `waitMs`: how long the connection may take
   * (more where many clients connect at once under load).
   */
  async connect({ name, url, edge, nsp = "/", transport = "websocket", userId, waitMs = WAIT_MS } = {}) {
    const socket = io(url + (nsp === "/" ? "" : nsp), {
      ...TRANSPORTS[transport],
      forceNew: true,
      reconnection: false,
      timeout: waitMs,
      ...(userId !== undefined ? { auth: { userId } } : {}),
    });
    return this.#track(socket, { name, edge, nsp, transport, userId }, waitMs);
  }

  /** A Manager (one Engine.IO connection) for several namespaces; see socketOn(). */
  manager(url, transport = "websocket") {
    const m = new Manager(url, { ...TRANSPORTS[transport], reconnection: false, timeout: WAIT_MS });
    this.managers.push(m);
    return m;
  }

  /** Connects `nsp` over an existing Manager. */
  async socketOn(manager, { name, edge, nsp = "/", transport = "websocket", userId } = {}) {
    const socket = manager.socket(nsp, userId !== undefined ? { auth: { userId } } : {});
    // The Manager auto-connects its sockets; connect() only when it did not.
    if (!socket.active) socket.connect();
    return this.#track(socket, { name, edge, nsp, transport, userId });
  }

  async #track(socket, meta, waitMs = WAIT_MS) {
    socket.name = meta.name;
    socket.meta = { ...meta, rooms: new Set() };
    this.sockets.push(socket);
    await connected(socket, `client ${meta.name}`, waitMs);
    return socket;
  }

  /** The sockets still connected. */
  live() {
    return this.sockets.filter((s) => s.connected);
  }

  closeAll() {
    for (const s of this.sockets) s.disconnect();
    for (const m of this.managers) m.engine?.close();
    this.sockets = [];
    this.managers = [];
  }
}

// ------------------------------------------------------- expected index state

/** The fields of a SocketInfo the tests compare. */
export function socketView(info) {
  return {
    id: info.id,
    edge_id: info.edge_id,
    user_id: info.user_id,
    namespace: info.namespace,
    rooms: [...info.rooms],
    transport: info.transport,
  };
}

/** What a broker should list for `socket` (a Clients socket). */
export function expectedView(socket) {
  const m = socket.meta;
  return {
    id: socket.id,
    edge_id: m.edge,
    user_id: m.userId ?? "",
    namespace: m.nsp,
    rooms: [...m.rooms].sort(),
    transport: m.transport === "polling" ? "TRANSPORT_POLLING" : "TRANSPORT_WEBSOCKET",
  };
}

// ListSockets and GetPresence order sockets by id (byte-wise; ids are ASCII).
function byId(a, b) {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** What a broker should list for `sockets`, in ListSockets order. */
export function expectedSockets(sockets) {
  return sockets.map(expectedView).sort(byId);
}
