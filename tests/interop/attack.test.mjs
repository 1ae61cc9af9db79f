// The attack test (issue 4, "Hostile input, tested"): one `switchboard
// standalone` under a fixed window of hostile traffic (lib/attack.mjs, run in
// a worker thread: malformed packets of every kind over WebSocket and polling,
// oversize payloads, unknown sids, duplicate polls, upgrades with another
// session's sid, thousands of bogus handshakes, slowloris, an event flood, bad
// and forged tokens, CONNECT floods) while, in this thread, legitimate socket.io-client
// clients keep receiving every publish, a reconnector keeps connecting, and
// two clients that never read (one WebSocket, one polling) sit in the room
// the large publishes go to, with two of the legitimate clients. Afterwards: every legitimate publish arrived, in
// order, to every client; every reconnect succeeded; the never-readers were
// disconnected; the bad inputs got their protocol answers; the process is
// alive and its RSS stayed bounded.
//
// Bounded in count and time, loopback only: the attack window is ATTACK_MS,
// each attack has a maximum count, and every connection is closed at the end.
// A summary line ("attack summary: ...") goes to stderr.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Worker } from "node:worker_threads";
import { io } from "socket.io-client";

import { binary, connectApi, json } from "./lib/api.mjs";
import { MB, openWs, pollingHandshake, request, rssBytes } from "./lib/attack.mjs";
import { eventually } from "./lib/cluster.mjs";
import { keyPairs } from "./lib/jwt.mjs";
import { startServer } from "./lib/server.mjs";
import { withTimeout } from "./lib/wait.mjs";

const ATTACK_MS = 12_000;
const TICK_MS = 50;
const BLOB_MS = 100;
const BLOB_BYTES = 256 * 1024;
const RECONNECT_EVERY_MS = 300;
const RSS_SAMPLE_MS = 200;
// Bounds against unbounded growth, not performance figures. Measured on a
// loaded 2-core VM with a Debug + ASan/UBSan build (quarantine cut to 16 MB,
// below): before ~176 MB (mostly ASan), peak +45..55 MB, after +40..50 MB
// (the bogus handshakes' ~2700 sessions live until their ping timeout, 45 s).
// The bounds leave several times that.
const RSS_PEAK_BOUND = 300 * MB;
const RSS_AFTER_BOUND = 100 * MB;

const SECRET = "attack-test-secret-0123456789-abcdefghijklmnop";
const JOIN_RULE = {
  event: "join-room",
  action: "join",
  room: "$.room|$",
  notify: { event: "user-joined", payload: { socketId: "$socket.id", room: "$room" }, exceptSender: true },
  ack: { ok: true, room: "$room" },
};

let server;
let api;
let dir;
let keys;

before(async () => {
  keys = keyPairs();
  dir = mkdtempSync(path.join(tmpdir(), "sb-attack-"));
  writeFileSync(path.join(dir, "rsa.pem"), keys.rsa.publicKey);
  const config = {
    engine: { maxHttpBufferSize: 1_000_000 },
    // The slowloris timeouts are shortened so that they fire inside the
    // attack window; the CONNECT burst fits the bad-token attack's 20 tokens
    // and the valid one after them on one connection; every other limit is
    // the default.
    limits: { http: { headersTimeout: 4000, bodyTimeout: 4000 }, connectRate: { perSecond: 5, burst: 25 } },
    namespaces: {
      "/": { rules: [JOIN_RULE] },
      "/secure": {
        auth: {
          keys: [
            { kid: "hmac", algorithms: ["HS256"], secretEnv: "SB_ATTACK_JWT_SECRET" },
            { kid: "rsa", algorithms: ["RS256"], publicKeyFile: path.join(dir, "rsa.pem") },
          ],
        },
        rules: [JOIN_RULE],
      },
    },
  };
  const file = path.join(dir, "config.json");
  writeFileSync(file, JSON.stringify(config));
  process.env.SB_ATTACK_JWT_SECRET = SECRET;
  // Under AddressSanitizer, freed memory sits in a quarantine of 256 MB by
  // default, which RSS would count as growth; a small one keeps the figures
  // meaningful (no effect on other builds).
  if (!/quarantine_size_mb/.test(process.env.ASAN_OPTIONS ?? "")) {
    process.env.ASAN_OPTIONS = [process.env.ASAN_OPTIONS, "quarantine_size_mb=16"].filter(Boolean).join(":");
  }
  server = await startServer(
    "switchboard",
    ["standalone", "--config", file, "--threads", "2", "--grpc-listen", "127.0.0.1:0", "--log-level", process.env.SB_ATTACK_LOG_LEVEL ?? "warn"],
    { ready: ["grpc", "http"] },
  );
  api = connectApi(server.grpcAddress);
});

after(async () => {
  api?.close();
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** CPU seconds (user + system) process `pid` has used. */
function cpuSeconds(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

const alive = () => server.proc.exitCode === null && server.proc.signalCode === null;

/** A socket.io-client socket on "/", connected (rejects on connect_error / timeout). */
function connectClient(transports) {
  const socket = io(server.url, { transports, forceNew: true, reconnection: false, timeout: 5000 });
  return withTimeout(
    new Promise((resolve, reject) => {
      socket.once("connect", () => resolve(socket));
      socket.once("connect_error", (err) => {
        socket.close();
        reject(err);
      });
    }),
    6000,
    "connect",
  ).catch((err) => {
    socket.close();
    throw err;
  });
}

/**
 * A legitimate client in room "legit" (the ticks) and, with `blobs`, in room
 * "blobs" (the large publishes, shared with the never-readers), recording
 * every tick and blob.
 */
async function legitClient(transports, i, blobs) {
  const socket = await connectClient(transports);
  const c = { i, transports: transports.join("+"), socket, id: socket.id, engineId: socket.io.engine.id, wantsBlobs: blobs, ticks: [], blobs: [], disconnects: [] };
  c.lastAt = 0;
  c.maxGap = [0, 0];
  socket.on("tick", (t) => {
    c.ticks.push(t.seq);
    const now = Date.now();
    if (c.lastAt && now - c.lastAt > c.maxGap[0]) c.maxGap = [now - c.lastAt, now];
    c.lastAt = now;
  });
  socket.on("blob", (meta, bytes) => c.blobs.push([meta.seq, bytes?.length]));
  socket.on("disconnect", (reason, details) =>
    c.disconnects.push(`${reason} (close code ${details?.context?.code}) at ${new Date().toISOString()}, after ${c.ticks.length} ticks`),
  );
  for (const room of blobs ? ["legit", "blobs"] : ["legit"]) {
    const ack = await socket.timeout(5000).emitWithAck("join-room", room);
    assert.deepEqual(ack, { ok: true, room });
  }
  return c;
}

/** A WebSocket client in "blobs" that stops reading its TCP socket. Returns its socket id. */
async function neverReadingWs() {
  const c = await openWs(server.port, "EIO=4&transport=websocket", { localAddress: "127.30.0.1" });
  assert.ok(c.opened, "never-reader (ws) opened");
  const open0 = (await c.next((m) => typeof m === "string" && m.startsWith("0"))).slice(1);
  c.send("40");
  const connect = await c.next((m) => typeof m === "string" && m.startsWith("40"));
  c.send('420["join-room","blobs"]');
  const ack = await c.next((m) => typeof m === "string" && m.startsWith("430"));
  assert.equal(ack, '430[{"ok":true,"room":"blobs"}]');
  c.ws._socket.pause();
  c.sid = JSON.parse(open0).sid;
  return { c, id: JSON.parse(connect.slice(2)).sid, engineId: c.sid };
}

/** A polling client in "blobs" that never polls again. Returns its socket id. */
async function neverReadingPolling() {
  const localAddress = "127.30.0.2";
  const { sid } = await pollingHandshake(server.port, localAddress);
  assert.ok(sid, "never-reader (polling) handshake");
  const p = `/socket.io/?EIO=4&transport=polling&sid=${sid}`;
  assert.equal((await request(server.port, { method: "POST", path: p, body: "40", localAddress })).status, 200);
  const connect = await request(server.port, { path: p, localAddress });
  const id = JSON.parse(/40(\{[^\x1e]*\})/.exec(connect.body)[1]).sid;
  await request(server.port, { method: "POST", path: p, body: '420["join-room","blobs"]', localAddress });
  const ack = await request(server.port, { path: p, localAddress });
  assert.match(ack.body, /430\[\{"ok":true,"room":"blobs"\}\]/);
  return { id, engineId: sid };
}

test("under attack, legitimate clients get every publish, RSS stays bounded, nothing crashes", { timeout: 85_000 }, async () => {
  // Disconnect reasons of every socket of "/", as the server reports them.
  const watch = api.watchEvents({ namespace: "/", kinds: ["EVENT_KIND_DISCONNECTED"] });
  const disconnected = new Map();
  watch.call.on("data", (e) => {
    if (e.event === "disconnected") disconnected.set(e.disconnected.socket_id, e.disconnected.reason);
  });

  const legit = [];
  const mixes = [["websocket"], ["websocket"], ["websocket"], ["polling"], ["polling"], ["polling", "websocket"]];
  // Two of them (one per transport) take the large publishes too: enough to
  // check those arrive whole under attack, without the test's own thread
  // spending the window parsing them for every client.
  const blobTakers = new Set([0, 3]);
  for (const [i, t] of mixes.entries()) legit.push(await legitClient(t, i, blobTakers.has(i)));
  // The upgrading client has finished its upgrade before the attack (its sid is hijacked below too).
  await eventually(() => assert.equal(legit[5].socket.io.engine.transport.name, "websocket"), { what: "upgrade" });
  const wsNeverReader = await neverReadingWs();
  const pollNeverReader = await neverReadingPolling();
  await eventually(
    async () => {
      const { sockets } = await api.listSockets({ namespace: "/", room: "legit" });
      assert.equal(sockets.length, legit.length);
      const blobs = await api.listSockets({ namespace: "/", room: "blobs" });
      assert.equal(blobs.sockets.length, blobTakers.size + 2);
    },
    { what: "legit room listed" },
  );

  await sleep(1000);
  const rssBefore = await rssBytes(server.proc.pid);
  let rssPeak = rssBefore;
  const sampler = setInterval(async () => {
    const rss = await rssBytes(server.proc.pid);
    if (rss !== null && rss > rssPeak) rssPeak = rss;
  }, RSS_SAMPLE_MS);

  const cpuBefore = cpuSeconds(server.proc.pid);
  const start = Date.now();
  const deadline = start + ATTACK_MS;

  const worker = new Worker(new URL("./lib/attack.mjs", import.meta.url), {
    workerData: {
      attack: {
        // SB_ATTACK_ONLY=flood,slowloris runs only these (lib/attack.mjs runAttacks; for investigating).
        only: process.env.SB_ATTACK_ONLY?.split(","),
        port: server.port,
        deadline,
        secret: SECRET,
        rsaPrivateKey: keys.rsa.privateKey,
        rsaPublicKey: keys.rsa.publicKey,
        legitWsSids: legit.filter((c) => c.socket.io.engine.transport.name === "websocket").map((c) => c.socket.io.engine.id),
      },
    },
  });
  const attackDone = withTimeout(
    new Promise((resolve, reject) => {
      worker.once("message", resolve);
      worker.once("error", reject);
      worker.once("exit", (code) => reject(new Error(`attack worker exited (${code}) without a report`)));
    }),
    ATTACK_MS + 30_000,
    "the attack worker's report",
  );

  // Legitimate traffic. Publishes are sequential, so their order is the order sent.
  const pubErrors = [];
  let ticksSent = 0;
  const publisher = (async () => {
    for (let seq = 0; Date.now() < deadline; seq++) {
      const slot = start + seq * TICK_MS;
      if (slot > Date.now()) await sleep(slot - Date.now());
      try {
        await api.publish({ target: { namespace: "/", rooms: ["legit"] }, event: "tick", args: [json({ seq: ticksSent })] });
        ticksSent++;
      } catch (err) {
        pubErrors.push(`tick ${seq}: ${err.message}`);
      }
    }
  })();
  let blobsSent = 0;
  const blobPublisher = (async () => {
    const payload = Buffer.alloc(BLOB_BYTES, 0x5a);
    while (Date.now() < deadline) {
      try {
        await api.publish({ target: { namespace: "/", rooms: ["blobs"] }, event: "blob", args: [json({ seq: blobsSent }), binary(payload)] });
        blobsSent++;
      } catch (err) {
        pubErrors.push(`blob: ${err.message}`);
      }
      await sleep(BLOB_MS);
    }
  })();
  const reconnects = { tried: 0, ok: 0, failures: [] };
  const reconnector = (async () => {
    const attempts = [];
    for (let k = 0; Date.now() < deadline; k++) {
      reconnects.tried++;
      attempts.push(
        (async () => {
          let socket;
          try {
            socket = await connectClient(k % 2 ? ["polling"] : ["websocket"]);
            const got = new Promise((resolve) => socket.once("direct", resolve));
            await api.publish({ target: { namespace: "/", socket_ids: [socket.id] }, event: "direct", args: [json({ k })] });
            const msg = await withTimeout(got, 5000, "the direct publish");
            assert.deepEqual(msg, { k });
            reconnects.ok++;
          } catch (err) {
            reconnects.failures.push(`#${k}: ${err.message}`);
          } finally {
            socket?.close();
          }
        })(),
      );
      await sleep(RECONNECT_EVERY_MS);
    }
    await Promise.all(attempts);
  })();

  await Promise.all([publisher, blobPublisher, reconnector]);
  const legitEnd = Date.now();
  const cpuDuring = cpuSeconds(server.proc.pid) - cpuBefore;
  const attack = await attackDone;
  await worker.terminate();
  wsNeverReader.c.ws._socket.resume();
  wsNeverReader.c.close();

  // Every publish reaches every legitimate client, in order.
  try {
    await eventually(
      () => {
        for (const c of legit) {
          assert.equal(c.ticks.length, ticksSent, `client ${c.i} (${c.transports}) ticks`);
          assert.equal(c.blobs.length, c.wantsBlobs ? blobsSent : 0, `client ${c.i} (${c.transports}) blobs`);
        }
      },
      { timeoutMs: 10_000, what: "every publish delivered" },
    );
  } catch {
    // Reported below, with what exactly is missing.
  }

  await sleep(3000);
  clearInterval(sampler);
  const rssAfter = await rssBytes(server.proc.pid);
  const stillAlive = alive();

  const delivered = legit.reduce((n, c) => n + c.ticks.length, 0);
  const blobsDelivered = legit.reduce((n, c) => n + c.blobs.length, 0);
  const mb = (b) => (b === null ? "gone" : (b / MB).toFixed(1));
  const tried = Object.entries(attack.tried)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
  process.stderr.write(
    `attack summary: window ${((legitEnd - start) / 1000).toFixed(1)} s (server CPU ${cpuDuring.toFixed(1)} s); tried ${tried}; total=${attack.total}; ` +
      `RSS before/peak/after ${mb(rssBefore)}/${mb(rssPeak)}/${mb(rssAfter)} MB; ` +
      `publishes sent ${ticksSent} ticks x ${legit.length} clients + ${blobsSent} blobs x ${blobTakers.size}, ` +
      `delivered ${delivered}/${ticksSent * legit.length} ticks + ${blobsDelivered}/${blobsSent * blobTakers.size} blobs; ` +
      `reconnects ${reconnects.ok}/${reconnects.tried}; ` +
      `flooder disconnected ${attack.results.flood.disconnects ?? "-"} times, slowloris closed by the server ${attack.results.slowloris.closedByServer ?? "-"}/${attack.tried.slowloris ?? 0}; ` +
      `never-readers disconnected: ws (${wsNeverReader.engineId}) ${disconnected.get(wsNeverReader.id) ?? "NO"}, polling (${pollNeverReader.engineId}) ${disconnected.get(pollNeverReader.id) ?? "NO"}\n`,
  );
  process.stderr.write(
    `legit clients: ${legit
      .map((c) => `#${c.i} ${c.transports} (sid ${c.engineId}): ${c.ticks.length} ticks, ${c.blobs.length} blobs, longest gap ${c.maxGap[0]} ms at +${((c.maxGap[1] - start) / 1000).toFixed(1)} s`)
      .join("; ")}\n`,
  );
  process.stderr.write(`attack observations: ${JSON.stringify({ seen: attack.seen, results: attack.results, heldWs: attack.heldWs, heldClosedByServer: attack.heldClosedByServer })}\n`);

  // The process survived and still serves.
  assert.ok(stillAlive, `server exited: ${JSON.stringify({ code: server.proc.exitCode, signal: server.proc.signalCode })}`);
  const fresh = await connectClient(["websocket"]);
  fresh.close();
  await api.getStats({});

  // Legitimate traffic.
  assert.deepEqual(pubErrors, [], "publishes failed");
  assert.ok(ticksSent >= (ATTACK_MS / TICK_MS) * 0.5, `only ${ticksSent} ticks published`);
  for (const c of legit) {
    assert.deepEqual(
      c.disconnects,
      [],
      `client ${c.i} (${c.transports}, sid ${c.engineId}) disconnected: ${c.disconnects[0]}; the server's reason: ${disconnected.get(c.id)}`,
    );
    assert.equal(disconnected.get(c.id), undefined, `server disconnected client ${c.i}`);
    assert.deepEqual(c.ticks, Array.from({ length: ticksSent }, (_, k) => k), `client ${c.i} (${c.transports}): every tick, in order`);
    assert.deepEqual(
      c.blobs,
      Array.from({ length: c.wantsBlobs ? blobsSent : 0 }, (_, k) => [k, BLOB_BYTES]),
      `client ${c.i} (${c.transports}): every blob, in order`,
    );
  }
  assert.deepEqual(reconnects.failures, [], "reconnects failed");
  assert.ok(reconnects.tried >= ATTACK_MS / RECONNECT_EVERY_MS / 2, `only ${reconnects.tried} reconnects`);

  // Memory.
  assert.ok(rssPeak - rssBefore < RSS_PEAK_BOUND, `RSS peak ${mb(rssPeak)} MB, before ${mb(rssBefore)} MB`);
  assert.ok(rssAfter - rssBefore < RSS_AFTER_BOUND, `RSS after ${mb(rssAfter)} MB, before ${mb(rssBefore)} MB`);

  // The clients that never read were cut off (send queue bound), nobody else.
  assert.ok(disconnected.has(wsNeverReader.id), "the never-reading WebSocket client was disconnected");
  assert.ok(disconnected.has(pollNeverReader.id), "the never-reading polling client was disconnected");

  // Protocol answers for a sample of the bad inputs.
  for (const [name, r] of Object.entries(attack.results)) assert.equal(r.crashed, undefined, `attack ${name} crashed: ${r.crashed}`);
  if (!attack.results.malformedPolling.skipped) {
    const p = attack.results.malformedPolling.samples;
    assert.equal(p["unknown sid GET"], '400 {"code":1,"message":"Session ID unknown"}');
    assert.equal(p["unknown sid POST"], '400 {"code":1,"message":"Session ID unknown"}');
    assert.equal(p["EIO=3"], '400 {"code":5,"message":"Unsupported protocol version"}');
    assert.equal(p["unknown transport"], '400 {"code":0,"message":"Transport unknown"}');
    assert.equal(p["POST handshake"], '400 {"code":2,"message":"Bad handshake method"}');
    // Two GETs at once: one of them (whichever the server saw second) is refused, and the session closed.
    assert.ok(
      [p["duplicate GET (first)"], p["duplicate GET (second)"]].includes('400 {"code":3,"message":"Bad request"}'),
      `duplicate GETs: ${p["duplicate GET (first)"]} / ${p["duplicate GET (second)"]}`,
    );
    assert.equal(p["GET after duplicate"], '400 {"code":1,"message":"Session ID unknown"}');
    assert.equal(p["POST oversize Content-Length"], "413 Payload too large");
    assert.match(p["POST oversize body"], /^(413 |error)/);
    assert.match(p["huge header"], /^431 /);
    assert.equal(p["POST garbage"], '400 {"code":3,"message":"Bad request"}');
    assert.equal(p["huge URL"], "431 Header too large");
    assert.match(p["lying Content-Length"], /^closed/, "a body that never arrives is cut off (bodyTimeout)");
  }
  if (!attack.results.hijack.skipped) {
    const h = attack.results.hijack.samples;
    assert.ok(["closed", "refused 400"].includes(h["legit websocket sid"]), `WebSocket with a legit client's sid: ${h["legit websocket sid"]}`);
    assert.ok(["closed", "refused 400"].includes(h["second WebSocket on upgraded sid"]), `second WebSocket: ${h["second WebSocket on upgraded sid"]}`);
    assert.equal(h["GET on upgraded sid"], '400 {"code":3,"message":"Bad request"}');
  }
  if (!attack.results.bogusHandshakes.skipped) {
    assert.ok(attack.seen["bogus-handshakes"]["429"] > 0, "the single-address handshakes were rate limited");
    assert.equal(attack.results.bogusHandshakes.samples["429"], '{"code":4,"message":"Too many requests"}');
  }
  if (!attack.results.malformedWs.skipped) {
    const w = attack.results.malformedWs.samples;
    for (const name of ["42 broken JSON", "42 deep arrays", "42 deep objects", "invalid UTF-8 text", "text over maxHttpBufferSize", "binary event, 11 attachments", "frame length 2^63-1 promised"]) {
      assert.equal(w[name]?.closed, true, `WebSocket closed after "${name}"`);
    }
  }
  if (!attack.results.badTokens.skipped) {
    const t = attack.results.badTokens;
    assert.equal(t.accepted, 0, "a bad token was accepted");
    assert.deepEqual(t.wrong, [], "bad tokens answered with the wrong code");
    assert.ok(t.controls > 0, "the control token was accepted");
    assert.ok(attack.seen["bad-tokens"]["Invalid authentication token"] > 0);
    assert.ok(attack.seen["bad-tokens"]["Token expired"] > 0);
  }
  if (!attack.results.connectFlood.skipped) {
    // 3000 bad-token CONNECTs per connection: cut off past the budget, at
    // most 25 (burst) + 5/s over the 12 s window answered.
    const cf = attack.results.connectFlood;
    assert.ok(cf.connections > 0, "no CONNECT flood connection was opened");
    assert.equal(cf.closedByServer, cf.connections, `CONNECT floods not all closed: ${JSON.stringify(cf)}`);
    assert.ok(cf.maxAnswers <= 25 + 5 * (ATTACK_MS / 1000), `CONNECT flood answered ${cf.maxAnswers} times`);
  }
  if (!attack.results.flood.skipped) {
    // The flooder is answered "rate-limited"; it is also disconnected (floodDrops) when the
    // server reads it fast enough: not asserted, as a starved Debug+ASan edge may read it slower
    // than the limit's rate. The summary shows how often.
    const f = attack.results.flood;
    assert.ok(f.rateLimitedNotices + f.refusedAcks > 0, `the flooder was not rate limited: ${JSON.stringify(f)}`);
  }
  if (!attack.results.slowloris.skipped) {
    assert.ok(attack.results.slowloris.closedByServer >= 190, `slowloris: ${JSON.stringify(attack.results.slowloris)}`);
  }
  watch.close();
  for (const c of legit) c.socket.close();
});
