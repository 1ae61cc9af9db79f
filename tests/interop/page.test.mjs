// The web page an edge can serve (config `page`, services/CONFIG.md) on the real `switchboard`
// binary: off unless configured (no page config: 404 while Socket.IO works; the shipped and
// production configs have none), and with build/chat-page/switchboard.json the chat page and the
// official socket.io-client bundle from npm, byte for byte, with their content types, HEAD and
// revalidation; a page at a configured path; paths that would climb out of a folder get 404.
// (The request handling in detail, against the listener alone: tests/edge/http/static_file_test.cc.)

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

import { io } from "socket.io-client";

import { BIN_DIR, SOURCE_DIR, startServer } from "./lib/server.mjs";
import { WAIT_MS, withTimeout } from "./lib/wait.mjs";

const PAGE_DIR = path.join(BIN_DIR, "..", "chat-page");
const PAGE_CONFIG = path.join(PAGE_DIR, "switchboard.json");
const BUNDLE = path.join(PAGE_DIR, "node_modules", "socket.io-client", "dist", "socket.io.min.js");
const INDEX = path.join(SOURCE_DIR, "examples", "chat-backend", "page", "index.html");

const servers = [];
let tmp;

before(() => {
  assert.ok(existsSync(PAGE_CONFIG), `${PAGE_CONFIG} (built by the sb-chat-page target)`);
  tmp = mkdtempSync(path.join(os.tmpdir(), "sb-page-"));
});

after(async () => {
  for (const s of servers) await s.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

async function standalone(config) {
  const server = await startServer("switchboard", ["standalone", "--config", config, "--threads", "2", "--grpc-listen", "127.0.0.1:0"], {
    ready: ["grpc", "http"],
  });
  servers.push(server);
  return server;
}

async function socketIoConnects(url) {
  const socket = io(url, { transports: ["websocket"], forceNew: true, reconnection: false, timeout: WAIT_MS });
  try {
    await withTimeout(
      new Promise((resolve, reject) => {
        socket.once("connect", resolve);
        socket.once("connect_error", reject);
      }),
      WAIT_MS,
      "socket.io connect",
    );
    assert.ok(socket.id);
  } finally {
    socket.close();
  }
}

/** One raw request (the target sent exactly as given); resolves {status, headers, body}. */
function raw(url, requestLine) {
  const { hostname, port } = new URL(url);
  return withTimeout(
    new Promise((resolve, reject) => {
      const socket = net.connect({ host: hostname, port: Number(port) });
      const chunks = [];
      socket.on("data", (c) => chunks.push(c));
      socket.on("error", reject);
      socket.on("close", () => {
        const text = Buffer.concat(chunks).toString("latin1");
        const [head, ...rest] = text.split("\r\n\r\n");
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
        resolve({ status, head, body: rest.join("\r\n\r\n") });
      });
      socket.write(`${requestLine}\r\nHost: ${hostname}\r\nConnection: close\r\n\r\n`);
    }),
    WAIT_MS,
    requestLine,
  );
}

describe("no page configured", () => {
  test("the shipped and production configs have no page", () => {
    const configs = [
      path.join(SOURCE_DIR, "examples", "chat.json"),
      path.join(SOURCE_DIR, "examples", "chat-backend", "switchboard.json"),
      ...readdirSync(path.join(SOURCE_DIR, "tests", "interop", "config")).map((f) =>
        path.join(SOURCE_DIR, "tests", "interop", "config", f),
      ),
    ];
    for (const file of configs) {
      assert.equal(JSON.parse(readFileSync(file, "utf8")).page, undefined, file);
    }
    const helm = path.join(SOURCE_DIR, "helm", "switchboard");
    for (const file of [path.join(helm, "values.yaml"), ...readdirSync(path.join(helm, "examples")).map((f) => path.join(helm, "examples", f))]) {
      assert.doesNotMatch(readFileSync(file, "utf8"), /^\s+page:/m, file);
    }
  });

  test("/ is 404 and Socket.IO works", async () => {
    const server = await standalone(path.join(SOURCE_DIR, "examples", "chat-backend", "switchboard.json"));
    for (const target of ["/", "/socket.io.min.js", "/index.html"]) {
      const res = await fetch(server.url + target);
      assert.equal(res.status, 404, target);
      await res.arrayBuffer();
    }
    assert.equal((await fetch(server.url + "/", { method: "HEAD" })).status, 404);
    await socketIoConnects(server.url);
  });
});

describe("the chat page (build/chat-page/switchboard.json)", () => {
  let server;
  before(async () => {
    server = await standalone(PAGE_CONFIG);
  });

  test("the page and the npm bundle, byte for byte, with their types", async () => {
    const page = await fetch(server.url + "/");
    assert.equal(page.status, 200);
    assert.equal(page.headers.get("content-type"), "text/html; charset=UTF-8");
    assert.equal(page.headers.get("x-content-type-options"), "nosniff");
    assert.equal(await page.text(), readFileSync(INDEX, "utf8"));

    const bundle = await fetch(server.url + "/socket.io.min.js");
    assert.equal(bundle.status, 200);
    assert.equal(bundle.headers.get("content-type"), "text/javascript; charset=UTF-8");
    const bytes = Buffer.from(await bundle.arrayBuffer());
    assert.ok(bytes.equals(readFileSync(BUNDLE)), "the bundle npm installed");
    const lock = JSON.parse(readFileSync(path.join(SOURCE_DIR, "examples", "chat-backend", "page", "package-lock.json"), "utf8"));
    const version = lock.packages["node_modules/socket.io-client"].version;
    assert.match(bytes.subarray(0, 200).toString(), new RegExp(`Socket\\.IO v${version.replaceAll(".", "\\.")}\\b`));
    await socketIoConnects(server.url);
  });

  test("HEAD, and revalidation with the ETag", async () => {
    const get = await fetch(server.url + "/socket.io.min.js");
    const length = (await get.arrayBuffer()).byteLength;
    const head = await fetch(server.url + "/socket.io.min.js", { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(Number(head.headers.get("content-length")), length);
    assert.equal(head.headers.get("etag"), get.headers.get("etag"));
    assert.equal(get.headers.get("cache-control"), "no-cache");
    const again = await fetch(server.url + "/socket.io.min.js", { headers: { "if-none-match": get.headers.get("etag") } });
    assert.equal(again.status, 304);
    assert.equal((await again.arrayBuffer()).byteLength, 0);
    const post = await fetch(server.url + "/", { method: "POST", body: "x" });
    assert.equal(post.status, 405);
    await post.arrayBuffer();
  });

  test("climbing out of a folder or naming a file gets 404", async () => {
    for (const target of [
      "/../index.html",
      "/%2e%2e/index.html",
      "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
      "/../../../../etc/passwd",
      "/etc/passwd",
      "//etc/passwd",
      `/${encodeURIComponent(PAGE_CONFIG)}`,
      `${PAGE_DIR}/index.html`,
      "/index.html",
      "/switchboard.json",
      "/node_modules/socket.io-client/package.json",
      "/x/../socket.io.min.js",
    ]) {
      const res = await raw(server.url, `GET ${target} HTTP/1.1`);
      assert.equal(res.status, 404, `${target}: ${res.head}`);
      assert.doesNotMatch(res.body, /root:|"listen"|<html|Socket\.IO v/i, target);
    }
  });
});

test("a page at a configured path, files relative to the config", async () => {
  writeFileSync(path.join(tmp, "hello.html"), "<!doctype html><p>hello</p>\n");
  writeFileSync(path.join(tmp, "client.js"), "// client\n");
  const file = path.join(tmp, "config.json");
  writeFileSync(
    file,
    JSON.stringify({
      page: { path: "/chat/", file: "hello.html", clientPath: "/assets/sio.js", clientFile: "client.js" },
      namespaces: { "/": {} },
    }),
  );
  const server = await standalone(file);
  const page = await fetch(server.url + "/chat/");
  assert.equal(page.status, 200);
  assert.equal(await page.text(), "<!doctype html><p>hello</p>\n");
  assert.equal(await (await fetch(server.url + "/assets/sio.js")).text(), "// client\n");
  for (const target of ["/", "/chat", "/socket.io.min.js", "/hello.html"]) {
    const res = await fetch(server.url + target);
    assert.equal(res.status, 404, target);
    await res.arrayBuffer();
  }
  await socketIoConnects(server.url);
});
