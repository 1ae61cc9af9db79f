// Descriptor exhaustion (issue 14, item 1): `switchboard standalone` under an open-file limit of
// 64 (prlimit), its table filled with idle TCP connections, still serves. A WebSocket upgrade
// that takes the last descriptor works; WebSocket and polling handshakes while no descriptor is
// left are refused (the client gets an error or a close), and counted; the process stays up; once
// the idle connections time out (headersTimeout), new clients connect normally. The same with
// --tls-cert, where the TLS relay's socketpair is what finds no descriptor. With
// limits.http.maxPendingConnections, idle connections past the cap are closed at once and never
// reach the descriptor table.

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { io } from "socket.io-client";

import { makeCertificate } from "./lib/certificate.mjs";
import { httpGet } from "./lib/http.mjs";
import { startServer } from "./lib/server.mjs";

const NOFILE = 64;
// Long enough for filling the table and the refused handshakes to happen before the first idle
// connection times out, even on a slow (sanitizer) build.
const HEADERS_TIMEOUT_MS = 5000;

const dir = mkdtempSync(path.join(tmpdir(), "sb-descriptors-"));
after(() => rmSync(dir, { recursive: true, force: true }));

async function start(limits, name, tls = null) {
  const file = path.join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify({ limits }));
  return startServer(
    "switchboard",
    ["standalone", "--config", file, "--threads", "2", "--grpc-listen", "127.0.0.1:0",
     ...(tls ? ["--tls-cert", tls.cert, "--tls-key", tls.key] : [])],
    { launcher: ["prlimit", `--nofile=${NOFILE}:${NOFILE}`], name },
  );
}

// Descriptors below the limit (one the test runner leaks into its children may sit above it).
const openFds = (pid) => readdirSync(`/proc/${pid}/fd`).filter((fd) => Number(fd) < NOFILE).length;
const alive = (server) => server.proc.exitCode === null && server.proc.signalCode === null;

async function until(what, predicate, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

// A TCP connection that never sends a byte.
function idleConnection(port) {
  const socket = net.connect({ host: "127.0.0.1", port });
  socket.gone = false;
  socket.on("error", () => {});
  socket.on("close", () => (socket.gone = true));
  return socket;
}

// How a Socket.IO handshake ended: "connect", "connect_error" or "disconnect".
function handshake(url, transport, timeout = 3000, ca = undefined) {
  const socket = io(url, { transports: [transport], forceNew: true, reconnection: false, timeout, ca });
  return new Promise((resolve) => {
    const done = (outcome) => resolve({ outcome, socket });
    socket.once("connect", () => done("connect"));
    socket.once("connect_error", () => done("connect_error"));
    socket.once("disconnect", () => done("disconnect"));
  });
}

async function limitHits(server, limit) {
  const { body } = await httpGet(server.adminPort, "/metrics");
  const m = new RegExp(`^switchboard_limit_hits_total\\{limit="${limit}"\\} (\\S+)$`, "m").exec(body);
  assert.ok(m, `/metrics has switchboard_limit_hits_total{limit="${limit}"}`);
  return Number(m[1]);
}

for (const tls of [false, true]) {
  describe(`out of descriptors${tls ? " (--tls-cert)" : ""}`, () => {
    let server;
    const idle = [];
    const clients = [];
    after(async () => {
      for (const s of idle) s.destroy();
      for (const c of clients) c.close();
      if (server) await server.stop();
    });

    test("refuses what it cannot hold, stays up, serves again once descriptors free up", async () => {
      const certificate = tls ? makeCertificate(dir) : null;
      const ca = certificate?.ca;
      server = await start({ http: { headersTimeout: HEADERS_TIMEOUT_MS } },
                           tls ? "standalone-nofile-tls" : "standalone-nofile", certificate);
      const pid = server.proc.pid;
      // Fill the table but for one descriptor, one idle connection at a time.
      for (let i = 0; i < 2 * NOFILE && openFds(pid) < NOFILE - 1; i++) {
        const before = openFds(pid);
        idle.push(idleConnection(server.port));
        await until("the idle connection to be accepted", () => openFds(pid) > before, 2000).catch(() => {});
      }
      assert.equal(openFds(pid), NOFILE - 1, "the table is full but for one descriptor");

      // Plain: the WebSocket upgrade takes the last descriptor (its poller exists already).
      // TLS: the connection takes it, and its relay's socketpair finds none.
      const last = await handshake(server.url, "websocket", 3000, ca);
      clients.push(last.socket);
      assert.ok(alive(server), "the process survives a handshake that takes the last descriptor");
      if (tls) {
        assert.notEqual(last.outcome, "connect", "no descriptors for the TLS relay");
      } else {
        assert.equal(last.outcome, "connect");
      }

      // Nothing left: these are refused, with an error or a close, not a crash.
      for (const transport of ["websocket", "polling"]) {
        const refused = await handshake(server.url, transport, 3000, ca);
        clients.push(refused.socket);
        assert.notEqual(refused.outcome, "connect", `${transport} handshake without descriptors`);
        assert.ok(alive(server), `the process survives a ${transport} handshake without descriptors`);
      }

      // The idle connections time out; then clients connect as usual.
      await until("the idle connections to time out", () => idle.every((s) => s.gone), 4 * HEADERS_TIMEOUT_MS + 5000);
      for (const transport of ["websocket", "polling"]) {
        const ok = await handshake(server.url, transport, 5000, ca);
        clients.push(ok.socket);
        assert.equal(ok.outcome, "connect", `${transport} handshake after the idle connections left`);
      }
      if (!tls) assert.ok(last.socket.connected, "the connection that took the last descriptor is still up");
      assert.ok((await limitHits(server, "descriptors")) > 0, "refusals are counted");
      assert.ok(alive(server));
      const { code } = await server.stop();
      assert.equal(code, 0, "switchboard exits cleanly on SIGTERM");
    });
  });
}

describe("limits.http.maxPendingConnections", () => {
  let server;
  const idle = [];
  const clients = [];
  after(async () => {
    for (const s of idle) s.destroy();
    for (const c of clients) c.close();
    if (server) await server.stop();
  });

  test("idle connections past the cap are closed at once, the table keeps room", async () => {
    const CAP = 5;
    server = await start(
      { http: { headersTimeout: HEADERS_TIMEOUT_MS, maxPendingConnections: CAP } },
      "standalone-pending-cap",
    );
    const pid = server.proc.pid;
    const baseline = openFds(pid);
    for (let i = 0; i < 4 * NOFILE; i++) idle.push(idleConnection(server.port));
    await until("the connections past the cap to be closed", () => idle.filter((s) => s.gone).length >= idle.length - CAP);
    assert.ok(openFds(pid) <= baseline + CAP, `at most ${CAP} idle connections held`);
    assert.ok(alive(server));
    // Once the held ones time out, clients get in.
    await until("the held idle connections to time out", () => idle.every((s) => s.gone), 4 * HEADERS_TIMEOUT_MS + 5000);
    for (const transport of ["websocket", "polling"]) {
      const ok = await handshake(server.url, transport, 5000);
      clients.push(ok.socket);
      assert.equal(ok.outcome, "connect", `${transport} handshake`);
    }
    assert.ok((await limitHits(server, "http_max_pending_connections")) >= idle.length - CAP);
  });
});

test("at start the soft open-file limit is raised to the hard one, with a warning when short", async () => {
  const file = path.join(dir, "rlimit.json");
  writeFileSync(file, JSON.stringify({ limits: { maxConnections: 1000 } }));
  const server = await startServer(
    "switchboard",
    ["standalone", "--config", file, "--threads", "1", "--grpc-listen", "127.0.0.1:0",
     "--admin-listen", "127.0.0.1:0", "--drain-window-ms", "200"],
    { launcher: ["prlimit", "--nofile=64:200"], name: "standalone-rlimit" },
  );
  try {
    const limits = readFileSync(`/proc/${server.proc.pid}/limits`, "utf8");
    assert.match(limits, /^Max open files\s+200\s+200\s/m, "soft limit raised to the hard one");
  } finally {
    await server.stop();
  }
  assert.match(server.log.join("\n"),
               /open-file limit \(RLIMIT_NOFILE\) is 200 \(hard 200\), but limits\.maxConnections 1000 needs about 1256 descriptors/);
});
