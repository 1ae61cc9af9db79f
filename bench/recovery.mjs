// Connection state recovery, measured (not a test; issue 17). Two parts:
//
//   recover  time to recover one session: an official socket.io-client client in a room breaks its
//            transport (socket.io.engine.close(), reconnection off), K packets are published to
//            its room through the gRPC API (all answered), then socket.connect(); the time from
//            connect() to the `connect` event with `socket.recovered === true` AND all K packets
//            received. K = --missed (1,000) and K = 0, --tries times each: p50 / p99 / max.
//            Standalone (the in-memory log) and in a cluster (nats-server -js, broker, 2 edges;
//            each recovery on the other edge than the one the client left).
//   storm    a SIGKILLed edge's clients recovering at once: nats-server -js, broker, 3 edges;
//            --clients WebSocket-only clients (split over --procs node child processes) connect
//            to edge 1, join a room and get one packet (so that they hold an offset); edge 1 is
//            SIGKILLed, --storm-missed packets are published to the room meanwhile, and every
//            client's reconnection goes to edge 2 or 3 (alternately: the client's Manager is
//            pointed at the other URL on `reconnect_attempt`), with the client's default
//            back-off (--reconnection-delay, 1000 ms, randomized ±50 %). Figures: recovered,
//            new sessions, not back, time from the kill to the last recovery, and each client's
//            kill → recovered p50 / p99.
//
//   node bench/recovery.mjs [--parts recover,storm] [--modes standalone,cluster] [--tries 50]
//        [--missed 1000] [--clients 10000] [--procs 4] [--storm-missed 10]
//        [--reconnection-delay 1000] [--storm-timeout 120] [--storm-baseline] [--out FILE]
//
// Each part also has a baseline: recover, a reconnection to a namespace without recovery (a new
// session); storm with --storm-baseline, the same storm on that namespace.
//
// Binaries from build/bin (or $SB_BIN_DIR), nats-server from /usr/sbin; socket.io-client, gRPC and
// the fixtures from tests/interop (npm ci there first). Every wait is bounded. Prints a markdown
// table; exits 1 when a try did not recover or a packet was missing.

import { fork } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import { performance } from "node:perf_hooks";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import { connectApi, json } from "../tests/interop/lib/api.mjs";
import { startCluster } from "../tests/interop/lib/cluster.mjs";
import { startServer } from "../tests/interop/lib/server.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SELF = fileURLToPath(import.meta.url);
const { io } = createRequire(path.join(HERE, "..", "tests", "interop", "package.json"))("socket.io-client");
const RECOVERY = { maxDisconnectionDuration: 120000 };
const STEP_MS = 10_000; // bound of one recovery (recover part), of one connect, of a publish batch
const WINDOW = 100; // gRPC publishes in flight

const { values: opts } = parseArgs({
  options: {
    parts: { type: "string", default: "recover,storm" },
    modes: { type: "string", default: "standalone,cluster" },
    tries: { type: "string", default: "50" },
    missed: { type: "string", default: "1000" },
    clients: { type: "string", default: "10000" },
    procs: { type: "string" },
    "storm-missed": { type: "string", default: "10" },
    "reconnection-delay": { type: "string", default: "1000" },
    "storm-timeout": { type: "string", default: "120" },
    // The same storm on a namespace without recovery: the clients come back as new sessions.
    "storm-baseline": { type: "boolean", default: false },
    out: { type: "string" },
    worker: { type: "boolean", default: false },
  },
});
const bounded = (v, lo, hi, dflt) => Math.min(Math.max(Number.isFinite(Number(v)) ? Number(v) : dflt, lo), hi);

const log = (s) => process.stderr.write(`[recovery] ${s}\n`);
const now = () => performance.timeOrigin + performance.now(); // ms since the epoch, sub-ms

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(rank, 1)) - 1];
}
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : "–");

/** A copy of bench/switchboard.json with connection state recovery on every namespace. */
function recoveryConfig(dir) {
  const config = JSON.parse(readFileSync(path.join(HERE, "switchboard.json"), "utf8"));
  // "/plain": the same without recovery (the baseline: a reconnection that makes a new session).
  const plain = structuredClone(config.namespaces["/"]);
  for (const ns of Object.values(config.namespaces)) ns.connectionStateRecovery = { ...RECOVERY };
  config.namespaces["/plain"] = plain;
  const file = path.join(dir, "switchboard-recovery.json");
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

/** Publishes `n` packets `event` to `room`, WINDOW in flight; resolves when all are answered. */
async function publishMany(api, room, event, n, base = 0) {
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      await api.publish({ target: { rooms: [room] }, event, args: [json({ i: base + i })] });
    }
  };
  await Promise.race([
    Promise.all(Array.from({ length: Math.min(WINDOW, n) }, worker)),
    sleep(STEP_MS + n * 10).then(() => {
      throw new Error(`${n} publishes not answered in time`);
    }),
  ]);
}

const CLK_TCK = 100;
/** utime + stime of `pids` in ms (/proc; a gone process counts 0). */
function cpuMs(pids) {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // gone
    }
  }
  return (ticks * 1000) / CLK_TCK;
}

function waitFor(cond, ms, what) {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + ms;
    const tick = () => {
      if (cond()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`${what}: not within ${ms} ms`));
      setTimeout(tick, 1);
    };
    tick();
  });
}

// ------------------------------------------------------------------ recover

/**
 * `tries` recoveries of one client with `k` missed packets. `urls`: the client alternates between
 * them (one URL: always the same server). Resolves with { times (ms, sorted), failures }.
 */
async function recoverTries(urls, api, k, tries, room, { plain = false } = {}) {
  let got = 0;
  const nsp = plain ? "/plain" : "";
  const socket = io(urls[0] + nsp, { transports: ["websocket"], forceNew: true, reconnection: false, timeout: STEP_MS });
  socket.on("news", () => got++);
  // The transport is up (handshake, WebSocket) just before the client sends its CONNECT: from
  // here on the time is the namespace's (a restore, or a new session), not the connection's.
  let opened = 0;
  socket.io.on("open", () => (opened = performance.now()));
  const times = [];
  const afterOpen = [];
  const failures = [];
  try {
    await new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("connect_error", reject);
    });
    const ack = await socket.timeout(STEP_MS).emitWithAck("join", room);
    if (!ack?.ok) throw new Error(`join: ${JSON.stringify(ack)}`);
    // One packet first: the client sends its offset with the pid only once it holds one.
    if (!plain) {
      await publishMany(api, room, "news", 1);
      await waitFor(() => got === 1, STEP_MS, "the first packet");
    }
    let edge = 0;
    for (let t = 0; t < tries; t++) {
      const disconnected = new Promise((resolve) => socket.once("disconnect", resolve));
      socket.io.engine.close();
      await disconnected;
      await sleep(20); // the server sees the close
      got = 0;
      await publishMany(api, room, "news", k, t * k);
      edge = (edge + 1) % urls.length;
      socket.io.uri = urls[edge];
      const connected = new Promise((resolve, reject) => {
        socket.once("connect", resolve);
        socket.once("connect_error", reject);
      });
      const t0 = performance.now();
      socket.connect();
      try {
        await connected;
        await waitFor(() => got >= k, STEP_MS, `${k} missed packets`);
        const end = performance.now();
        const ms = end - t0;
        if (String(socket.io.engine.port) !== new URL(urls[edge]).port) {
          failures.push(`try ${t}: connected to port ${socket.io.engine.port}, not ${urls[edge]}`);
        } else if (plain) {
          if (socket.recovered) failures.push(`try ${t}: recovered without recovery`);
          else {
            times.push(ms);
            afterOpen.push(end - opened);
          }
        } else if (!socket.recovered) {
          failures.push(`try ${t}: a new session (recovered = false)`);
          // A new session is not in the room any more.
          await socket.timeout(STEP_MS).emitWithAck("join", room);
        } else if (got !== k) {
          failures.push(`try ${t}: ${got} packets, ${k} missed`);
        } else {
          times.push(ms);
          afterOpen.push(end - opened);
        }
      } catch (err) {
        failures.push(`try ${t}: ${err.message}`);
      }
    }
  } finally {
    socket.disconnect();
  }
  times.sort((a, b) => a - b);
  afterOpen.sort((a, b) => a - b);
  return { times, afterOpen, failures };
}

// A recover row's server and missed-packets cells.
function rowNames(r) {
  const where = r.mode === "standalone" ? "standalone (in-memory log)" : "2 edges + broker + nats-server -js, on the other edge";
  return [where, r.k === "baseline" ? "recovery off: a new session (baseline)" : r.k];
}

async function recoverPart(modes, tries, missed, rows) {
  for (const mode of modes) {
    const dir = mkdtempSync(path.join(os.tmpdir(), "sb-bench-recovery-"));
    const config = recoveryConfig(dir);
    let stop;
    let api;
    let urls;
    try {
      if (mode === "standalone") {
        const server = await startServer(
          "switchboard",
          ["standalone", "--config", config, "--threads", "1", "--grpc-listen", "127.0.0.1:0"],
          { ready: ["grpc", "http"], name: "standalone" },
        );
        api = connectApi(server.grpcAddress);
        urls = [server.url];
        stop = () => server.stop();
      } else {
        const cluster = await startCluster({
          edges: 2,
          brokers: 1,
          config,
          natsArgs: ["-js", "-sd", path.join(dir, "jetstream")],
        });
        api = cluster.apis[0];
        urls = cluster.edges.map((e) => e.url);
        stop = () => cluster.stop();
      }
      for (const k of [missed, 0]) {
        log(`${mode}: ${tries} recoveries with ${k} missed packets`);
        const started = Date.now();
        const r = await recoverTries(urls, api, k, tries, `rec-${k}`);
        log(`${mode}, ${k} missed: p50 ${f2(percentile(r.times, 50))} ms, p99 ${f2(percentile(r.times, 99))} ms, ` +
            `max ${f2(r.times.at(-1))} ms, ${r.failures.length} failed (${Date.now() - started} ms)` +
            (r.failures.length ? `: ${r.failures.slice(0, 3).join("; ")}` : ""));
        rows.push({ mode, k, ...r });
      }
      log(`${mode}: ${tries} reconnections to a namespace without recovery (the baseline)`);
      rows.push({ mode, k: "baseline", ...(await recoverTries(urls, api, 0, tries, "plain", { plain: true })) });
    } finally {
      if (mode === "standalone") api?.close();
      await stop?.();
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

// -------------------------------------------------------------------- storm

/**
 * Child process: connects `n` clients to `first`, joins them to `room`; on the parent's "arm",
 * points each client's reconnection at the `others` in turn and reports each client's recovery.
 */
async function worker() {
  const { first, others, n, room, delay, offset, nsp } = JSON.parse(process.env.SB_RECOVERY_WORKER);
  const inbox = [];
  let wake = null;
  process.on("message", (m) => {
    inbox.push(m);
    wake?.();
  });
  const nextMessage = async () => {
    while (inbox.length === 0) await new Promise((resolve) => (wake = resolve));
    return inbox.shift();
  };
  const clients = [];
  let news = 0;
  let failed = 0;
  let next = 0;
  const connectOne = (i) =>
    new Promise((resolve) => {
      const socket = io(first + nsp, {
        transports: ["websocket"],
        forceNew: true,
        reconnectionDelay: delay,
        reconnectionDelayMax: 5000,
        timeout: 20_000,
      });
      const c = { socket, id: null, back: null, attempt: null, attempts: 0, recovered: null, news: 0, i: offset + i };
      clients.push(c);
      socket.on("news", () => {
        c.news++;
        news++;
      });
      socket.once("connect_error", () => {
        failed++;
        socket.disconnect();
        resolve();
      });
      socket.once("connect", async () => {
        c.id = socket.id;
        try {
          const ack = await socket.timeout(20_000).emitWithAck("join", room);
          if (!ack?.ok) failed++;
        } catch {
          failed++;
        }
        resolve();
      });
    });
  const deadline = Date.now() + 120_000;
  await Promise.all(
    Array.from({ length: 50 }, async () => {
      while (next < n && Date.now() < deadline) await connectOne(next++);
    }),
  );
  process.send({ type: "ready", joined: clients.filter((c) => c.id).length, failed });
  for (;;) {
    const m = await nextMessage();
    if (m.type === "news?") {
      process.send({ type: "news", news, min: Math.min(...clients.filter((c) => c.id).map((c) => c.news)) });
    } else if (m.type === "arm") {
      for (const c of clients) {
        if (!c.id) continue;
        c.news = 0;
        c.socket.io.on("reconnect_attempt", () => {
          // The Manager's URL (the namespace is the socket's).
          c.attempt = now();
          c.attempts++;
          c.socket.io.uri = others[c.i % others.length];
        });
        c.socket.once("connect", () => {
          c.back = now();
          c.recovered = c.socket.recovered === true && c.socket.id === c.id;
        });
      }
      process.send({ type: "armed" });
    } else if (m.type === "report") {
      const live = clients.filter((c) => c.id);
      process.send({
        type: "report",
        back: live.filter((c) => c.back !== null).length,
        recovered: live.filter((c) => c.recovered).length,
        fresh: live.filter((c) => c.recovered === false).length,
        times: m.full ? live.filter((c) => c.back !== null).map((c) => c.back) : [],
        recoveredTimes: m.full ? live.filter((c) => c.recovered).map((c) => c.back) : [],
        // From the attempt that succeeded to the recovery: the servers' share.
        attemptTimes: m.full ? live.filter((c) => (m.plain ? c.back : c.recovered) && c.attempt).map((c) => c.back - c.attempt) : [],
        retried: live.filter((c) => c.attempts > 1).length,
        missing: m.full ? live.filter((c) => c.recovered && c.news < m.missed).length : 0,
      });
    } else if (m.type === "stop") {
      for (const c of clients) c.socket.disconnect();
      await sleep(100);
      process.exit(0);
    }
  }
}

function ask(children, message, type, ms) {
  return Promise.all(
    children.map(
      (child) =>
        new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`worker: no "${type}" within ${ms} ms`)), ms);
          const on = (m) => {
            if (m.type !== type) return;
            clearTimeout(timer);
            child.off("message", on);
            resolve(m);
          };
          child.on("message", on);
          if (message) child.send(message);
        }),
    ),
  );
}

async function stormPart(clients, procs, missed, delay, timeoutS, plain) {
  const nsp = plain ? "/plain" : "";
  const dir = mkdtempSync(path.join(os.tmpdir(), "sb-bench-storm-"));
  const config = recoveryConfig(dir);
  const cluster = await startCluster({
    edges: 3,
    brokers: 1,
    config,
    natsArgs: ["-js", "-sd", path.join(dir, "jetstream")],
  });
  const api = cluster.apis[0];
  const children = [];
  const room = "storm";
  try {
    const [first, ...others] = cluster.edges.map((e) => e.url);
    const per = Math.ceil(clients / procs);
    for (let p = 0; p < procs; p++) {
      const n = Math.min(per, clients - p * per);
      if (n <= 0) break;
      const child = fork(SELF, ["--worker"], {
        stdio: ["ignore", "inherit", "inherit", "ipc"],
        env: { ...process.env, SB_RECOVERY_WORKER: JSON.stringify({ first, others, n, room, delay, offset: p * per, nsp }) },
      });
      children.push(child);
    }
    const t0 = Date.now();
    const ready = await ask(children, null, "ready", 180_000);
    const joined = ready.reduce((s, r) => s + r.joined, 0);
    log(`storm: ${joined} of ${clients} clients joined on edge 1 in ${Date.now() - t0} ms`);
    if (joined < clients) throw new Error(`only ${joined} of ${clients} clients joined`);
    await api.publish({ target: { namespace: plain ? "/plain" : "/", rooms: [room] }, event: "news", args: [json({ i: 0 })] });
    const end = Date.now() + 30_000;
    for (;;) {
      const r = await ask(children, { type: "news?" }, "news", 10_000);
      if (r.every((x) => x.min >= 1)) break;
      if (Date.now() > end) throw new Error("not every client got the first packet");
      await sleep(100);
    }
    await ask(children, { type: "arm" }, "armed", 10_000);
    await sleep(200);
    const groups = {
      "edges 2 + 3": cluster.edges.slice(1).map((e) => e.server.proc.pid),
      "nats-server": [cluster.nats.pid],
      broker: cluster.brokers.map((b) => b.server.proc.pid),
      "client processes": children.map((c) => c.pid),
    };
    const cpu0 = Object.fromEntries(Object.entries(groups).map(([k, v]) => [k, cpuMs(v)]));
    const killed = now();
    cluster.edges[0].server.proc.kill("SIGKILL");
    // Published while the clients are away (or coming back): each must get them all.
    if (!plain) await publishMany(api, room, "news", missed);
    let reports;
    const until = Date.now() + timeoutS * 1000;
    for (;;) {
      reports = await ask(children, { type: "report", full: false }, "report", 10_000);
      const back = reports.reduce((s, r) => s + r.back, 0);
      if (back >= joined || Date.now() > until) break;
      await sleep(250);
    }
    const cpu = Object.fromEntries(Object.entries(groups).map(([k, v]) => [k, cpuMs(v) - cpu0[k]]));
    const window = now() - killed;
    await sleep(1000); // the missed packets after the last recovery
    reports = await ask(children, { type: "report", full: true, missed, plain }, "report", 30_000);
    const sum = (k) => reports.reduce((s, r) => s + r[k], 0);
    const times = reports.flatMap((r) => r.times).map((t) => t - killed).sort((a, b) => a - b);
    const rtimes = reports.flatMap((r) => r.recoveredTimes).map((t) => t - killed).sort((a, b) => a - b);
    const atimes = reports.flatMap((r) => r.attemptTimes).sort((a, b) => a - b);
    return {
      cpu,
      window,
      ap50: percentile(atimes, 50),
      ap99: percentile(atimes, 99),
      amax: atimes.at(-1),
      retried: sum("retried"),
      clients: joined,
      recovered: sum("recovered"),
      fresh: sum("fresh"),
      notBack: joined - sum("back"),
      missing: sum("missing"),
      last: times.at(-1),
      lastRecovered: rtimes.at(-1),
      p50: percentile(rtimes, 50),
      p99: percentile(rtimes, 99),
    };
  } finally {
    await Promise.allSettled(
      children.map(
        (c) =>
          new Promise((resolve) => {
            if (c.exitCode !== null) return resolve();
            const timer = setTimeout(() => {
              c.kill("SIGKILL");
              resolve();
            }, 5000);
            c.once("exit", () => {
              clearTimeout(timer);
              resolve();
            });
            try {
              c.send({ type: "stop" });
            } catch {
              c.kill("SIGKILL");
            }
          }),
      ),
    );
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// --------------------------------------------------------------------- main

async function main() {
  const parts = opts.parts.split(",").filter(Boolean);
  const modes = opts.modes.split(",").filter(Boolean);
  for (const p of parts) if (!["recover", "storm"].includes(p)) throw new Error(`unknown part ${p}`);
  for (const m of modes) if (!["standalone", "cluster"].includes(m)) throw new Error(`unknown mode ${m}`);
  const tries = bounded(opts.tries, 1, 1000, 50);
  const missed = bounded(opts.missed, 1, 100_000, 1000);
  const clients = bounded(opts.clients, 1, 50_000, 10_000);
  const procs = bounded(opts.procs ?? Math.ceil(clients / 2500), 1, 32, 4);
  const stormMissed = bounded(opts["storm-missed"], 0, 10_000, 10);
  const delay = bounded(opts["reconnection-delay"], 0, 10_000, 1000);
  const stormTimeout = bounded(opts["storm-timeout"], 5, 600, 120);
  const cpus = os.cpus();
  const lines = [
    `Connection state recovery (bench/recovery.mjs), ${new Date().toISOString().slice(0, 16)} UTC, ` +
      `${cpus.length} cores (${cpus[0]?.model ?? "?"}), load average before: ${os.loadavg().map((x) => x.toFixed(2)).join(" ")}; ` +
      `\`connectionStateRecovery\` ${JSON.stringify(RECOVERY)}, one I/O thread per process.`,
    "",
  ];
  let bad = false;
  if (parts.includes("recover")) {
    const rows = [];
    await recoverPart(modes, tries, missed, rows);
    lines.push(
      `### Recovering one session (${tries} tries each): socket.connect() → \`connect\` with \`recovered\` and every missed packet received`,
      "",
      "| server | missed packets | p50 ms | p99 ms | max ms | not recovered / failed |",
      "|---|---|---|---|---|---|",
    );
    for (const r of rows) {
      const [where, k] = rowNames(r);
      lines.push(`| ${where} | ${k} | ${f2(percentile(r.times, 50))} | ${f2(percentile(r.times, 99))} | ${f2(r.times.at(-1))} | ${r.failures.length} |`);
      if (r.failures.length) bad = true;
    }
    lines.push(
      "",
      "The same tries from the transport's `open` (handshake and WebSocket done, the client's CONNECT about to leave) to the same end: the namespace's part alone.",
      "",
      "| server | missed packets | p50 ms | p99 ms | max ms |",
      "|---|---|---|---|---|",
    );
    for (const r of rows) {
      const [where, k] = rowNames(r);
      lines.push(`| ${where} | ${k} | ${f2(percentile(r.afterOpen, 50))} | ${f2(percentile(r.afterOpen, 99))} | ${f2(r.afterOpen.at(-1))} |`);
    }
    lines.push("");
  }
  if (parts.includes("storm")) {
    log(`storm: ${clients} clients in ${procs} processes, reconnection delay ${delay} ms`);
    const plain = opts["storm-baseline"];
    const s = await stormPart(clients, procs, stormMissed, delay, stormTimeout, plain);
    lines.push(
      (plain
        ? `### Baseline, recovery off: a SIGKILLed edge's ${s.clients} clients reconnecting (new sessions) to the 2 other edges (3 edges + broker + nats-server -js; `
        : `### A SIGKILLed edge's ${s.clients} clients recovering on the 2 other edges (3 edges + broker + nats-server -js; `) +
        `${procs} client processes; client back-off ${delay} ms ±50 %; ${plain ? 0 : stormMissed} packets published after the kill)`,
      "",
      "| clients | recovered | new sessions | not back | recovered without every missed packet | kill → last recovery (ms) | kill → recovered p50 / p99 (ms) | kill → last back, any session (ms) | reconnection attempt → back p50 / p99 / max (ms) | clients that needed more than one attempt |",
      "|---|---|---|---|---|---|---|---|---|---|",
      `| ${s.clients} | ${s.recovered} | ${s.fresh} | ${s.notBack} | ${plain ? "–" : s.missing} | ${f2(s.lastRecovered)} | ${f2(s.p50)} / ${f2(s.p99)} | ${f2(s.last)} | ` +
        `${f2(s.ap50)} / ${f2(s.ap99)} / ${f2(s.amax)} | ${s.retried} |`,
      "",
    );
    lines.push(
      `CPU (utime + stime, /proc) from the kill until every client was back (${f2(s.window / 1000)} s; 2 cores = ${f2((2 * s.window) / 1000)} CPU s): ` +
        Object.entries(s.cpu).map(([k, v]) => `${k} ${f2(v / 1000)} s`).join(", ") + ".",
      "",
    );
    if (plain ? s.notBack : s.recovered < s.clients || s.missing) bad = true;
  }
  const table = lines.join("\n");
  process.stdout.write(table);
  if (opts.out) writeFileSync(opts.out, table);
  process.exitCode = bad ? 1 : 0;
}

if (opts.worker) {
  await worker();
} else {
  await main();
  process.exit();
}
