// Helpers for the Admin UI tests (admin_ui.test.mjs) and the README screenshot
// (admin_ui_screenshot.mjs): the edges' configs with "adminUi", a protocol-level
// admin client (socket.io-client on /admin, as the UI connects), and the served
// UI (@socket.io/admin-ui 0.5.1's ui/dist) driven in headless Chromium.
//
//   const { config, readonlyConfig, cleanup } = writeAdminConfigs();
//   const admin = await connectAdmin(edgeUrl, { username: ADMIN_USER, password: ADMIN_PASSWORD });
//   const ui = await openAdminUi(browser, edgeUrl);  await ui.login(edgeUrl, ADMIN_USER, ADMIN_PASSWORD);

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import { io } from "socket.io-client";

import { CONFIG_DIR } from "./cluster.mjs";
import { WAIT_MS, withTimeout } from "./wait.mjs";

export const ADMIN_NSP = "/admin";
export const ADMIN_USER = "admin";
export const ADMIN_PASSWORD = "admin-ui-test-password";
// bcrypt (cost 10) of ADMIN_PASSWORD, made once with Python's crypt (METHOD_BLOWFISH).
export const ADMIN_PASSWORD_HASH = "$2b$10$q5JMK3.rdmibtRCKFytOKO0NbnvJR.lA8HcRtJ2iw8vgfBjE9SBDi";
export const UI_PATH = "/admin-ui/";

// The features the reference announces when actions are allowed (lib/index.ts).
export const ACTION_FEATURES = ["EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT"];

/**
 * Writes two edge configs to a temporary folder: the cluster tests' "/" namespace (its
 * join-room rule, user ids from the CONNECT auth) plus "adminUi" in development mode, and the
 * same read-only. (cluster.json's own "/admin" namespace is left out: it is the UI's.)
 * Returns { config, readonlyConfig, cleanup() }.
 */
export function writeAdminConfigs() {
  const base = JSON.parse(readFileSync(path.join(CONFIG_DIR, "cluster.json"), "utf8"));
  const adminUi = {
    namespace: ADMIN_NSP,
    auth: { username: ADMIN_USER, passwordHash: ADMIN_PASSWORD_HASH },
    mode: "development",
    uiPath: UI_PATH,
  };
  const make = (extra) => ({
    logLevel: base.logLevel,
    engine: base.engine,
    namespaces: { "/": base.namespaces["/"] },
    adminUi: { ...adminUi, ...extra },
  });
  const dir = mkdtempSync(path.join(tmpdir(), "sb-admin-ui-"));
  const config = path.join(dir, "admin_ui.json");
  const readonlyConfig = path.join(dir, "admin_ui_readonly.json");
  writeFileSync(config, JSON.stringify(make({}), null, 2));
  writeFileSync(readonlyConfig, JSON.stringify(make({ readonly: true }), null, 2));
  return { config, readonlyConfig, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

// ------------------------------------------------------------ protocol level

/**
 * An admin socket as the UI makes it (socket.io-client on `url` + /admin with `auth`), not
 * yet connected: every event it gets is recorded from the start in `socket.got`
 * (Map event → [args, ...]), with `socket.gotAt` (event → [ms, ...]).
 */
export function adminSocket(url, auth, { transports = ["websocket"] } = {}) {
  const socket = io(url + ADMIN_NSP, { forceNew: true, reconnection: false, transports, auth, timeout: WAIT_MS });
  socket.got = new Map();
  socket.gotAt = new Map();
  socket.onAny((event, ...args) => {
    if (!socket.got.has(event)) {
      socket.got.set(event, []);
      socket.gotAt.set(event, []);
    }
    socket.got.get(event).push(args);
    socket.gotAt.get(event).push(Date.now());
  });
  return socket;
}

/** Resolves once `socket` is connected; rejects with the connect_error's message. */
export function connected(socket, what = "admin socket") {
  return withTimeout(
    new Promise((resolve, reject) => {
      if (socket.connected) return resolve();
      socket.once("connect", resolve);
      socket.once("connect_error", (err) => reject(new Error(`${what}: connect_error: ${err.message}`)));
    }),
    WAIT_MS,
    `${what} to connect`,
  );
}

/** Resolves with the connect_error of `socket` (an Error); rejects if it connects instead. */
export function connectError(socket, what = "admin socket") {
  return withTimeout(
    new Promise((resolve, reject) => {
      socket.once("connect", () => reject(new Error(`${what}: connected, expected a connect_error`)));
      socket.once("connect_error", resolve);
    }),
    WAIT_MS,
    `${what}'s connect_error`,
  );
}

/** A connected admin socket (see adminSocket). */
export async function connectAdmin(url, auth, options) {
  const socket = adminSocket(url, auth, options);
  try {
    await connected(socket);
  } catch (err) {
    socket.close();
    throw err;
  }
  return socket;
}

/**
 * Resolves with the first recorded args of `event` at `socket` (see adminSocket) that
 * `predicate` accepts, including those already received; rejects after `ms` (`what` names
 * the socket in the error).
 */
export async function nextEvent(socket, event, predicate = () => true, { ms = WAIT_MS, what = "admin socket" } = {}) {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = (socket.got.get(event) ?? []).find((args) => predicate(...args));
    if (found) return found;
    if (Date.now() > deadline) {
      const seen = [...socket.got.keys()].map((e) => `${e}×${socket.got.get(e).length}`).join(", ");
      const these = JSON.stringify((socket.got.get(event) ?? []).slice(-5));
      throw new Error(`${what}: no matching "${event}" within ${ms} ms (events seen: ${seen || "none"}; the last "${event}": ${these})`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The latest server_stats of each server at `socket`: Map serverId → stats. */
export function latestStats(socket) {
  const latest = new Map();
  for (const [stats] of socket.got.get("server_stats") ?? []) latest.set(stats.serverId, stats);
  return latest;
}

// ------------------------------------------------------------------- browser

const UNREACHABLE = /fonts\.googleapis\.com|cdn\.jsdelivr\.net/;
export const UI_WAIT_MS = 10_000;

const MDI_CDN = /^https:\/\/cdn\.jsdelivr\.net\/npm\/@mdi\/font@[^/]+\/((css|fonts)\/[\w.-]+)/;

/**
 * Opens the served UI of the edge at `edgeUrl` in a new context of `browser` (playwright).
 * The UI's index.html loads Roboto and the Material Design icon font from CDNs this machine
 * cannot reach: those requests are failed at once (the UI works; its icons are missing), or,
 * with `iconFontDir` (an unpacked npm @mdi/font), the icon font is answered from there.
 * Returns an object of helpers around `page`.
 */
export async function openAdminUi(browser, edgeUrl, { viewport = { width: 1400, height: 900 }, name = "ui", iconFontDir } = {}) {
  const context = await browser.newContext({ viewport });
  await context.route(UNREACHABLE, (route) => {
    const mdi = iconFontDir && MDI_CDN.exec(route.request().url());
    if (mdi) return route.fulfill({ path: path.join(iconFontDir, mdi[1]) });
    return route.abort();
  });
  const page = await context.newPage();
  page.setDefaultTimeout(UI_WAIT_MS);
  page.on("pageerror", (err) => process.stderr.write(`[page ${name}] ${err}\n`));
  const response = await page.goto(`${edgeUrl}${UI_PATH}`);
  assert.equal(response.status(), 200, `GET ${edgeUrl}${UI_PATH}`);
  const dialog = page.locator(".v-dialog--active");

  const ui = {
    context,
    page,
    dialog,

    /** Fills the connection modal and submits it. */
    async submitLogin(serverUrl, username, password) {
      await dialog.waitFor();
      await dialog.getByLabel("Server URL").fill(serverUrl);
      await dialog.getByLabel("Username").fill(username);
      await dialog.getByLabel("Password").fill(password);
      await dialog.getByRole("button", { name: "Connect" }).click();
    },

    /** Logs in; resolves once the modal is gone and the app bar says connected. */
    async login(serverUrl, username, password) {
      await ui.submitLogin(serverUrl, username, password);
      await dialog.waitFor({ state: "hidden" });
      await page.locator("header .v-chip:visible", { hasText: /^\s*connected\s*$/i }).waitFor();
    },

    /**
     * Shows the view at `hash` (e.g. "#/servers/") and waits until it alone is on screen
     * (its breadcrumbs read `title`; views slide in and out).
     */
    async show(hash, title) {
      await page.evaluate((h) => {
        window.location.hash = h;
      }, hash);
      await ui.waitForView(title);
    },

    async waitForView(title) {
      await page.waitForFunction(
        (t) => {
          const crumbs = document.querySelectorAll("main .v-breadcrumbs");
          return crumbs.length === 1 && crumbs[0].textContent.replace(/\s+/g, " ").trim() === t;
        },
        title,
        { timeout: UI_WAIT_MS },
      );
    },

    /** The rows of the one data table of the current view, as arrays of cell texts. */
    async tableRows(scope = page.locator("main")) {
      return scope.locator(".v-data-table tbody tr:not(.v-data-table__empty-wrapper)").evaluateAll((rows) =>
        rows.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent.trim())),
      );
    },

    /**
     * The Servers view's rows: { serverId, hostname, pid, uptime, clientsCount, lastPing, status }
     * (status: "Healthy" | "Unhealthy").
     */
    async servers() {
      const rows = await ui.tableRows();
      return rows.map(([serverId, hostname, pid, uptime, clientsCount, lastPing, status]) => ({
        serverId,
        hostname,
        pid: Number(pid),
        uptime,
        clientsCount: Number(clientsCount),
        lastPing,
        status,
      }));
    },

    /** The Sockets view's rows: { id, address, transport }. */
    async sockets() {
      const rows = await ui.tableRows();
      return rows.map(([id, address, transport]) => ({ id, address, transport }));
    },

    /** Polls `fn` (an async assertion) until it passes, for at most `ms`; resolves with its value. */
    async until(fn, ms = UI_WAIT_MS, what = "the UI") {
      const deadline = Date.now() + ms;
      for (;;) {
        try {
          return await fn();
        } catch (err) {
          if (Date.now() > deadline) {
            err.message = `${what}: still failing after ${ms} ms: ${err.message}`;
            throw err;
          }
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    },

    /** The session id the UI keeps (its localStorage), as the server sent it. */
    sessionId() {
      return page.evaluate(() => window.localStorage.getItem("session_id"));
    },

    async screenshot(file) {
      await page.screenshot({ path: file });
      return file;
    },

    close() {
      return context.close();
    },
  };
  return ui;
}
