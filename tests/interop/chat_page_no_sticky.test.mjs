// The chat page in a real browser behind a load balancer with no affinity (issue 16): headless
// Chromium (Debian's /usr/bin/chromium, driven by playwright-core) loads the page through
// lib/rr_proxy.mjs, a per-request round-robin HTTP + WebSocket proxy, in front of a cluster
// (nats-server, a broker, 3 edges serving the page, ping interval 1.5 s) with the C++ chat
// backend. Each page's socket.io client does what a browser does by default: long-polling first
// (handshake, CONNECT, polls), then the upgrade to WebSocket. While a page is on polling, the edge
// that made its handshake is out of the proxy's rotation (see openPage), so its polls are served
// by the owner through the other edges and its upgrade lands elsewhere and moves the session.
// Both pages end up on WebSocket on an edge other than their handshake's, stay connected through
// heartbeats, see each other and exchange messages both ways; the proxy answered no request with
// 400 ("Session ID unknown" is what an edge that does not know the session says).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

import { chromium } from "playwright-core";

import { startChatBackend } from "./lib/chat_backends.mjs";
import { eventually, startCluster } from "./lib/cluster.mjs";
import { startRoundRobinProxy } from "./lib/rr_proxy.mjs";
import { BIN_DIR, SOURCE_DIR } from "./lib/server.mjs";

const CHROMIUM = process.env.SB_CHROMIUM || "/usr/bin/chromium";
const PAGE_DIR = path.join(BIN_DIR, "..", "chat-page");
const PAGE_CONFIG = path.join(PAGE_DIR, "switchboard.json");
const ARTIFACTS = path.join(BIN_DIR, "..", "test-artifacts");
const UI_WAIT_MS = 10_000;
const PING_INTERVAL_MS = 1_500;

let tmp;
let cluster;
let backend;
let proxy;
let browser;

// The build's page config with a short ping interval, so that heartbeats cross edges while a
// client polls; the page of this checkout (as page.test.mjs compares) and the build's bundle,
// named absolutely, since this copy of the config lives elsewhere.
function pageConfig() {
  const config = JSON.parse(readFileSync(PAGE_CONFIG, "utf8"));
  config.page.file = path.join(SOURCE_DIR, "examples", "chat-backend", "page", "index.html");
  config.page.clientFile = path.join(PAGE_DIR, config.page.clientFile);
  config.engine = { ...config.engine, pingInterval: PING_INTERVAL_MS };
  const file = path.join(tmp, "switchboard.json");
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} (Debian chromium, scripts/setup --test)`);
  assert.ok(existsSync(PAGE_CONFIG), `${PAGE_CONFIG} (built by the sb-chat-page target)`);
  tmp = mkdtempSync(path.join(os.tmpdir(), "sb-no-sticky-"));
  cluster = await startCluster({ edges: 3, brokers: 1, config: pageConfig() });
  backend = await startChatBackend("cpp", [cluster.brokers[0].address]);
  proxy = await startRoundRobinProxy(
    cluster.edges.map((e) => {
      const { hostname, port } = new URL(e.url);
      return { host: hostname, port: Number(port) };
    }),
  );
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});

after(async () => {
  if (browser) await browser.close();
  if (proxy) await proxy.close();
  if (backend) await backend.stop();
  if (cluster) await cluster.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/**
 * Opens the page through the proxy, and has the page's session served by edges that do not own
 * it until it is on WebSocket: its Engine.IO handshake is let through (Playwright's route.fetch,
 * through the proxy), the edge its sid names is taken out of the proxy's rotation (as a balancer's
 * health check may at any moment), and only then does the page get the handshake's answer. So its
 * CONNECT, its polls and its upgrade all land on the other edges: the polls are served by the
 * owner through the bus, and the upgrade moves the session. connectAndJoin() puts the edge back.
 *
 * Records what the browser did on the Engine.IO path: `polls` (long-polling requests), `sockets`
 * (WebSocket URLs), `refused` (its responses >= 400, with their bodies; the browser's own
 * /favicon.ico is no business of the test), and `sid` and `owner` (the handshake's edge).
 */
async function openPage(name) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(UI_WAIT_MS);
  const seen = { name, polls: 0, sockets: [], refused: [], sid: null, owner: -1 };
  page.on("pageerror", (err) => process.stderr.write(`[page ${name}] ${err}\n`));
  page.on("request", (req) => {
    if (/\/socket\.io\/\?.*transport=polling/.test(req.url())) seen.polls++;
  });
  page.on("response", async (res) => {
    if (res.status() < 400 || !res.url().includes("/socket.io/")) return;
    const body = await res.text().catch(() => "");
    seen.refused.push(`${res.request().method()} ${res.url()} -> ${res.status()} ${body}`);
  });
  page.on("websocket", (ws) => seen.sockets.push(ws.url()));
  const isHandshake = (url) =>
    url.pathname === "/socket.io/" && url.searchParams.get("transport") === "polling" && !url.searchParams.has("sid");
  await page.route(isHandshake, async (route) => {
    if (seen.sid !== null) return route.continue(); // a reconnect: as it comes
    const response = await route.fetch();
    const body = await response.text();
    if (response.status() === 200) {
      seen.sid = JSON.parse(body.slice(body.indexOf("{"))).sid;
      seen.owner = cluster.edges.findIndex((e) => seen.sid.startsWith(`${e.id}.`));
      if (seen.owner >= 0) proxy.setDown(seen.owner, true);
    }
    await route.fulfill({ response, body });
  });
  await page.goto(`${proxy.url}/`);
  return { context, page, seen };
}

// What the proxy and the browser saw, for failure messages.
function report(...pages) {
  const lines = [`proxy: ${JSON.stringify(proxy.stats)}`];
  for (const { seen } of pages) {
    lines.push(`${seen.name}: sid ${seen.sid}, ${seen.polls} polls, websockets ${JSON.stringify(seen.sockets)}`);
    for (const r of seen.refused.slice(0, 5)) lines.push(`  ${r}`);
  }
  return lines.join("\n");
}

/** Waits for the page to connect, joins the chat as `name`, waits for WebSocket. */
async function connectAndJoin(p, name) {
  try {
    await p.page.locator("#status.connected").waitFor();
    assert.ok(p.seen.owner >= 0, `the sid ${p.seen.sid} names one of the edges ${cluster.edgeIds()}`);
    await p.page.fill("#name", name);
    await p.page.click("#join-form button");
    await p.page.locator("#message-form").waitFor({ state: "visible" });
    await p.page.waitForFunction(() => socket.io.engine?.transport?.name === "websocket", null, { timeout: UI_WAIT_MS });
  } catch (err) {
    err.message += `\n${report(p)}`;
    throw err;
  } finally {
    if (p.seen.owner >= 0) proxy.setDown(p.seen.owner, false);
  }
  // Every disconnect from now on, as the page's client reports it.
  await p.page.evaluate(() => {
    window.disconnects = [];
    socket.on("disconnect", (reason) => window.disconnects.push(reason));
  });
}

async function transportOf(page) {
  return page.evaluate(() => socket.io.engine?.transport?.name);
}

async function waitForUsers(page, want) {
  await page.waitForFunction(
    (names) => JSON.stringify([...document.querySelectorAll("#users li")].map((li) => li.textContent)) ===
      JSON.stringify(names),
    want,
    { timeout: UI_WAIT_MS },
  );
}

test("two browsers behind a round-robin balancer: polling, then WebSocket, chatting both ways", async () => {
  const alice = await openPage("alice");
  let bob;
  try {
    await connectAndJoin(alice, "alice");
    bob = await openPage("bob");
    await connectAndJoin(bob, "bob");

    // Polling first (served for the page by edges that do not own its session), then the upgrade
    // of that session (a WebSocket with its sid) on another edge: the session moved there, under
    // the same socket id, and the broker knows it there.
    for (const p of [alice, bob]) {
      assert.equal(await transportOf(p.page), "websocket");
      assert.ok(p.seen.polls >= 2, `${p.seen.name}: long-polling requests before the upgrade\n${report(p)}`);
      assert.equal(p.seen.sockets.length, 1, `${p.seen.name}: one WebSocket\n${report(p)}`);
      const ws = new URL(p.seen.sockets[0]);
      assert.equal(ws.searchParams.get("transport"), "websocket");
      assert.equal(ws.searchParams.get("sid"), p.seen.sid, "an upgrade of the polling session");
      const id = await p.page.evaluate(() => socket.id);
      await eventually(
        async () => {
          const sockets = await cluster.brokers[0].api.listAllSockets({});
          const info = sockets.find((s) => s.id === id);
          assert.ok(info, `socket ${id} listed by the broker: ${JSON.stringify(sockets)}`);
          assert.notEqual(info.edge_id, cluster.edges[p.seen.owner].id, "the session moved off its handshake edge");
          assert.equal(info.transport, "TRANSPORT_WEBSOCKET");
        },
        { what: `${p.seen.name}'s socket in the broker's index`, timeoutMs: UI_WAIT_MS },
      );
    }
    // The proxy sent requests and upgrades to every edge: nothing kept a session on one.
    assert.ok(proxy.stats.upgrades >= 2, report(alice, bob));
    assert.ok(proxy.stats.perUpstream.every((n) => n > 0), `every edge got requests\n${report(alice, bob)}`);

    await waitForUsers(alice.page, ["alice", "bob"]);
    await waitForUsers(bob.page, ["alice", "bob"]);
    await alice.page.locator("#messages li.notice", { hasText: "bob joined the chat" }).waitFor();

    await alice.page.fill("#message", "hi bob");
    await alice.page.press("#message", "Enter");
    await bob.page.locator("#messages li", { hasText: "alice: hi bob" }).waitFor();
    await bob.page.fill("#message", "hello alice");
    await bob.page.press("#message", "Enter");
    await alice.page.locator("#messages li", { hasText: "bob: hello alice" }).waitFor();

    // Heartbeats, wherever each session now lives: three ping intervals later both are still on
    // the same connection, and still chatting.
    await sleep(3 * PING_INTERVAL_MS);
    for (const p of [alice, bob]) {
      assert.deepEqual(await p.page.evaluate(() => window.disconnects), [], `${p.seen.name} disconnected`);
      assert.equal(await transportOf(p.page), "websocket");
    }
    await alice.page.fill("#message", "still here?");
    await alice.page.press("#message", "Enter");
    await bob.page.locator("#messages li", { hasText: "alice: still here?" }).waitFor();
    await bob.page.fill("#message", "yes");
    await bob.page.press("#message", "Enter");
    await alice.page.locator("#messages li", { hasText: "bob: yes" }).waitFor();

    mkdirSync(ARTIFACTS, { recursive: true });
    await alice.page.screenshot({ path: path.join(ARTIFACTS, "chat_page_no_sticky.png") });

    for (const p of [alice, bob]) assert.deepEqual(p.seen.refused, [], `${p.seen.name}: refused requests`);
    assert.equal(proxy.stats.byStatus[400] ?? 0, 0, `HTTP 400 at the proxy\n${report(alice, bob)}`);
    for (const status of Object.keys(proxy.stats.byStatus)) {
      assert.ok(Number(status) < 500, `HTTP ${status} at the proxy\n${report(alice, bob)}`);
    }
  } finally {
    await alice.context.close();
    await bob?.context.close();
  }
});
