// The README's picture of the Admin UI (scripts/admin-ui-screenshot runs this):
//   node admin_ui_screenshot.mjs OUT.png [--page dashboard|servers|sockets]
// Starts nats-server, a broker and 3 edges with "adminUi" (lib/admin_ui.mjs's config), 24
// socket.io-client clients over the edges (a quarter on HTTP long-polling) in a few rooms and
// some traffic through the gRPC API, opens the UI served by edge e1 in headless Chromium,
// logs in, lets the charts fill for a few seconds and writes a screenshot of the page to OUT.
// The UI's web fonts and icon font come from CDNs this machine cannot reach: the picture has
// the fallback font, and no icons unless $SB_MDI_FONT_DIR names an unpacked npm @mdi/font
// (`npm pack @mdi/font && tar xzf mdi-font-*.tgz`: its package/ folder).

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

import { chromium } from "playwright-core";

import { json } from "./lib/api.mjs";
import { ADMIN_PASSWORD, ADMIN_USER, openAdminUi, writeAdminConfigs } from "./lib/admin_ui.mjs";
import { joinByRule } from "./lib/cases.mjs";
import { Clients, startCluster } from "./lib/cluster.mjs";

const PAGES = {
  dashboard: ["#/", "Dashboard"],
  servers: ["#/servers/", "Servers"],
  sockets: ["#/sockets/", "Sockets"],
};
const CLIENTS = 24;
const ROOMS = ["lobby", "sports", "news"];
const FILL_MS = 6_000;

const out = process.argv[2];
const pageArg = process.argv.indexOf("--page");
const which = pageArg > 0 ? process.argv[pageArg + 1] : "dashboard";
if (!out || !PAGES[which]) {
  process.stderr.write("usage: node admin_ui_screenshot.mjs OUT.png [--page dashboard|servers|sockets]\n");
  process.exit(2);
}

const configs = writeAdminConfigs();
let cluster;
let browser;
const clients = new Clients();
try {
  cluster = await startCluster({ edges: 3, brokers: 1, config: configs.config });
  browser = await chromium.launch({ executablePath: process.env.SB_CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
  const e1 = cluster.edges[0];
  const ui = await openAdminUi(browser, e1.url, {
    viewport: { width: 1280, height: 800 },
    iconFontDir: process.env.SB_MDI_FONT_DIR || undefined,
  });
  await ui.login(e1.url, ADMIN_USER, ADMIN_PASSWORD);

  // Clients arrive over a few seconds (the connection chart), in rooms, on every edge.
  for (let i = 0; i < CLIENTS; i++) {
    const edge = cluster.edges[i % cluster.edges.length];
    const socket = await clients.connect({
      name: `c${i}`,
      url: edge.url,
      edge: edge.id,
      transport: i % 4 === 3 ? "polling" : "websocket",
    });
    await joinByRule(socket, ROOMS[i % ROOMS.length]);
    await sleep(50);
  }
  // Some traffic (the bytes chart).
  const api = cluster.brokers[0].api;
  for (let i = 0; i < 40; i++) {
    await api.publish({ target: { rooms: [ROOMS[i % ROOMS.length]] }, event: "news", args: [json({ i, text: "x".repeat(200) })] });
  }
  // Two leave (the disconnection bars).
  for (const socket of clients.sockets.slice(0, 2)) socket.disconnect();

  const [hash, title] = PAGES[which];
  await ui.show(hash, title);
  await sleep(FILL_MS);
  await ui.show("#/servers/", "Servers");
  await ui.until(async () => {
    const servers = await ui.servers();
    assert.deepEqual(servers.map((s) => [s.serverId, s.status]), [["e1", "Healthy"], ["e2", "Healthy"], ["e3", "Healthy"]]);
  });
  await ui.show(hash, title);
  await sleep(1_000); // the view's transition and charts' animation
  mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
  await ui.screenshot(path.resolve(out));
  process.stdout.write(`${path.resolve(out)}\n`);
  await ui.close();
} finally {
  clients.closeAll();
  if (browser) await browser.close();
  if (cluster) await cluster.stop();
  configs.cleanup();
}
