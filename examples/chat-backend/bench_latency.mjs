// Chat latency through a backend, measured (not a test): nats-server, one broker, two edges and
// the chat backend (C++ by default; also the Python and Node ones with --backends), two official
// socket.io-client clients on different edges. One sends chat messages at a steady pace, and the
// time from its emit to the other's receipt of the published chat-message is recorded: client ->
// edge 1 -> NATS (forward) -> broker -> WatchEvents -> backend -> Publish -> broker -> NATS ->
// edge 2 -> client. Also the sender's ack round trip (the backend's Ack). Prints median, p90,
// p99 and max per backend.
//
//   node examples/chat-backend/bench_latency.mjs [--backends cpp,python,node] [--messages 300]
//        [--interval-ms 10] [--warmup 20]
//
// Binaries from build/bin (or $SB_BIN_DIR); socket.io-client and the process helpers from
// tests/interop (npm ci there first). The edges use examples/chat-backend/switchboard.json with
// the per-socket event rate raised above the sending rate.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";

import { chatClient, CHAT_CONFIG, startChatBackend } from "../../tests/interop/lib/chat_backends.mjs";
import { startCluster } from "../../tests/interop/lib/cluster.mjs";
import { call } from "../../tests/interop/lib/wait.mjs";

const { values: opts } = parseArgs({
  options: {
    backends: { type: "string", default: "cpp" },
    messages: { type: "string", default: "300" },
    "interval-ms": { type: "string", default: "10" },
    warmup: { type: "string", default: "20" },
  },
});
const MESSAGES = Math.min(Math.max(Number(opts.messages) || 300, 1), 100_000);
const INTERVAL_MS = Math.min(Math.max(Number(opts["interval-ms"]) || 10, 1), 10_000);
const WARMUP = Math.min(Math.max(Number(opts.warmup) || 0, 0), 10_000);
const DRAIN_MS = 10_000; // after the last send, wait at most this long for the stragglers

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(rank, 1)) - 1];
}

function summary(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const f = (x) => x.toFixed(2).padStart(8);
  return `median ${f(percentile(sorted, 50))}  p90 ${f(percentile(sorted, 90))}  p99 ${f(percentile(sorted, 99))}  max ${f(sorted.at(-1) ?? NaN)} ms`;
}

// Sends `count` messages from `sender`, one every INTERVAL_MS; resolves with
// { delivery: [ms...], ack: [ms...], lost } once `receiver` has them all or DRAIN_MS passed.
async function run(sender, receiver, tag, count) {
  const sentAt = new Map();
  const delivery = [];
  const ack = [];
  const onMessage = (m) => {
    const match = typeof m?.message === "string" && /^(\S+) (\d+)$/.exec(m.message);
    if (!match || match[1] !== tag) return;
    const t0 = sentAt.get(Number(match[2]));
    if (t0 !== undefined) delivery.push(performance.now() - t0);
  };
  receiver.on("chat-message", onMessage);
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    // Paced against the start, so a late timer does not stretch the whole run.
    const due = start + i * INTERVAL_MS;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const t0 = performance.now();
    sentAt.set(i, t0);
    sender.emit("chat-message", `${tag} ${i}`, () => ack.push(performance.now() - t0));
  }
  const deadline = performance.now() + DRAIN_MS;
  while ((delivery.length < count || ack.length < count) && performance.now() < deadline) await sleep(20);
  receiver.off("chat-message", onMessage);
  return { delivery, ack, lost: count - delivery.length, sendSeconds: (performance.now() - start) / 1000 };
}

async function bench(kind, config) {
  const cluster = await startCluster({
    edges: 2,
    brokers: 1,
    config,
    edgeArgs: ["--log-level", "warn"],
    brokerArgs: ["--log-level", "warn"],
  });
  let backend;
  const sockets = [];
  try {
    backend = await startChatBackend(kind, [cluster.brokers[0].address]);
    const alice = await chatClient(cluster.edges[0].url, sockets);
    const bob = await chatClient(cluster.edges[1].url, sockets);
    for (const [socket, name] of [[alice, "alice"], [bob, "bob"]]) {
      const reply = await call(socket, "user-join", name);
      if (!reply?.ok) throw new Error(`user-join ${name}: ${JSON.stringify(reply)}`);
    }
    if (WARMUP > 0) await run(alice, bob, "warmup", WARMUP);
    const r = await run(alice, bob, "bench", MESSAGES);
    console.log(`${kind.padEnd(6)} delivery (emit at alice, edge e1 -> chat-message at bob, edge e2): ${summary(r.delivery)}` +
      `  (${r.delivery.length}/${MESSAGES} received)`);
    console.log(`${kind.padEnd(6)} ack round trip (emit -> backend's Ack at alice):                  ${summary(r.ack)}`);
    return r;
  } finally {
    for (const s of sockets) s.disconnect();
    if (backend) await backend.stop();
    await cluster.stop();
  }
}

const tmp = mkdtempSync(path.join(os.tmpdir(), "sb-bench-"));
try {
  const config = JSON.parse(readFileSync(CHAT_CONFIG, "utf8"));
  const rate = Math.ceil(2000 / INTERVAL_MS);
  config.comment = "bench_latency.mjs: the chat backend's edge config, event rate above the sending rate";
  config.logLevel = "warn";
  config.namespaces["/"].eventRate = { perSecond: rate, burst: 2 * rate };
  const file = path.join(tmp, "switchboard.json");
  writeFileSync(file, JSON.stringify(config));
  console.log(`${MESSAGES} chat messages, one every ${INTERVAL_MS} ms (after ${WARMUP} warm-up), ` +
    `nats-server + 1 broker + 2 edges (1 I/O thread each), clients on different edges`);
  for (const kind of opts.backends.split(",").map((s) => s.trim()).filter(Boolean)) {
    await bench(kind, file);
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
