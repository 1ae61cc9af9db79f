// The README's shell blocks run as written: read from README.md at test time, run by `sh` from a
// directory laid out as the repository root (build/ is this build), each block alone in a private
// network and PID namespace (`unshare`), since they use fixed ports (4222, 50051, 3001, 9464...)
// that would clash with tests running beside this one, and a PID namespace ends every process a
// block left behind. Every block's processes must be alive a few seconds later and answer:
// `sbctl edges` lists the edges, the admin ports answer, official Socket.IO clients connect to
// each edge and reach each other (cluster) or chat through the backend (chat backend, once with
// each of its three backends: the commented alternatives of the block, uncommented).
//
// A shell block that is not run must be listed in NOT_RUN with the reason.
//
// This file runs twice: ctest starts it (outer: checks the list, then starts itself once per
// block under `unshare`), and the inner run (SB_README_BLOCK set) runs one block.

import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

import { io } from "socket.io-client";

import { eventually } from "./lib/cluster.mjs";
import { httpGet } from "./lib/http.mjs";
import { BIN_DIR, SOURCE_DIR } from "./lib/server.mjs";
import { WAIT_MS, call, withTimeout } from "./lib/wait.mjs";

const THIS_FILE = fileURLToPath(import.meta.url);
const README = readFileSync(path.join(SOURCE_DIR, "README.md"), "utf8");

// Shell blocks not run here, by their first line, and why.
const NOT_RUN = new Map([
  ["scripts/run", "builds the tree; ctest runs inside a build"],
  ["scripts/test", "the whole test suite, this test included"],
  ["node examples/chat-backend/bench_latency.mjs", "a benchmark: measured, not tested"],
  ["head -c 32 /dev/urandom", "needs a NATS server at 10.0.0.5 and the reader's certificates"],
]);

// Every ```sh block of the README: { section, code }.
function shellBlocks() {
  const blocks = [];
  let section = "";
  let fence = null;
  let code = [];
  for (const line of README.split("\n")) {
    if (fence === null) {
      if (line.startsWith("```")) {
        fence = line.slice(3).trim();
        code = [];
      } else if (/^#{1,6} /.test(line)) {
        section = line.replace(/^#+ /, "");
      }
    } else if (line.startsWith("```")) {
      if (fence === "sh") blocks.push({ section, code: code.join("\n") + "\n" });
      fence = null;
    } else {
      code.push(line);
    }
  }
  return blocks;
}

const firstLine = (code) => code.split("\n")[0];
const notRun = (block) => [...NOT_RUN.keys()].find((start) => firstLine(block.code).startsWith(start));

// The blocks run here, by name: { section, code }. The chat backend's block once per backend: its
// commented alternatives ("#   COMMAND") replace the C++ backend's line.
function runnableBlocks() {
  const runs = new Map();
  for (const block of shellBlocks()) {
    if (notRun(block)) continue;
    if (block.code.includes("build/bin/sb-chat-backend")) {
      const lines = block.code.split("\n");
      const cpp = lines.findIndex((l) => l.startsWith("build/bin/sb-chat-backend"));
      runs.set("chat backend (C++)", block);
      const alternatives = lines.filter((l) => /^#   \S/.test(l)).map((l) => l.slice(4));
      assert.ok(alternatives.length >= 2, "the chat backend block names its Python and Node backends");
      for (const alternative of alternatives) {
        const kind = alternative.includes("python") ? "Python" : alternative.includes("node") ? "Node" : alternative;
        const variant = [...lines];
        variant[cpp] = alternative;
        runs.set(`chat backend (${kind})`, { section: block.section, code: variant.join("\n") });
      }
    } else {
      runs.set(block.section, block);
    }
  }
  return runs;
}

// ---------------------------------------------------------------------------------------- outer

function findTool(name) {
  const dirs = [...(process.env.PATH || "").split(":"), "/usr/sbin", "/sbin", "/usr/bin", "/bin"];
  return dirs.map((d) => path.join(d, name)).find((p) => p.startsWith("/") && existsSync(p));
}

// Runs this file for block `name` in new network, PID and mount namespaces; resolves with its
// exit status. Its output goes to stderr (stdout carries this run's own test report).
function runInNamespace(name) {
  const unshare = findTool("unshare");
  const ip = findTool("ip");
  assert.ok(unshare && ip, "unshare (util-linux) and ip (iproute2) are installed (scripts/setup --test)");
  const userns = process.getuid() === 0 ? [] : ["--map-root-user"];
  const args = [
    ...userns, "--net", "--pid", "--fork", "--kill-child", "--mount-proc", "--",
    "sh", "-c", '"$0" link set lo up && exec "$1" --test "$2"', ip, process.execPath, THIS_FILE,
  ];
  const env = { ...process.env, SB_README_BLOCK: name };
  delete env.NODE_TEST_CONTEXT;  // set by the outer test runner; the inner run is a run of its own
  return new Promise((resolve, reject) => {
    const child = spawn(unshare, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.on("data", (d) => process.stderr.write(d));
    child.stderr.on("data", (d) => process.stderr.write(d));
    // --kill-child: when unshare dies, its child (PID 1 of the namespace) and so every process
    // of the block dies too.
    const timer = setTimeout(() => child.kill("SIGKILL"), 100_000);
    child.once("error", reject);
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? signal);
    });
  });
}

if (!process.env.SB_README_BLOCK) {
  test("every shell block of the README is run here or says why not", () => {
    const blocks = shellBlocks();
    assert.ok(blocks.length >= 5, "the README has its shell blocks");
    const runs = runnableBlocks();
    for (const block of blocks) {
      if (notRun(block)) continue;
      assert.ok(
        [...runs.values()].some((r) => r.code === block.code),
        `README "${block.section}" block starting "${firstLine(block.code)}": run it here or add it to NOT_RUN`,
      );
    }
    assert.deepEqual([...runs.keys()].sort(), [
      "Look at it: the Socket.IO Admin UI", "Run a cluster", "chat backend (C++)", "chat backend (Node)",
      "chat backend (Python)",
    ]);
  });

  // scripts/run builds only what it runs, and what the README's first sections run with it.
  test("scripts/run builds every binary the README runs before \"Test it\"", () => {
    const script = readFileSync(path.join(SOURCE_DIR, "scripts", "run"), "utf8");
    const targets = new Set([...script.matchAll(/--target ([\w -]+)/g)].flatMap((m) => m[1].trim().split(/\s+/)));
    const early = README.slice(0, README.indexOf("\n## Test it"));
    const used = new Set([...early.matchAll(/build\/bin\/([\w-]+)/g)].map((m) => m[1]));
    if (early.includes("build/chat-page/")) used.add("sb-chat-page");
    if (early.includes("/admin-ui/")) used.add("sb-admin-ui-files");
    assert.ok(used.has("switchboard") && used.has("sbctl"), `the README runs ${[...used]}`);
    for (const target of used) assert.ok(targets.has(target), `scripts/run builds ${target} (it builds ${[...targets]})`);
  });

  for (const name of runnableBlocks().keys()) {
    test(`README shell block "${name}" runs as written`, async () => {
      assert.equal(await runInNamespace(name), 0, `the run of "${name}" in its namespace (log above)`);
    });
  }
}

// ---------------------------------------------------------------------------------------- inner

// The processes of process group `pgid` that have not exited: { pid, argv }.
function groupProcesses(pgid) {
  const found = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");  // state ppid pgrp ...
      if (Number(fields[2]) !== pgid || fields[0] === "Z") continue;
      const argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").filter(Boolean);
      found.push({ pid: Number(entry), argv });
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

// "switchboard edge", "nats-server", "python3", ...: a program by its command line's words.
function signature(words) {
  const program = path.basename(words[0] ?? "");
  return program === "switchboard" ? `${program} ${words[1]}` : program;
}

// The programs a block starts: one per command (continuation lines joined, comments and
// leading VAR=value assignments dropped).
function expectedPrograms(code) {
  return code
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((line) => line.replace(/#.*/, "").replace(/&\s*$/, "").trim())
    .filter(Boolean)
    .map((line) => {
      const words = line.split(/\s+/);
      while (/^[A-Za-z_][A-Za-z0-9_]*=/.test(words[0])) words.shift();
      return signature(words);
    });
}

function flagValues(code, flag) {
  return [...code.matchAll(new RegExp(`${flag} (\\S+)`, "g"))].map((m) => m[1]);
}

// A directory that looks like the repository root, with build/ this build.
function repoRoot() {
  const dir = mkdtempSync(path.join(os.tmpdir(), "sb-readme-shell-"));
  for (const entry of readdirSync(SOURCE_DIR)) {
    if (entry !== "build") symlinkSync(path.join(SOURCE_DIR, entry), path.join(dir, entry));
  }
  symlinkSync(path.dirname(BIN_DIR), path.join(dir, "build"));
  return dir;
}

function sh(command, cwd) {
  return spawnSync("sh", ["-c", command], { cwd, encoding: "utf8", timeout: WAIT_MS * 2 });
}

async function connect(url, sockets) {
  const socket = io(url, { transports: ["websocket"], forceNew: true, reconnection: false, timeout: WAIT_MS });
  sockets.push(socket);
  await withTimeout(
    new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("connect_error", reject);
    }),
    WAIT_MS,
    `connect to ${url}`,
  );
  return socket;
}

if (process.env.SB_README_BLOCK) {
  const name = process.env.SB_README_BLOCK;
  const sockets = [];
  let block;
  let cwd;
  let group = null;

  after(async () => {
    for (const s of sockets) s.close();
    if (group !== null) {
      // The README says: stop them with Ctrl-C. SIGTERM to the whole group, then SIGKILL.
      for (const signal of ["SIGTERM", "SIGKILL"]) {
        try {
          process.kill(-group, signal);
        } catch {
          // none left
        }
        for (let i = 0; i < 40 && groupProcesses(group).length > 0; i++) await sleep(50);
      }
      assert.deepEqual(groupProcesses(group), [], "every process of the block has ended");
    }
    if (cwd) rmSync(cwd, { recursive: true, force: true });
  });

  test(`README shell block "${name}"`, async () => {
    assert.deepEqual(Object.keys(os.networkInterfaces()), ["lo"], "in a private network namespace");
    block = runnableBlocks().get(name);
    assert.ok(block, `a README block "${name}"`);
    cwd = repoRoot();
    process.stderr.write(`--- ${name}:\n${block.code}---\n`);
    const env = { ...process.env };
    delete env.SB_README_BLOCK;
    delete env.NODE_PATH;  // as a reader's shell has it
    // Its own process group (detached), so that the whole group can be stopped.
    const shell = spawn("sh", ["-c", block.code], { cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    group = shell.pid;
    shell.stdout.on("data", (d) => process.stderr.write(d));
    shell.stderr.on("data", (d) => process.stderr.write(d));

    const expected = expectedPrograms(block.code).sort();
    const running = () => {
      const got = groupProcesses(group).filter((p) => p.pid !== group);
      for (const program of new Set(expected)) {
        const want = expected.filter((e) => e === program).length;
        const have = got.filter((p) => signature(p.argv) === program).length;
        assert.ok(have >= want, `${want} × ${program} running (${have}); group: ${JSON.stringify(got.map((p) => p.argv.join(" ")))}`);
      }
      return got.filter((p) => expected.includes(signature(p.argv))).map((p) => p.pid).sort();
    };

    // A few seconds on, every process the block started still runs (a second process on a port
    // that is taken exits at once).
    await sleep(3000);
    running();

    const listens = flagValues(block.code, "--listen");
    const admins = flagValues(block.code, "--admin-listen");
    assert.ok(listens.length >= 1, "the block names its edges' ports");

    // Every admin port answers (its process is up).
    for (const admin of admins) {
      const port = Number(admin.split(":").pop());
      await eventually(async () => assert.equal((await httpGet(port, "/healthz")).status, 200), {
        timeoutMs: 20_000, intervalMs: 200, what: `GET ${admin}/healthz`,
      });
    }

    if (name === "Run a cluster") {
      // As the README says after the block.
      assert.ok(README.includes("Then `build/bin/sbctl edges` lists `edge-1` and `edge-2`, ready."));
      await eventually(
        () => {
          const out = sh("build/bin/sbctl edges", cwd);
          assert.equal(out.status, 0, out.stderr);
          assert.match(out.stdout, /^edge-1\s+ready\b/m);
          assert.match(out.stdout, /^edge-2\s+ready\b/m);
        },
        { timeoutMs: 20_000, intervalMs: 250, what: "sbctl edges lists both edges, ready" },
      );
      // A client on each edge; the chat's "message" rule relays to the namespace, across edges.
      const clients = [];
      for (const listen of listens) clients.push(await connect(`http://${listen}`, sockets));
      const [first, ...others] = clients;
      for (const other of others) {
        const got = [];
        other.on("message", (m) => got.push(m));
        await eventually(
          async () => {
            first.emit("message", { text: `to ${other.io.uri}` });
            await sleep(100);
            assert.ok(got.some((m) => m?.text === `to ${other.io.uri}`), "relayed to the other edge");
          },
          { timeoutMs: 10_000, intervalMs: 100, what: "a message from one edge's client reaches the other's" },
        );
      }
    } else if (name === "Look at it: the Socket.IO Admin UI") {
      // The UI's page, and a login as the README says (admin / change-me): the UI's first events.
      const port = Number(listens[0].split(":").pop());
      const page = await httpGet(port, "/admin-ui/");
      assert.equal(page.status, 200);
      assert.match(page.body, /<title>Socket.IO Admin UI<\/title>/);
      assert.ok(README.includes("as `admin` with the password `change-me`"));
      const admin = io(`http://${listens[0]}/admin`, {
        transports: ["websocket"], forceNew: true, reconnection: false, timeout: WAIT_MS,
        auth: { username: "admin", password: "change-me" },
      });
      sockets.push(admin);
      const config = withTimeout(new Promise((resolve) => admin.once("config", resolve)), WAIT_MS, "config");
      const stats = withTimeout(new Promise((resolve) => admin.once("server_stats", resolve)), WAIT_MS, "server_stats");
      assert.ok((await config).supportedFeatures.includes("JOIN"));
      assert.equal((await stats).serverId, "local");
    } else {
      // The chat page, then two users chatting through the backend.
      const [host, port] = [listens[0].split(":")[0], Number(listens[0].split(":").pop())];
      assert.equal(host, "127.0.0.1");
      const page = await httpGet(port, "/");
      assert.equal(page.status, 200);
      assert.match(page.body, /<html/i);
      const alice = await connect(`http://${listens[0]}`, sockets);
      const bob = await connect(`http://${listens[0]}`, sockets);
      const toBob = [];
      bob.on("chat-message", (m) => toBob.push(m));
      // The backend may still be starting (an ack "no backend" until it watches).
      await eventually(async () => assert.equal((await call(alice, "user-join", "alice"))?.ok, true, "alice joins"), {
        timeoutMs: 30_000, intervalMs: 250, what: "the backend answers user-join",
      });
      assert.equal((await call(bob, "user-join", "bob"))?.ok, true, "bob joins");
      assert.equal((await call(alice, "chat-message", "hello bob"))?.ok, true, "alice's message is taken");
      await eventually(() => assert.ok(toBob.some((m) => m.username === "alice" && m.message === "hello bob")), {
        what: "bob receives alice's message",
      });
    }

    // Still alive a few seconds on, the same processes.
    const before = running();
    await sleep(3000);
    assert.deepEqual(running(), before, "the block's processes are the same, alive");
    assert.equal(shell.exitCode === null || shell.exitCode === 0, true, "the block's shell did not fail");
  });
}
