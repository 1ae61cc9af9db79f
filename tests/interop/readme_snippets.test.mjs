// The README's "publishing in a few lines" snippets (section "The chat as a backend") run as
// written against `switchboard standalone`, with only the API address replaced: the Python one
// (Debian's python3-grpcio, stubs made with the README's grpc_tools.protoc command) and the Node
// one (@grpc/grpc-js). An official socket.io-client must receive what each publishes.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

import { io } from "socket.io-client";

import { SOURCE_DIR, startServer } from "./lib/server.mjs";
import { WAIT_MS, withTimeout } from "./lib/wait.mjs";

const PYTHON = process.env.SB_PYTHON || "/usr/bin/python3";
const README_ADDRESS = "127.0.0.1:50051";

let server;
let client;
let tmp;
const received = [];

// The fenced block of `lang` in the README section that starts with `heading`.
function snippet(lang, heading = "## The chat as a backend") {
  const readme = readFileSync(path.join(SOURCE_DIR, "README.md"), "utf8");
  const start = readme.indexOf(heading);
  assert.ok(start >= 0, `README has "${heading}"`);
  const end = readme.indexOf("\n## ", start + heading.length);
  const section = readme.slice(start, end < 0 ? undefined : end);
  const match = new RegExp("```" + lang + "\\n([\\s\\S]*?)```").exec(section);
  assert.ok(match, `a ${lang} block in "${heading}"`);
  assert.ok(match[1].includes(README_ADDRESS), `the ${lang} snippet talks to ${README_ADDRESS}`);
  return match[1].replaceAll(README_ADDRESS, server.grpcAddress);
}

// Runs a program to its end (at most WAIT_MS * 2); rejects unless it exits 0.
function run(command, args, options) {
  return withTimeout(
    new Promise((resolve, reject) => {
      const child = spawn(command, args, { ...options, stdio: ["ignore", "pipe", "pipe"] });
      let output = "";
      child.stdout.on("data", (d) => (output += d));
      child.stderr.on("data", (d) => (output += d));
      const timer = setTimeout(() => child.kill("SIGKILL"), WAIT_MS * 2 - 500);
      child.on("exit", (code, signal) => {
        clearTimeout(timer);
        if (code === 0) resolve(output);
        else reject(new Error(`${command} exited ${code ?? signal}: ${output}`));
      });
    }),
    WAIT_MS * 2,
    command,
  );
}

async function nextMessage(count) {
  const deadline = Date.now() + WAIT_MS;
  while (received.length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(received.length, count, "the client received the published chat-message");
  return received[count - 1];
}

before(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), "sb-readme-"));
  server = await startServer(
    "switchboard",
    ["standalone", "--config", path.join(SOURCE_DIR, "examples", "chat-backend", "switchboard.json"), "--threads", "2", "--grpc-listen", "127.0.0.1:0"],
    { ready: ["grpc", "http"] },
  );
  client = io(server.url, { transports: ["websocket"], forceNew: true, reconnection: false });
  client.on("chat-message", (m) => received.push(m));
  await withTimeout(new Promise((resolve) => client.once("connect", resolve)), WAIT_MS, "connect");
});

after(async () => {
  client?.close();
  await server?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test("the Python snippet publishes", async () => {
  const code = snippet("python");
  // The stubs, as its first comment says.
  const protoc = /python3 (-m grpc_tools\.protoc[^\n]*)/.exec(code);
  assert.ok(protoc, "the snippet says how to make the stubs");
  const args = protoc[1].trim().split(/\s+/).map((a) => (a === "proto" ? path.join(SOURCE_DIR, "proto") : a));
  const made = spawnSync(PYTHON, args, { cwd: tmp, encoding: "utf8", timeout: WAIT_MS * 2 });
  assert.equal(made.status, 0, `${PYTHON} ${args.join(" ")}: ${made.stderr}`);
  writeFileSync(path.join(tmp, "snippet.py"), code);
  await run(PYTHON, ["snippet.py"], { cwd: tmp });
  assert.deepEqual(await nextMessage(1), { username: "bot", message: "hi" });
});

test("the Node snippet publishes", async () => {
  writeFileSync(path.join(tmp, "snippet.cjs"), snippet("js"));
  const child = spawn(process.execPath, [path.join(tmp, "snippet.cjs")], {
    cwd: SOURCE_DIR,
    env: { ...process.env, NODE_PATH: path.join(SOURCE_DIR, "tests", "interop", "node_modules") },
    stdio: ["ignore", "inherit", "inherit"],
  });
  try {
    assert.deepEqual(await nextMessage(2), { username: "bot", message: "hi" });
  } finally {
    // The snippet leaves its channel open; it has done its part.
    child.kill("SIGKILL");
  }
});
