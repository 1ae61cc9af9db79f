// The chat page in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven by
// playwright-core, on a cluster (nats-server, a broker, 2 edges serving the page with
// build/chat-page/switchboard.json) with the C++ chat backend. Two pages, each on its own edge,
// join with names, see each other in the user list, see the typing indicator, exchange
// messages; one closes and the other sees the notice and the new list. Then a page whose edge
// goes away shows that it is reconnecting, and once the edge is back it says so and is in the
// chat again under its name. Screenshots are saved in build/test-artifacts/ (chat_page.png, ...).

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";

import { chromium } from "playwright-core";

import { startChatBackend } from "./lib/chat_backends.mjs";
import { freePort, startCluster } from "./lib/cluster.mjs";
import { BIN_DIR, startServer } from "./lib/server.mjs";

const CHROMIUM = process.env.SB_CHROMIUM || "/usr/bin/chromium";
const PAGE_CONFIG = path.join(BIN_DIR, "..", "chat-page", "switchboard.json");
const ARTIFACTS = path.join(BIN_DIR, "..", "test-artifacts");
const UI_WAIT_MS = 10_000;

let cluster;
let backend;
let browser;

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} (Debian chromium, scripts/setup --test)`);
  assert.ok(existsSync(PAGE_CONFIG), `${PAGE_CONFIG} (built by the sb-chat-page target)`);
  cluster = await startCluster({ edges: 2, brokers: 1, config: PAGE_CONFIG });
  backend = await startChatBackend("cpp", [cluster.brokers[0].address]);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});

after(async () => {
  if (browser) await browser.close();
  if (backend) await backend.stop();
  if (cluster) await cluster.stop();
});

async function openChat(url, name) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(UI_WAIT_MS);
  page.on("pageerror", (err) => process.stderr.write(`[page ${name}] ${err}\n`));
  await page.goto(url);
  await page.locator("#status.connected").waitFor();
  await page.fill("#name", name);
  await page.click("#join-form button");
  await page.locator("#message-form").waitFor({ state: "visible" });
  return { context, page };
}

async function users(page) {
  return page.locator("#users li").allTextContents();
}

async function waitForUsers(page, want) {
  await page.waitForFunction(
    (names) => JSON.stringify([...document.querySelectorAll("#users li")].map((li) => li.textContent)) ===
      JSON.stringify(names),
    want,
    { timeout: UI_WAIT_MS },
  );
}

test("two browsers on two edges chat through the page", async () => {
  const [edgeA, edgeB] = cluster.edges.map((e) => e.url);
  assert.notEqual(edgeA, edgeB);
  const alice = await openChat(`${edgeA}/`, "alice");
  const bob = await openChat(`${edgeB}/`, "bob");

  await waitForUsers(alice.page, ["alice", "bob"]);
  await waitForUsers(bob.page, ["alice", "bob"]);
  await alice.page.locator("#messages li.notice", { hasText: "bob joined the chat" }).waitFor();
  assert.equal(await bob.page.locator("#messages li", { hasText: "bob joined the chat" }).count(), 0);

  // Typing shows at the other page only.
  await bob.page.type("#message", "hello al");
  await alice.page.locator("#typing", { hasText: "bob is typing" }).waitFor();
  assert.equal(await bob.page.locator("#typing").textContent(), "");
  await bob.page.type("#message", "ice");
  await bob.page.click("#message-form button");
  for (const { page } of [alice, bob]) {
    await page.locator("#messages li", { hasText: "bob: hello alice" }).waitFor();
  }
  await alice.page.waitForFunction(() => document.querySelector("#typing").textContent === "");

  await alice.page.fill("#message", "hi bob");
  await alice.page.press("#message", "Enter");
  await bob.page.locator("#messages li", { hasText: "alice: hi bob" }).waitFor();

  mkdirSync(ARTIFACTS, { recursive: true });
  await alice.page.screenshot({ path: path.join(ARTIFACTS, "chat_page.png") });

  // Bob closes his page: alice sees the notice and the new list.
  await bob.context.close();
  await alice.page.locator("#messages li.notice", { hasText: "bob left the chat" }).waitFor();
  await waitForUsers(alice.page, ["alice"]);
  assert.deepEqual(await users(alice.page), ["alice"]);
  await alice.page.screenshot({ path: path.join(ARTIFACTS, "chat_page_after_leave.png") });
  await alice.context.close();
});

test("a page whose edge goes away shows it is reconnecting, and rejoins once it is back", async () => {
  const port = await freePort();
  const startEdge = () =>
    startServer(
      "switchboard",
      ["edge", "--nats", cluster.nats.url, "--edge-id", "e3", "--config", PAGE_CONFIG, "--threads", "1", "--listen", `127.0.0.1:${port}`],
      { name: "edge e3" },
    );
  let edge = await startEdge();
  const watcher = await openChat(`${cluster.edges[0].url}/`, "walter");
  const carol = await openChat(`${edge.url}/`, "carol");
  try {
    await waitForUsers(watcher.page, ["walter", "carol"]);

    await edge.stop(); // SIGTERM: the edge tells its clients to go elsewhere
    edge = null;
    await carol.page.locator("#status.disconnected").waitFor();
    assert.match(await carol.page.locator("#status").textContent(), /reconnect|retrying/);
    await watcher.page.locator("#messages li.notice", { hasText: "carol left the chat" }).waitFor();
    mkdirSync(ARTIFACTS, { recursive: true });
    await carol.page.screenshot({ path: path.join(ARTIFACTS, "chat_page_reconnecting.png") });

    // Back on the same address: the client reconnects by itself (its back-off is at most 5 s).
    for (let attempt = 0; !edge && attempt < 20; attempt++) {
      try {
        edge = await startEdge();
      } catch (err) {
        if (attempt === 19) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    await carol.page.locator("#status.connected").waitFor();
    await carol.page.locator("#messages li.notice", { hasText: "Reconnected" }).waitFor();
    await waitForUsers(carol.page, ["walter", "carol"]);
    await waitForUsers(watcher.page, ["walter", "carol"]);
  } finally {
    await carol.context.close();
    await watcher.context.close();
    if (edge) await edge.stop();
  }
});
