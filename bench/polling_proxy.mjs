// Polling fan-out behind a round-robin balancer vs direct to one edge (issue 16), measured (not a
// test): nats-server, one broker and 3 edges (bench/switchboard.json), N official socket.io-client
// clients in polling-only mode in one room, and a publisher sending M messages to that room through
// the gRPC API (Publish), paced at R/s. Two cases:
//
//   direct  every client talks to the first edge (the sessions all live there);
//   proxy   every client talks to tests/interop/lib/rr_proxy.mjs, a per-request round-robin
//           proxy over the 3 edges with no affinity: the handshakes spread the sessions over the
//           edges, and each poll and post lands on any edge, which has the owner serve it
//           through the bus (needs the edges of issue 16; older edges answer 400).
//
// Per round and case: delivered msg/s (messages the clients received ÷ (last receipt − first
// publish)), publish → receive latency p50 / p99 / max (the publisher and the clients are this
// process, so the clock is one; the latency includes this process's event loop, which also runs
// the N clients), lost and duplicated deliveries, and the proxy's HTTP requests and 400s. Prints a
// markdown table, one row per case: the median of the rounds with (min–max).
//
//   node bench/polling_proxy.mjs [--clients 200] [--messages 300] [--rate 100] [--rounds 3]
//        [--cases direct,proxy] [--out FILE]
//
// Binaries from build/bin (or $SB_BIN_DIR), nats-server from /usr/sbin (scripts/setup --test);
// socket.io-client, gRPC and the fixtures from tests/interop (npm ci there first). Every phase is
// bounded: connecting by CONNECT_MS, delivery by DRAIN_MS after the last publish.

import { writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { performance } from "node:perf_hooks";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import { connectApi, json } from "../tests/interop/lib/api.mjs";
import { startCluster } from "../tests/interop/lib/cluster.mjs";
import { startRoundRobinProxy } from "../tests/interop/lib/rr_proxy.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CONFIG = path.join(HERE, "switchboard.json");
// The official client, from tests/interop's packages.
const { io } = createRequire(path.join(HERE, "..", "tests", "interop", "package.json"))("socket.io-client");
const ROOM = "bench";
const CONNECT_MS = 30_000;
const DRAIN_MS = 10_000;

const { values: opts } = parseArgs({
  options: {
    clients: { type: "string", default: "200" },
    messages: { type: "string", default: "300" },
    rate: { type: "string", default: "100" },
    rounds: { type: "string", default: "3" },
    cases: { type: "string", default: "direct,proxy" },
    out: { type: "string" },
  },
});
const bounded = (v, lo, hi, dflt) => Math.min(Math.max(Number.isFinite(Number(v)) ? Number(v) : dflt, lo), hi);
const CLIENTS = bounded(opts.clients, 1, 2_000, 200);
const MESSAGES = bounded(opts.messages, 1, 100_000, 300);
const RATE = bounded(opts.rate, 1, 10_000, 100);
const ROUNDS = bounded(opts.rounds, 1, 10, 3);
const CASES = opts.cases.split(",").filter(Boolean);
for (const c of CASES) if (!["direct", "proxy"].includes(c)) throw new Error(`unknown case ${c}`);

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(rank, 1)) - 1];
}

function median(values) {
  const s = values.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
}

// "median (min–max)" of the rounds' values.
function cell(values, digits = 1) {
  const s = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return "–";
  const f = (x) => x.toFixed(digits);
  return s.length === 1 ? f(s[0]) : `${f(median(s))} (${f(s[0])}–${f(s.at(-1))})`;
}

/** Connects N polling-only clients to `url`, each joined to ROOM; rejects past CONNECT_MS. */
async function connectClients(url, n, onNews) {
  const sockets = [];
  const errors = new Map(); // message -> count
  const deadline = Date.now() + CONNECT_MS;
  const one = (i) =>
    new Promise((resolve, reject) => {
      const socket = io(url, {
        transports: ["polling"],
        upgrade: false,
        forceNew: true,
        reconnection: false,
        timeout: CONNECT_MS,
      });
      sockets.push(socket);
      socket.on("news", (m) => onNews(i, m));
      socket.once("connect_error", (err) => reject(err));
      socket.once("connect", async () => {
        try {
          await socket.timeout(CONNECT_MS).emitWithAck("join", ROOM);
          resolve();
        } catch (err) {
          reject(err);
        }
      });
    });
  // 20 handshakes in flight at a time: a connect storm is not what is measured here.
  let next = 0;
  let joined = 0;
  const worker = async () => {
    while (next < n && Date.now() < deadline) {
      const i = next++;
      try {
        await one(i);
        joined++;
      } catch (err) {
        errors.set(err.message, (errors.get(err.message) ?? 0) + 1);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(20, n) }, worker));
  return { sockets, joined, errors };
}

/** One round of one case on `cluster`; resolves with its figures. */
async function round(cluster, api, kind) {
  let proxy = null;
  let url = cluster.edges[0].url;
  if (kind === "proxy") {
    proxy = await startRoundRobinProxy(
      cluster.edges.map((e) => {
        const { hostname, port } = new URL(e.url);
        return { host: hostname, port: Number(port) };
      }),
    );
    url = proxy.url;
  }
  const sentAt = new Float64Array(MESSAGES).fill(NaN);
  const got = Array.from({ length: CLIENTS }, () => new Uint8Array(MESSAGES));
  const latencies = [];
  let received = 0;
  let duplicates = 0;
  let lastReceipt = 0;
  const onNews = (client, m) => {
    const now = performance.now();
    const i = m?.i;
    if (!Number.isInteger(i) || i < 0 || i >= MESSAGES) return;
    if (got[client][i]++) {
      duplicates++;
      return;
    }
    received++;
    lastReceipt = now;
    latencies.push(now - sentAt[i]);
  };
  const { sockets, joined, errors } = await connectClients(url, CLIENTS, onNews);
  const result = { kind, joined, errors, requests: 0, status400: 0 };
  try {
    if (joined < CLIENTS) return { ...result, failed: `${joined} of ${CLIENTS} clients joined` };
    const requestsBefore = proxy?.stats.requests ?? 0;
    const expected = CLIENTS * MESSAGES;
    const start = performance.now();
    const publishes = [];
    let publishErrors = 0;
    for (let i = 0; i < MESSAGES; i++) {
      const due = start + (i * 1000) / RATE;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      sentAt[i] = performance.now();
      publishes.push(
        api
          .publish({ target: { rooms: [ROOM] }, event: "news", args: [json({ i })] })
          .catch(() => publishErrors++),
      );
    }
    await Promise.all(publishes);
    const drainUntil = performance.now() + DRAIN_MS;
    while (received < expected && performance.now() < drainUntil) await sleep(20);
    latencies.sort((a, b) => a - b);
    const seconds = (lastReceipt - start) / 1000;
    return {
      ...result,
      delivered: received,
      lost: expected - received,
      duplicates,
      publishErrors,
      rate: seconds > 0 ? received / seconds : NaN,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      max: latencies.at(-1) ?? NaN,
      requests: proxy ? proxy.stats.requests - requestsBefore : 0,
      status400: proxy?.stats.byStatus[400] ?? 0,
    };
  } finally {
    for (const s of sockets) s.disconnect();
    if (proxy) {
      result.status400 = proxy.stats.byStatus[400] ?? 0;
      await proxy.close();
    }
    await sleep(200); // let the edges see the disconnects before the next round
  }
}

function describeErrors(errors) {
  return [...errors].map(([m, n]) => `${n}× ${m}`).join("; ");
}

async function main() {
  process.stderr.write(
    `polling fan-out: ${CLIENTS} clients, ${MESSAGES} publishes at ${RATE}/s, ${ROUNDS} rounds, cases ${CASES}\n`,
  );
  const cluster = await startCluster({ edges: 3, brokers: 1, config: CONFIG });
  const api = connectApi(cluster.brokers[0].address);
  const rows = [];
  try {
    for (const kind of CASES) {
      const rounds = [];
      for (let r = 0; r < ROUNDS; r++) {
        const res = await round(cluster, api, kind);
        rounds.push(res);
        process.stderr.write(
          res.failed
            ? `  ${kind} round ${r + 1}: FAILED: ${res.failed} (${describeErrors(res.errors)}; HTTP 400 at the proxy: ${res.status400})\n`
            : `  ${kind} round ${r + 1}: ${res.rate.toFixed(0)} msg/s, p50 ${res.p50.toFixed(2)} ms, p99 ${res.p99.toFixed(2)} ms, ` +
                `max ${res.max.toFixed(2)} ms, lost ${res.lost}, dup ${res.duplicates}` +
                (kind === "proxy" ? `, ${res.requests} requests, ${res.status400} × 400` : "") +
                "\n",
        );
      }
      rows.push({ kind, rounds });
    }
  } finally {
    api.close();
    await cluster.stop();
  }

  const lines = [
    `Polling fan-out, ${CLIENTS} polling-only socket.io-client clients in one room, ${MESSAGES} publishes (gRPC Publish) at ${RATE}/s, 3 edges + broker + nats-server; median of ${ROUNDS} rounds (min–max).`,
    "",
    "| case | delivered msg/s | p50 ms | p99 ms | max ms | lost | dup | HTTP requests at the proxy | HTTP 400 |",
    "|---|---|---|---|---|---|---|---|---|",
  ];
  for (const { kind, rounds } of rows) {
    const ok = rounds.filter((r) => !r.failed);
    const name = kind === "direct" ? "direct to one edge" : "round-robin proxy over 3 edges";
    if (ok.length < rounds.length) {
      const failed = rounds.find((r) => r.failed);
      lines.push(
        `| ${name} | failed in ${rounds.length - ok.length} of ${rounds.length} rounds: ${failed.failed} (${describeErrors(failed.errors)}) | | | | | | | ${failed.status400} |`,
      );
      continue;
    }
    const of = (k) => ok.map((r) => r[k]);
    lines.push(
      `| ${name} | ${cell(of("rate"), 0)} | ${cell(of("p50"), 2)} | ${cell(of("p99"), 2)} | ${cell(of("max"), 2)} | ` +
        `${Math.max(...of("lost"))} | ${Math.max(...of("duplicates"))} | ${kind === "proxy" ? cell(of("requests"), 0) : "–"} | ` +
        `${kind === "proxy" ? Math.max(...of("status400")) : "–"} |`,
    );
  }
  const table = lines.join("\n") + "\n";
  process.stdout.write(table);
  if (opts.out) writeFileSync(opts.out, table);
  const failed = rows.some(({ rounds }) => rounds.some((r) => r.failed || r.lost > 0 || r.duplicates > 0));
  process.exitCode = failed ? 1 : 0;
}

await main();
