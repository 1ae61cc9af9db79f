// Hostile clients for attack.test.mjs: raw HTTP and WebSocket helpers, the
// attacks themselves (malformed Engine.IO / Socket.IO input over WebSocket and
// polling, session hijack attempts, bogus handshakes, slowloris, an event
// flood, bad and forged tokens), and a worker-thread entry that runs them all
// until a deadline and posts what it tried and what it saw.
//
//   const worker = new Worker(new URL("./lib/attack.mjs", import.meta.url), { workerData: {...} });
//
// Everything is bounded: each attack stops at `deadline` (ms since the epoch)
// or at its own maximum count, every request and every wait has a timeout,
// and every connection opened is closed before the worker reports. Attack
// traffic comes from loopback addresses other than 127.0.0.1 (all of
// 127.0.0.0/8 reaches the server on Linux), so that the per-address handshake
// rate limit hits the attackers and not the legitimate clients on 127.0.0.1.

import { readFile } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import WebSocket from "ws";

import { now, sign } from "./jwt.mjs";

// ------------------------------------------------------------------ helpers

/** The resident set size of process `pid`, in bytes (VmRSS), or null if gone. */
export async function rssBytes(pid) {
  try {
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

export const MB = 1024 * 1024;

/** A round-robin source of `n` loopback addresses 127.<secondOctet>.<b>.<c>. */
export function addressPool(secondOctet, n) {
  const addrs = [];
  for (let i = 0; i < n; i++) addrs.push(`127.${secondOctet}.${Math.floor(i / 250)}.${(i % 250) + 1}`);
  let next = 0;
  return () => addrs[next++ % addrs.length];
}

/**
 * One HTTP request on its own connection. Resolves (never rejects) with
 * {status, body, headers} or {error}; the body is kept up to `maxBody` bytes.
 */
export function request(port, { method = "GET", path = "/", headers = {}, body, localAddress, timeoutMs = 5000, maxBody = 4096 } = {}) {
  return new Promise((resolve) => {
    let done = false;
    const finish = (v) => {
      if (!done) {
        done = true;
        resolve(v);
      }
    };
    const req = http.request({ host: "127.0.0.1", port, method, path, headers, localAddress, agent: false }, (res) => {
      const chunks = [];
      let size = 0;
      res.on("data", (c) => {
        if (size < maxBody) chunks.push(c);
        size += c.length;
      });
      res.on("end", () => finish({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString("latin1").slice(0, maxBody) }));
      res.on("error", (error) => finish({ status: res.statusCode, error }));
    });
    req.setTimeout(timeoutMs, () => {
      req.destroy(new Error(`timeout after ${timeoutMs} ms`));
    });
    req.on("error", (error) => finish({ error }));
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

/** Engine.IO handshake over polling; resolves with the sid, or {status, body, error} on refusal. */
export async function pollingHandshake(port, localAddress, extraQuery = "") {
  const res = await request(port, { path: `/socket.io/?EIO=4&transport=polling${extraQuery}`, localAddress });
  if (res.status === 200 && res.body.startsWith("0{")) {
    return { sid: JSON.parse(res.body.slice(1)).sid, res };
  }
  return { res };
}

/**
 * A raw WebSocket to the Engine.IO endpoint. Resolves (never rejects) with a
 * client: {ws, opened, status (HTTP status when refused), messages, closed,
 * closeCode, next(pred, ms), waitClose(ms), send(data, binary), close()}.
 */
export function openWs(port, query, { localAddress, timeoutMs = 5000 } = {}) {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/socket.io/?${query}`, {
      localAddress,
      handshakeTimeout: timeoutMs,
      perMessageDeflate: false,
      maxPayload: 64 * MB,
    });
    const waiters = new Set();
    const notify = () => {
      for (const w of [...waiters]) w();
    };
    const c = {
      ws,
      opened: false,
      status: null,
      body: "",
      messages: [],
      closed: false,
      closeCode: null,
      error: null,
      /** The first message (not yet taken) matching pred, or null after ms / on close. */
      next(pred = () => true, ms = 3000) {
        return new Promise((res) => {
          let timer;
          const w = () => {
            const i = c.messages.findIndex((m) => pred(m));
            if (i >= 0) {
              const [m] = c.messages.splice(i, 1);
              end(m);
            } else if (c.closed) end(null);
          };
          const end = (v) => {
            clearTimeout(timer);
            waiters.delete(w);
            res(v);
          };
          timer = setTimeout(() => end(null), ms);
          waiters.add(w);
          w();
        });
      },
      /** Resolves true once closed (by either side), false after ms. */
      waitClose(ms = 3000) {
        return new Promise((res) => {
          let timer;
          const w = () => {
            if (c.closed) end(true);
          };
          const end = (v) => {
            clearTimeout(timer);
            waiters.delete(w);
            res(v);
          };
          timer = setTimeout(() => end(false), ms);
          waiters.add(w);
          w();
        });
      },
      send(data, binary = typeof data !== "string") {
        if (ws.readyState !== WebSocket.OPEN) return false;
        ws.send(data, { binary });
        return true;
      },
      close() {
        try {
          ws.terminate();
        } catch {
          // already closed
        }
      },
    };
    ws.on("message", (data, isBinary) => {
      c.messages.push(isBinary ? data : data.toString());
      notify();
    });
    ws.on("unexpected-response", (req, res) => {
      c.status = res.statusCode;
      res.setEncoding("latin1");
      res.on("data", (d) => (c.body += d));
      res.on("end", () => {
        c.closed = true;
        req.destroy();
        notify();
        resolve(c);
      });
      res.on("error", () => {});
    });
    ws.on("open", () => {
      c.opened = true;
      resolve(c);
    });
    ws.on("error", (error) => {
      c.error = error;
    });
    ws.on("close", (code) => {
      c.closed = true;
      c.closeCode = code;
      notify();
      resolve(c);
    });
  });
}

/**
 * A WebSocket Engine.IO session, optionally connected to Socket.IO namespace
 * `nsp` (CONNECT sent, its answer awaited). Resolves with the client and
 * `connect` (the CONNECT answer, or null) or `refused` (HTTP status).
 */
export async function wsSession(port, { localAddress, nsp = null, auth = null } = {}) {
  const c = await openWs(port, "EIO=4&transport=websocket", { localAddress });
  if (!c.opened) return { c, refused: c.status ?? "error" };
  const open = await c.next((m) => typeof m === "string" && m.startsWith("0"));
  if (!open) return { c, refused: "no open packet" };
  c.sid = JSON.parse(open.slice(1)).sid;
  if (nsp === null) return { c };
  const prefix = nsp === "/" ? "" : `${nsp},`;
  c.send(`40${prefix}${auth ? JSON.stringify(auth) : ""}`);
  const connect = await c.next((m) => typeof m === "string" && (m.startsWith(`40${prefix}`) || m.startsWith(`44${prefix}`)));
  return { c, connect };
}

/** Runs fn(i) for i = 0.. while i < max and before deadline, `concurrency` at a time. */
export async function bounded(max, concurrency, deadline, fn) {
  let i = 0;
  const lane = async () => {
    while (i < max && Date.now() < deadline) {
      const k = i++;
      try {
        await fn(k);
      } catch {
        // counted by fn
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return i;
}

/** Counts per kind of attack, and a few observations to assert on. */
export class Tally {
  constructor() {
    this.tried = {};
    this.seen = {};
  }
  add(kind, n = 1) {
    this.tried[kind] = (this.tried[kind] ?? 0) + n;
  }
  /** Counts an observation `what` (e.g. "429" or "closed") under kind. */
  see(kind, what, n = 1) {
    this.seen[kind] ??= {};
    this.seen[kind][what] = (this.seen[kind][what] ?? 0) + n;
  }
  total() {
    return Object.values(this.tried).reduce((a, b) => a + b, 0);
  }
}

/** Writes `bytes` on a fresh TCP connection; resolves {closed, data} when the server closes or after ms. */
export function rawExchange(port, localAddress, bytes, ms) {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port, localAddress });
    let data = "";
    let done = false;
    const end = (closed) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ closed, data });
    };
    const timer = setTimeout(() => end(false), ms);
    s.setEncoding("latin1");
    s.on("connect", () => s.write(bytes));
    s.on("data", (d) => (data += d));
    s.on("error", () => end(true));
    s.on("close", () => end(true));
  });
}

/**
 * `n` Engine.IO polling handshakes one after the other on ONE keep-alive
 * connection (cheap for us, so that thousands fit in the window). Resolves
 * with the HTTP status of each (or "closed" for those never answered) and the
 * first body of each status.
 */
export function keepAliveHandshakes(port, localAddress, n, timeoutMs = 5000) {
  return new Promise((resolve) => {
    const statuses = [];
    const bodies = {};
    const req = Buffer.from("GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    const s = net.connect({ host: "127.0.0.1", port, localAddress });
    let buf = Buffer.alloc(0);
    let done = false;
    const end = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      while (statuses.length < n) statuses.push("closed");
      resolve({ statuses, bodies });
    };
    const timer = setTimeout(end, timeoutMs);
    s.on("connect", () => s.write(req));
    s.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const head = buf.indexOf("\r\n\r\n");
        if (head < 0) return;
        const text = buf.subarray(0, head).toString("latin1");
        const status = Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1]);
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(text)?.[1] ?? 0);
        if (buf.length < head + 4 + length) return;
        bodies[status] ??= buf.subarray(head + 4, head + 4 + length).toString("latin1");
        buf = buf.subarray(head + 4 + length);
        statuses.push(status);
        if (statuses.length >= n || /\r\nconnection: *close/i.test(text)) return end();
        s.write(req);
      }
    });
    s.on("error", end);
    s.on("close", end);
  });
}

const httpAnswer = (res) => (res.error ? `error` : `${res.status} ${res.body.slice(0, 80)}`);

// ---------------------------------------------------------------- the inputs

const deepArrays = (n) => "[".repeat(n) + "]".repeat(n);
const deepObjects = (n) => '{"a":'.repeat(n) + "1" + "}".repeat(n);
const bin = (n, fill = 0x61) => Buffer.alloc(n, fill);

/**
 * Malformed WebSocket inputs. `connect`: send "40" first (and wait for the
 * answer) so the input reaches the Socket.IO layer. `frames`: what is sent.
 * `raw`: bytes written straight to the TCP socket (bad WebSocket framing).
 */
export const WS_INPUTS = [
  { name: "text garbage", frames: ["garbage"] },
  { name: "empty text", frames: [""] },
  { name: "control bytes", frames: ["\x00\x01\x02\xff"] },
  { name: "eio type 9", frames: ["9"] },
  { name: "eio type 7 with data", frames: ["7xyz"] },
  { name: "eio open from client", frames: ['0{"sid":"x"}'] },
  { name: "eio ping from client", frames: ["2"] },
  { name: "eio pong unasked", frames: ["3", "3", "3"] },
  { name: "eio upgrade unasked", frames: ["5"] },
  { name: "eio noop", frames: ["6"] },
  { name: "40 junk", frames: ["40junk"] },
  { name: "40 broken auth", frames: ['40{"token":'] },
  { name: "40 auth not object", frames: ["40[1,2,3]"] },
  { name: "40 unknown namespace", frames: ["40/does-not-exist,"] },
  { name: "40 namespace no comma", frames: ["40/secure"] },
  { name: "40 twice", frames: ["40", "40"] },
  { name: "4 alone", frames: ["4"] },
  { name: "sio type 9", frames: ["49"] },
  { name: "sio CONNECT_ERROR from client", frames: ['44{"message":"x"}'], connect: true },
  { name: "41 unknown namespace", frames: ["41/nope,"], connect: true },
  { name: "42 broken JSON", frames: ["42["], connect: true },
  { name: "42 unterminated", frames: ['42["ev",{"a":'], connect: true },
  { name: "42 object", frames: ['42{"a":1}'], connect: true },
  { name: "42 empty array", frames: ["42[]"], connect: true },
  { name: "42 number event name", frames: ["42[1,2]"], connect: true },
  { name: "42 string", frames: ['42"str"'], connect: true },
  { name: "42 huge ack id", frames: ['4299999999999999999999999999["ev"]'], connect: true },
  { name: "42 negative ack id", frames: ['42-1["ev"]'], connect: true },
  { name: "42 reserved event", frames: ['42["connect"]', '42["disconnect"]'], connect: true },
  { name: "42 not joined namespace", frames: ['42/secure,["ev"]'], connect: true },
  { name: "42 before CONNECT", frames: ['42["ev",1]'] },
  { name: "42 lone surrogate", frames: ['42["ev","\\ud800"]'], connect: true },
  { name: "42 huge number", frames: ['42["ev",1e999999,-1e999999]'], connect: true },
  { name: "42 deep arrays", frames: [`42["ev",${deepArrays(50_000)}]`], connect: true },
  { name: "42 deep objects", frames: [`42["ev",${deepObjects(20_000)}]`], connect: true },
  { name: "42 deep just over limit", frames: [`42["ev",${deepArrays(40)}]`], connect: true },
  { name: "invalid UTF-8 text", frames: [Buffer.from([0x34, 0x32, 0x5b, 0x22, 0xff, 0xfe, 0xc0, 0x22, 0x5d])], text: true, connect: true },
  { name: "invalid UTF-8 before open", frames: [Buffer.from([0xff, 0xfe, 0xfd])], text: true },
  { name: "text over maxHttpBufferSize", frames: [`42["big","${"x".repeat(1_100_000)}"]`], connect: true },
  { name: "binary over maxHttpBufferSize", frames: ['451-["b",{"_placeholder":true,"num":0}]', bin(1_100_000)], connect: true },
  { name: "binary event, attachment never sent", frames: ['451-["b",{"_placeholder":true,"num":0}]'], connect: true },
  { name: "binary event, 2 of 3 attachments", frames: ['453-["b",{"_placeholder":true,"num":0}]', bin(10), bin(10)], connect: true },
  { name: "binary frames without event", frames: [bin(100), bin(100), bin(100)], connect: true },
  { name: "binary frame before CONNECT", frames: [bin(100)] },
  { name: "binary event, extra attachments", frames: ['451-["b",{"_placeholder":true,"num":0}]', bin(10), bin(10), bin(10), bin(10)], connect: true },
  { name: "binary event, huge attachment count", frames: ['459999999-["b"]'], connect: true },
  { name: "binary event, 11 attachments", frames: ['4511-["b"]', ...Array.from({ length: 11 }, () => bin(10))], connect: true },
  { name: "binary event, attachments over total", frames: ['452-["b",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]', bin(600_000), bin(600_000)], connect: true },
  { name: "binary event, placeholder out of range", frames: ['451-["b",{"_placeholder":true,"num":7}]', bin(10)], connect: true },
  { name: "binary event, no dash", frames: ['451["b",{"_placeholder":true,"num":0}]', bin(10)], connect: true },
  { name: "binary ack unknown id", frames: ['461-[{"_placeholder":true,"num":0}]', bin(10)], connect: true },
  { name: "ack for nothing", frames: ["437[1]"], connect: true },
  {
    name: "frame length 2^63-1 promised",
    raw: Buffer.from([0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5]),
  },
  { name: "unmasked client frame", raw: Buffer.from([0x81, 0x02, 0x34, 0x30]) },
  { name: "reserved opcode", raw: Buffer.from([0x83, 0x80, 0, 0, 0, 0]) },
  // A text frame without FIN, then never the continuation.
  { name: "fragment never finished", raw: Buffer.from([0x01, 0x81, 0, 0, 0, 0, 0x34]) },
];

/** Malformed polling POST bodies (each on a fresh session). */
export const POLLING_BODIES = [
  { name: "garbage", body: "garbage" },
  { name: "empty", body: "" },
  { name: "separators only", body: "\x1e\x1e\x1e" },
  { name: "eio type 9", body: "9" },
  { name: "40 junk", body: "40junk\x1e42[" },
  { name: "42 broken JSON", body: "40\x1e42[" },
  { name: "bad base64", body: "40\x1ebZZZ!!!" },
  { name: "b alone", body: "b" },
  { name: "binary event, attachment never sent", body: '40\x1e451-["b",{"_placeholder":true,"num":0}]' },
  { name: "deep nesting", body: `40\x1e42["ev",${deepArrays(50_000)}]` },
  { name: "invalid UTF-8", body: Buffer.from([0x34, 0x30, 0x1e, 0x34, 0x32, 0x5b, 0x22, 0xff, 0xfe, 0x22, 0x5d]) },
  { name: "pings from client", body: Array(5000).fill("2").join("\x1e") },
  { name: "close then more", body: "1\x1e40\x1e42[\"ev\"]" },
  { name: "upgrade packet", body: "5" },
];

// ------------------------------------------------------------------ attacks

/** Malformed packets over WebSocket, each on its own connection, in rounds. */
async function malformedWs(ctx) {
  const { port, deadline, tally } = ctx;
  const addr = addressPool(21, 40);
  const kind = "ws-malformed";
  const samples = {};
  const jobs = [];
  for (let round = 0; round < 8; round++) for (const input of WS_INPUTS) jobs.push(input);
  await bounded(jobs.length, 12, deadline, async (i) => {
    const input = jobs[i];
    tally.add(kind);
    const { c, connect, refused } = await wsSession(port, { localAddress: addr(), nsp: input.connect ? "/" : null });
    if (refused) {
      tally.see(kind, `refused ${refused}`);
      c.close();
      return;
    }
    if (input.connect && !connect) tally.see(kind, "no CONNECT answer");
    if (input.raw) c.ws._socket.write(input.raw);
    for (const f of input.frames ?? []) c.send(f, input.text ? false : typeof f !== "string");
    const closed = await c.waitClose(1500);
    tally.see(kind, closed ? "closed by server" : "left open");
    samples[input.name] ??= { closed, code: c.closeCode };
    c.close();
  });
  return { samples };
}

/** Malformed polling requests: bad bodies, oversize, unknown sid, bad EIO, transports, methods. */
async function malformedPolling(ctx) {
  const { port, deadline, tally } = ctx;
  const addr = addressPool(22, 40);
  const kind = "polling-malformed";
  const samples = {};
  const note = (name, res) => {
    const a = httpAnswer(res);
    samples[name] ??= a;
    tally.see(kind, `${name}: ${res.error ? "error" : res.status}`);
  };
  const fixed = [
    ["unknown sid GET", { path: "/socket.io/?EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAA" }],
    ["unknown sid POST", { method: "POST", path: "/socket.io/?EIO=4&transport=polling&sid=nope", body: "40" }],
    ["sid of absurd shard", { path: "/socket.io/?EIO=4&transport=polling&sid=%FF%FF%FF%00" }],
    ["EIO=3", { path: "/socket.io/?EIO=3&transport=polling" }],
    ["EIO=5", { path: "/socket.io/?EIO=5&transport=polling" }],
    ["EIO=abc", { path: "/socket.io/?EIO=abc&transport=polling" }],
    ["no EIO", { path: "/socket.io/?transport=polling" }],
    ["unknown transport", { path: "/socket.io/?EIO=4&transport=flashsocket" }],
    ["no transport", { path: "/socket.io/?EIO=4" }],
    ["websocket without upgrade", { path: "/socket.io/?EIO=4&transport=websocket" }],
    ["POST handshake", { method: "POST", path: "/socket.io/?EIO=4&transport=polling", body: "40" }],
    ["PUT", { method: "PUT", path: "/socket.io/?EIO=4&transport=polling", body: "x" }],
    ["DELETE", { method: "DELETE", path: "/socket.io/?EIO=4&transport=polling" }],
    ["other path", { path: "/not-socket-io/?EIO=4&transport=polling" }],
    ["query garbage", { path: "/socket.io/?%%%&&&===&EIO=4&EIO=4&transport=polling&transport=x" }],
    ["huge URL", { path: `/socket.io/?EIO=4&transport=polling&x=${"a".repeat(20_000)}` }],
    ["huge header", { path: "/socket.io/?EIO=4&transport=polling", headers: { "x-junk": "b".repeat(20_000) } }],
    ["many headers", { path: "/socket.io/?EIO=4&transport=polling", headers: Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`x-h${i}`, "v".repeat(30)])) }],
    ["POST oversize, no sid", { method: "POST", path: "/socket.io/?EIO=4&transport=polling&sid=nope", body: "4".repeat(1_100_000) }],
  ];
  const sessionJobs = [
    ...POLLING_BODIES.map((b) => ({ ...b, kind: "body" })),
    // Oversize: the whole body sent (the server may answer 413 and close
    // before it has all arrived: then the client sees a reset), and a
    // Content-Length over the limit alone (413 at once).
    { name: "oversize body", kind: "body", body: `40\x1e42["big","${"x".repeat(1_100_000)}"]` },
    { name: "oversize Content-Length", kind: "oversizeLength" },
    { name: "lying Content-Length", kind: "lying" },
    { name: "duplicate GET polls", kind: "dupget" },
  ];
  const jobs = [];
  for (let round = 0; round < 6; round++) {
    for (const f of fixed) jobs.push({ kind: "fixed", f });
    for (const s of sessionJobs) jobs.push(s);
  }
  await bounded(jobs.length, 12, deadline, async (i) => {
    const job = jobs[i];
    const localAddress = addr();
    if (job.kind === "fixed") {
      const [name, opts] = job.f;
      tally.add(kind);
      note(name, await request(port, { ...opts, localAddress }));
      return;
    }
    tally.add(kind);
    const { sid, res } = await pollingHandshake(port, localAddress);
    if (!sid) {
      tally.see(kind, `handshake refused ${httpAnswer(res)}`);
      return;
    }
    const path = `/socket.io/?EIO=4&transport=polling&sid=${sid}`;
    if (job.kind === "body") {
      tally.add(kind);
      note(`POST ${job.name}`, await request(port, { method: "POST", path, body: job.body, localAddress, headers: { "content-type": "text/plain" } }));
      tally.add(kind);
      note(`GET after ${job.name}`, await request(port, { path, localAddress, timeoutMs: 2000 }));
    } else if (job.kind === "oversizeLength") {
      tally.add(kind);
      const r = await rawExchange(port, localAddress, `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1100000\r\n\r\n40`, 5000);
      const status = /^HTTP\/1\.1 (\d+)/.exec(r.data)?.[1] ?? (r.closed ? "closed" : "no answer");
      samples["POST oversize Content-Length"] ??= `${status} ${r.data.split("\r\n\r\n")[1] ?? ""}`;
      tally.see(kind, `POST oversize Content-Length: ${status}`);
    } else if (job.kind === "lying") {
      // Promises 100000 bytes and sends 10: the body timeout must close it.
      tally.add(kind);
      const started = Date.now();
      const r = await rawExchange(port, localAddress, `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n40\x1e42["ab`, 9000);
      const what = `${r.closed ? "closed" : "left open"}${r.data ? ` (${r.data.split("\r\n")[0]})` : ""}`;
      samples["lying Content-Length"] ??= `${what} after ${Math.round((Date.now() - started) / 100) / 10} s`;
      tally.see(kind, `lying Content-Length: ${what}`);
    } else if (job.kind === "dupget") {
      // Two GETs at once on one session: the second is refused and the session closed.
      tally.add(kind, 2);
      const first = request(port, { path, localAddress, timeoutMs: 4000 });
      await sleep(50);
      const second = await request(port, { path, localAddress, timeoutMs: 4000 });
      const one = await first;
      note("duplicate GET (second)", second);
      note("duplicate GET (first)", one);
      tally.add(kind);
      note("GET after duplicate", await request(port, { path, localAddress, timeoutMs: 2000 }));
    }
  });
  return { samples };
}

/** Upgrades with a sid that is not the attacker's, or that is already upgraded. */
async function hijack(ctx) {
  const { port, deadline, tally, legitWsSids } = ctx;
  const addr = addressPool(23, 20);
  const kind = "upgrade-hijack";
  const samples = {};
  for (let round = 0; round < 30 && Date.now() < deadline; round++) {
    // Another live session's sid (a legitimate client already on WebSocket).
    for (const sid of legitWsSids) {
      tally.add(kind);
      const c = await openWs(port, `EIO=4&transport=websocket&sid=${encodeURIComponent(sid)}`, { localAddress: addr() });
      if (c.opened) c.send("2probe");
      const got = await c.next(() => true, 500);
      const closed = await c.waitClose(1500);
      const what = !c.opened ? `refused ${c.status}` : got ? `got ${String(got).slice(0, 20)}` : closed ? "closed" : "left open";
      samples["legit websocket sid"] ??= what;
      if (!c.opened) samples[`legit websocket sid refused: ${sid}`] ??= `${c.status} ${c.body} at ${Date.now()}`;
      tally.see(kind, `legit sid: ${what}`);
      c.close();
    }
    // Our own polling session, upgraded, then a second WebSocket and a GET on it.
    tally.add(kind);
    const localAddress = addr();
    const { sid } = await pollingHandshake(port, localAddress);
    if (!sid) continue;
    const q = `EIO=4&transport=websocket&sid=${sid}`;
    const first = await openWs(port, q, { localAddress });
    first.send("2probe");
    const probe = await first.next((m) => m === "3probe", 2000);
    first.send("5");
    tally.add(kind);
    const second = await openWs(port, q, { localAddress });
    if (second.opened) second.send("2probe");
    const secondGot = await second.next((m) => m === "3probe", 500);
    const secondClosed = await second.waitClose(1500);
    const s2 = !second.opened ? `refused ${second.status}` : secondGot ? "PROBED" : secondClosed ? "closed" : "left open";
    samples["second WebSocket on upgraded sid"] ??= s2;
    tally.see(kind, `second ws: ${s2}`);
    tally.add(kind);
    const get = await request(port, { path: `/socket.io/?EIO=4&transport=polling&sid=${sid}`, localAddress, timeoutMs: 2000 });
    samples["GET on upgraded sid"] ??= httpAnswer(get);
    samples["first upgrade probed"] ??= Boolean(probe);
    first.close();
    second.close();
    await sleep(200);
  }
  return { samples };
}

/** Thousands of handshakes that never continue; WebSockets opened and held. */
async function bogusHandshakes(ctx) {
  const { port, deadline, tally, held } = ctx;
  const kind = "bogus-handshakes";
  // 500 from a single address, at once (past its burst: 429), and 2500 spread
  // over 50 addresses (50 each: under the per-address burst, so they create
  // real sessions, which live until their ping timeout). Meanwhile 200
  // WebSocket connections are opened and held without a Socket.IO CONNECT.
  const spread = addressPool(24, 50);
  const total = ctx.bogusHandshakes ?? 3000;
  const single = Math.floor(total / 6);
  const spreadTotal = total - single;
  const samples = {};
  // Up to 25 handshakes per keep-alive connection (a refusal closes it; what
  // was not sent is handed to the next connection).
  const PER_CONN = 25;
  let reserved = 0;
  let refusedConns = 0;
  const lane = async () => {
    while (reserved < spreadTotal && Date.now() < deadline) {
      const n = Math.min(PER_CONN, spreadTotal - reserved);
      reserved += n;
      const { statuses, bodies } = await keepAliveHandshakes(port, spread(), n);
      const answered = statuses.filter((st) => st !== "closed");
      reserved -= n - Math.max(answered.length, 1);
      tally.add(kind, Math.max(answered.length, 1));
      if (answered.length === 0) refusedConns++;
      for (const st of answered) tally.see(kind, String(st));
      for (const [st, body] of Object.entries(bodies)) if (st !== "200") samples[st] ??= body;
    }
  };
  const polling = Promise.all(Array.from({ length: 16 }, lane));
  // One connection each, from one address.
  const fromOne = bounded(single, 50, deadline, async () => {
    tally.add(kind);
    const { statuses, bodies } = await keepAliveHandshakes(port, "127.25.0.1", 1);
    tally.see(kind, String(statuses[0]));
    for (const [st, body] of Object.entries(bodies)) if (st !== "200") samples[st] ??= body;
  });
  const wsAddr = addressPool(26, 10);
  const ws = bounded(200, 10, deadline, async () => {
    tally.add(kind);
    const c = await openWs(port, "EIO=4&transport=websocket", { localAddress: wsAddr() });
    if (c.opened) {
      held.push(c);
      tally.see(kind, "ws held");
    } else tally.see(kind, `ws refused ${c.status}`);
  });
  await Promise.all([polling, fromOne, ws]);
  if (refusedConns) tally.see(kind, "connection closed unanswered", refusedConns);
  return { samples };
}

/** Slowloris: sockets that send their request headers one byte at a time, and idle sockets. */
async function slowloris(ctx) {
  const { port, deadline, tally } = ctx;
  const kind = "slowloris";
  const addr = addressPool(27, 20);
  const request = Buffer.from("GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + "s".repeat(2000));
  const closedAfter = [];
  let stillOpenAtEnd = 0;
  const one = (idle) =>
    new Promise((resolve) => {
      tally.add(kind);
      const started = Date.now();
      const s = net.connect({ host: "127.0.0.1", port, localAddress: addr() });
      let pos = 0;
      let timer;
      let done = false;
      const end = (byServer) => {
        if (done) return;
        done = true;
        clearInterval(timer);
        clearTimeout(stop);
        if (byServer) closedAfter.push(Date.now() - started);
        else stillOpenAtEnd++;
        s.destroy();
        resolve();
      };
      s.on("connect", () => {
        if (idle) return;
        timer = setInterval(() => {
          if (pos < request.length) s.write(request.subarray(pos, ++pos));
        }, 300);
      });
      s.on("data", () => {});
      s.on("error", () => end(true));
      s.on("close", () => end(true));
      const stop = setTimeout(() => end(false), Math.max(0, deadline - Date.now()));
    });
  const conns = [];
  for (let i = 0; i < 200 && Date.now() < deadline; i++) {
    conns.push(one(i % 5 === 4));
    await sleep(5);
  }
  await Promise.all(conns);
  tally.see(kind, "closed by server", closedAfter.length);
  tally.see(kind, "open at the end", stillOpenAtEnd);
  closedAfter.sort((a, b) => a - b);
  return { closedByServer: closedAfter.length, stillOpenAtEnd, medianCloseMs: closedAfter[closedAfter.length >> 1] ?? null };
}

/** An event flood from one socket at a time: tens of thousands of emits, reconnecting when cut. */
async function flood(ctx) {
  const { port, deadline, tally } = ctx;
  const kind = "event-flood";
  const max = ctx.floodEmits ?? 40_000;
  let sent = 0;
  let disconnects = 0;
  let rateLimitedNotices = 0;
  let refusedAcks = 0;
  const addr = addressPool(28, 5);
  while (sent < max && Date.now() < deadline) {
    tally.add("event-flood connections");
    const { c, connect } = await wsSession(port, { localAddress: addr(), nsp: "/" });
    if (!connect || !connect.startsWith("40")) {
      c.close();
      await sleep(200);
      continue;
    }
    c.ws.on("message", (d, isBinary) => {
      if (isBinary) return;
      const m = d.toString();
      if (m.startsWith('42["rate-limited"')) rateLimitedNotices++;
      else if (m.startsWith("43") && m.includes("rate-limited")) refusedAcks++;
    });
    while (sent < max && Date.now() < deadline && !c.closed) {
      for (let k = 0; k < 200 && sent < max; k++, sent++) {
        // Mostly without acks: the server need not write back to drop them.
        const n = sent % 20;
        if (n === 0) c.send(`42${sent}["flood",{"n":${sent}}]`);
        else if (n === 1) c.send(`42["join-room","flood-${sent % 200}"]`);
        else if (n === 2) c.send(`42["message",{"x":${sent}}]`);
        else c.send(`42["flood",${sent}]`);
      }
      tally.add(kind, 200);
      c.messages.length = 0;
      // Let the socket drain (and the server answer) before the next batch.
      // About 4000 emits a second, spread over the window.
      while (!c.closed && c.ws.bufferedAmount > 64 * 1024) await sleep(5);
      await sleep(50);
    }
    // The server disconnects a flooder; wait for it (bounded by the deadline).
    if (!c.closed) await c.waitClose(Math.max(0, Math.min(3000, deadline - Date.now())));
    if (c.closed) disconnects++;
    c.close();
  }
  return { sent, disconnects, rateLimitedNotices, refusedAcks };
}

/** Bad and forged tokens on /secure, many CONNECT attempts per Engine.IO connection. */
async function badTokens(ctx) {
  const { port, deadline, tally, secret, rsaPrivateKey, rsaPublicKey } = ctx;
  const kind = "bad-tokens";
  const claims = (extra = {}) => ({ sub: "mallory", exp: now() + 600, ...extra });
  const tokens = () => [
    ["missing", null, "token_required"],
    ["empty", "", "token_required"],
    ["garbage", "not.a.token", "invalid_token"],
    ["one part", "abc", "invalid_token"],
    ["wrong key", sign(claims(), { alg: "HS256", key: "not-the-secret", kid: "hmac" }), "invalid_token"],
    ["alg none", sign(claims(), { alg: "none", kid: "hmac" }), "invalid_token"],
    ["alg none, no kid", sign(claims(), { alg: "none" }), "invalid_token"],
    ["alg confusion (HS256 with the RSA public key)", sign(claims(), { alg: "HS256", key: rsaPublicKey, kid: "rsa" }), "invalid_token"],
    ["alg confusion, no kid", sign(claims(), { alg: "HS256", key: rsaPublicKey }), "invalid_token"],
    ["RS256 for the HMAC key", sign(claims(), { alg: "RS256", key: rsaPrivateKey, kid: "hmac" }), "invalid_token"],
    ["expired", sign(claims({ exp: now() - 3600 }), { alg: "HS256", key: secret, kid: "hmac" }), "token_expired"],
    ["expired RS256", sign(claims({ exp: now() - 3600 }), { alg: "RS256", key: rsaPrivateKey, kid: "rsa" }), "token_expired"],
    ["not yet valid", sign(claims({ nbf: now() + 3600 }), { alg: "HS256", key: secret, kid: "hmac" }), "token_not_yet_valid"],
    ["unknown kid", sign(claims(), { alg: "HS256", key: secret, kid: "nope" }), "invalid_token"],
    ["no sub", sign({ exp: now() + 600 }, { alg: "HS256", key: secret, kid: "hmac" }), "invalid_token"],
    ["truncated signature", sign(claims(), { alg: "HS256", key: secret, kid: "hmac" }).slice(0, -5), "invalid_token"],
    ["header not JSON", `${Buffer.from("{{{").toString("base64url")}.${Buffer.from("{}").toString("base64url")}.x`, "invalid_token"],
    ["deep header", `${Buffer.from(deepArrays(5000)).toString("base64url")}.e30.x`, "invalid_token"],
    ["huge token", "a".repeat(200_000), "invalid_token"],
    ["token not a string", 12345, null],
  ];
  const wrong = [];
  let accepted = 0;
  let controls = 0;
  const addr = addressPool(29, 10);
  for (let round = 0; round < 200 && Date.now() < deadline; round++) {
    tally.add("bad-token connections");
    const { c, refused } = await wsSession(port, { localAddress: addr() });
    if (refused) {
      c.close();
      await sleep(100);
      continue;
    }
    // ctx.tokenNames: only these (for investigating one of them).
    for (const [name, token, code] of tokens().filter(([n]) => !ctx.tokenNames || ctx.tokenNames.includes(n))) {
      if (Date.now() >= deadline || c.closed) break;
      tally.add(kind);
      c.send(`40/secure,${token === null ? "" : JSON.stringify({ token })}`);
      const answer = await c.next((m) => typeof m === "string" && m.startsWith("4") && m.includes("/secure,"), 3000);
      if (answer === null) {
        tally.see(kind, `${name}: no answer${c.closed ? " (closed)" : ""}`);
        continue;
      }
      if (answer.startsWith("40/secure,")) {
        accepted++;
        wrong.push(`${name}: ACCEPTED`);
        c.send("41/secure,");
        continue;
      }
      const body = JSON.parse(answer.slice("44/secure,".length));
      if (code && body?.data?.code !== code) wrong.push(`${name}: ${answer.slice(0, 120)}`);
      tally.see(kind, body?.message ?? "?");
    }
    // A valid token on the same connection still works (the control).
    if (!c.closed && round % 10 === 0) {
      const ok = sign(claims(), { alg: "RS256", key: rsaPrivateKey, kid: "rsa" });
      c.send(`40/secure,${JSON.stringify({ token: ok })}`);
      const answer = await c.next((m) => typeof m === "string" && m.includes("/secure,"), 3000);
      if (answer?.startsWith("40/secure,")) controls++;
      else wrong.push(`control: ${answer?.slice(0, 120)}`);
    }
    c.close();
  }
  return { accepted, controls, wrong: wrong.slice(0, 20), wrongCount: wrong.length };
}

/**
 * CONNECT floods (issue 14): one WebSocket sends thousands of CONNECTs with a
 * bad token, each a JWT check for the server. Past the per-connection CONNECT
 * budget (limits.connectRate) the server must close the connection.
 */
async function connectFlood(ctx) {
  const { port, deadline, tally } = ctx;
  const kind = "connect-flood";
  const perConnection = 3000;
  const addr = addressPool(30, 5);
  let connections = 0;
  let closedByServer = 0;
  let maxAnswers = 0;
  for (let round = 0; round < 10 && Date.now() < deadline; round++) {
    const { c, refused } = await wsSession(port, { localAddress: addr() });
    if (refused) {
      c.close();
      await sleep(100);
      continue;
    }
    connections++;
    tally.add("connect-flood connections");
    let sent = 0;
    while (sent < perConnection && !c.closed && Date.now() < deadline) {
      for (let k = 0; k < 100 && sent < perConnection; k++, sent++) c.send('40/secure,{"token":"not.a.token"}');
      tally.add(kind, 100);
      while (!c.closed && c.ws.bufferedAmount > 64 * 1024) await sleep(5);
      await sleep(10);
    }
    const closed = c.closed || (await c.waitClose(Math.max(0, Math.min(3000, deadline - Date.now()))));
    const answers = c.messages.filter((m) => typeof m === "string" && m.startsWith("44/secure,")).length;
    maxAnswers = Math.max(maxAnswers, answers);
    if (closed) closedByServer++;
    tally.see(kind, closed ? "closed by server" : "left open");
    c.close();
  }
  return { connections, closedByServer, maxAnswers };
}

/** Runs every attack until ctx.deadline; closes what it holds; returns the tallies. */
export async function runAttacks(ctx) {
  const tally = new Tally();
  const held = [];
  const full = { ...ctx, tally, held };
  const names = ["malformedWs", "malformedPolling", "hijack", "bogusHandshakes", "slowloris", "flood", "badTokens", "connectFlood"];
  const fns = [malformedWs, malformedPolling, hijack, bogusHandshakes, slowloris, flood, badTokens, connectFlood];
  // ctx.only: run only these attacks (by name; for investigating one of them).
  const results = await Promise.all(
    fns.map((fn, i) =>
      ctx.only && !ctx.only.includes(names[i]) ? { skipped: true } : fn(full).catch((err) => ({ crashed: String(err?.stack ?? err) })),
    ),
  );
  const heldClosedByServer = held.filter((c) => c.closed).length;
  for (const c of held) c.close();
  return {
    tried: tally.tried,
    seen: tally.seen,
    total: tally.total(),
    heldWs: held.length,
    heldClosedByServer,
    results: Object.fromEntries(names.map((n, i) => [n, results[i]])),
  };
}

if (!isMainThread && workerData?.attack) {
  const result = await runAttacks(workerData.attack);
  parentPort.postMessage(result);
}
