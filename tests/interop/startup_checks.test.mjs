// What `switchboard` says at start about where it listens:
// * no `engine.cors.origins` on a `--listen` address that is not loopback: a warning (every Origin
//   is accepted, as by the reference server, so any web page can connect its visitors);
// * a port that is taken (the admin port 9464 of a second process on one host, as the README's
//   cluster once did): exit 1 with an error that names the flag to change;
// * connection state recovery on a NATS without JetStream: exit 1 saying how to fix it.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

import { startNats } from "./lib/cluster.mjs";
import { BIN_DIR } from "./lib/server.mjs";
import { WAIT_MS } from "./lib/wait.mjs";

const CORS_WARNING = /no engine\.cors\.origins/;

let tmp;
let taken;  // a listening socket on 127.0.0.1 whose port the switchboard under test must not get
let nats;

before(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), "sb-startup-"));
  taken = net.createServer();
  await new Promise((resolve) => taken.listen(0, "127.0.0.1", resolve));
});

after(async () => {
  taken?.close();
  await nats?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

// Runs switchboard with `args` until it is ready ("listening on" or, for a broker, "admin on" on
// stdout; then SIGTERM) or exits by itself; resolves with its exit and all its output.
function run(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(path.join(BIN_DIR, "switchboard"), args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let ready = false;
    const killer = setTimeout(() => child.kill("SIGKILL"), WAIT_MS * 2);
    child.stdout.setEncoding("utf8").on("data", (d) => {
      stdout += d;
      if (!ready && (args[0] === "broker" ? /^admin on /m : /listening on /).test(stdout)) {
        ready = true;
        child.kill("SIGTERM");
      }
    });
    child.stderr.setEncoding("utf8").on("data", (d) => (stderr += d));
    child.once("error", reject);
    child.once("close", (code, signal) => {
      clearTimeout(killer);
      process.stderr.write(`[switchboard ${args.join(" ")}]\n${stdout}${stderr}`);
      resolve({ code, signal, ready, stdout, stderr });
    });
  });
}

const free = ["--admin-listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0", "--drain-window-ms", "0"];

test("no origin list on a non-loopback --listen: a warning at start", async () => {
  const result = await run(["standalone", "--listen", "0.0.0.0:0", ...free]);
  assert.ok(result.ready, "it started");
  assert.match(result.stderr, CORS_WARNING);
});

test("no origin list on loopback: no warning", async () => {
  const result = await run(["standalone", "--listen", "127.0.0.1:0", ...free]);
  assert.ok(result.ready, "it started");
  assert.doesNotMatch(result.stderr, CORS_WARNING);
});

test("an origin list on a non-loopback --listen: no warning", async () => {
  const config = path.join(tmp, "origins.json");
  writeFileSync(config, JSON.stringify({ engine: { cors: { origins: ["https://chat.example.com"] } } }));
  const result = await run(["standalone", "--config", config, "--listen", "0.0.0.0:0", ...free]);
  assert.ok(result.ready, "it started");
  assert.doesNotMatch(result.stderr, CORS_WARNING);
});

// Each flag's port taken in turn; the others free.
for (const flag of ["--admin-listen", "--listen", "--grpc-listen"]) {
  test(`standalone: a taken ${flag} port is an error that names ${flag}`, async () => {
    const address = `127.0.0.1:${taken.address().port}`;
    const args = ["standalone", "--listen", "127.0.0.1:0", ...free];
    const at = flag === "--listen" ? 2 : args.indexOf(flag) + 1;
    args[at] = address;
    const result = await run(args);
    assert.equal(result.code, 1, "exit status 1");
    assert.ok(result.stderr.includes(`${flag}: cannot listen on ${address}`), "the error names the flag");
    assert.match(result.stderr, new RegExp(`pass ${flag} HOST:PORT`));
  });
}

test("a broker and an edge whose admin port is taken: exit 1 naming --admin-listen", async () => {
  nats = await startNats();
  const port = taken.address().port;
  // The README's cluster once started every process on the default 127.0.0.1:9464.
  const broker = await run(["broker", "--nats", nats.url, "--grpc-listen", "127.0.0.1:0", "--admin-listen", `127.0.0.1:${port}`]);
  assert.equal(broker.code, 1);
  assert.match(broker.stderr, /--admin-listen: cannot listen on 127\.0\.0\.1:\d+: Address already in use/);
  const edge = await run(["edge", "--nats", nats.url, "--listen", "127.0.0.1:0", "--admin-listen", `127.0.0.1:${port}`]);
  assert.equal(edge.code, 1);
  assert.match(edge.stderr, /--admin-listen: cannot listen on 127\.0\.0\.1:\d+: Address already in use/);
});

test("an edge with connectionStateRecovery on a NATS without JetStream: exit 1 saying so", async () => {
  nats ??= await startNats();  // plain nats-server: no -js
  const config = path.join(tmp, "recovery.json");
  writeFileSync(config, JSON.stringify({ namespaces: { "/": { connectionStateRecovery: {} } } }));
  const edge = await run(["edge", "--nats", nats.url, "--config", config, "--listen", "127.0.0.1:0", ...free]);
  assert.equal(edge.code, 1, "exit status 1");
  assert.equal(edge.ready, false, "it never listened");
  assert.match(edge.stderr, /connection state recovery needs JetStream: .*has no JetStream: start nats-server with -js/);
  // Without recovery the same edge starts (core NATS is enough).
  const plain = await run(["edge", "--nats", nats.url, "--listen", "127.0.0.1:0", ...free]);
  assert.ok(plain.ready, "an edge without recovery starts");
});
