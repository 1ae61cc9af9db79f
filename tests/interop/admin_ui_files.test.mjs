// The official Admin UI's built files (config "adminUi", admin_ui/ui_files.h) on the real
// `switchboard` binary: by default from build/admin-ui (the sb-admin-ui-files target, the npm
// package pinned in admin_ui/ui/package-lock.json), byte for byte with their types; the bare path
// redirects (the page's URLs are relative); the page's own origin passes an engine.cors allow-list.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

import { BIN_DIR, startServer } from "./lib/server.mjs";

const UI_DIR = path.join(BIN_DIR, "..", "admin-ui");

let tmp;
let server;

before(async () => {
  assert.ok(existsSync(path.join(UI_DIR, "index.html")), `${UI_DIR} (built by the sb-admin-ui-files target)`);
  tmp = mkdtempSync(path.join(os.tmpdir(), "sb-admin-ui-"));
  const config = path.join(tmp, "config.json");
  writeFileSync(
    config,
    JSON.stringify({
      namespaces: { "/": {} },
      engine: { cors: { origins: ["https://elsewhere.example"] } },
      adminUi: { auth: false },
    }),
  );
  server = await startServer("switchboard", ["standalone", "--config", config, "--threads", "2", "--grpc-listen", "127.0.0.1:0"], {
    ready: ["grpc", "http"],
  });
});

after(async () => {
  if (server) await server.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test("the UI's page and every file it loads, byte for byte, with their types", async () => {
  const page = await fetch(server.url + "/admin-ui/");
  assert.equal(page.status, 200);
  assert.equal(page.headers.get("content-type"), "text/html; charset=UTF-8");
  const html = await page.text();
  assert.equal(html, readFileSync(path.join(UI_DIR, "index.html"), "utf8"));
  assert.match(html, /<title>Socket\.IO Admin UI<\/title>/);

  const assets = [...html.matchAll(/(?:src|href)="((?:js|css|img)\/[^"]+|favicon\.png)"/g)].map((m) => m[1]);
  assert.ok(assets.some((a) => /^js\/app\.[0-9a-f]+\.js$/.test(a)), assets.join(" "));
  const types = { js: "text/javascript; charset=UTF-8", css: "text/css; charset=UTF-8", png: "image/png" };
  for (const asset of new Set(assets)) {
    const res = await fetch(new URL(asset, server.url + "/admin-ui/"));
    assert.equal(res.status, 200, asset);
    assert.equal(res.headers.get("content-type"), types[asset.split(".").pop()], asset);
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(readFileSync(path.join(UI_DIR, asset))), asset);
  }
});

test("/admin-ui redirects to /admin-ui/", async () => {
  const res = await fetch(server.url + "/admin-ui", { redirect: "manual" });
  assert.equal(res.status, 302);
  assert.equal(res.headers.get("location"), "/admin-ui/");
  await res.arrayBuffer();
});

test("the page's own origin passes the CORS allow-list; another does not", async () => {
  const handshake = (origin) =>
    fetch(server.url + "/socket.io/?EIO=4&transport=polling", { headers: { origin } });
  const same = await handshake(server.url);
  assert.equal(same.status, 200);
  assert.match(await same.text(), /^0\{"sid"/);
  const listed = await handshake("https://elsewhere.example");
  assert.equal(listed.status, 200);
  await listed.arrayBuffer();
  const other = await handshake("http://evil.example");
  assert.equal(other.status, 403);
  await other.arrayBuffer();
});
