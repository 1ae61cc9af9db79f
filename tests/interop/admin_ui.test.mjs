// The official Socket.IO Admin UI (@socket.io/admin-ui 0.5.1) against a whole cluster:
// nats-server, a broker and 3 edges with "adminUi" (development mode, a bcrypt login), and
// socket.io-client clients on every edge in different rooms.
//
// 1. Protocol, with socket.io-client on /admin as the UI connects: a wrong login is
//    CONNECT_ERROR "invalid credentials"; a good one gets `session`, `config`, every edge's
//    `server_stats` (client counts right, pid = the edge's) and `all_sockets` (the cluster's
//    sockets with their rooms); the session id logs in on another edge; join / emit / leave /
//    _disconnect act on sockets of other edges (sbctl sockets shows the join; `room_joined`,
//    `socket_connected`, `socket_disconnected` arrive at the admin sockets of every edge, the
//    socket's own edge included); a client's event is told as `event_received`, a delivery as
//    `event_sent`.
// 2. The UI served by an edge (/admin-ui/) in headless Chromium (playwright-core): a wrong
//    password shows "Invalid credentials", the right one connects; Servers lists the 3 edges
//    with their client counts; Sockets lists the cluster's sockets; a socket's page shows its
//    rooms and joins one (sbctl sockets shows it); a socket is disconnected from Sockets; an
//    emit to a room with the UI's session id reaches the room; an edge killed with SIGKILL
//    turns Unhealthy (the time is printed) and its sockets leave the list.
// 3. Read-only (its own nats + broker + edge): no action features, and join / emit /
//    _disconnect change nothing, from the protocol and from the UI.
// Screenshots: build/test-artifacts/admin_ui_*.png (paths printed).

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

import { chromium } from "playwright-core";

import {
  ACTION_FEATURES,
  ADMIN_PASSWORD,
  ADMIN_USER,
  UI_PATH,
  adminSocket,
  connectAdmin,
  connectError,
  latestStats,
  nextEvent,
  openAdminUi,
  writeAdminConfigs,
} from "./lib/admin_ui.mjs";
import { SETTLE_MS, disconnected, expectDelivery, joinByRule } from "./lib/cases.mjs";
import { Clients, eventually, startCluster } from "./lib/cluster.mjs";
import { BIN_DIR } from "./lib/server.mjs";

const CHROMIUM = process.env.SB_CHROMIUM || "/usr/bin/chromium";
const ARTIFACTS = path.join(BIN_DIR, "..", "test-artifacts");
const EDGE_ARGS = ["--heartbeat-ms", "500"];
// The UI calls a server unhealthy 10 s after its last server_stats (checked every second);
// an edge publishes them every 2 s.
const UI_UNHEALTHY_MS = 10_000;
const UNHEALTHY_BOUND_MS = UI_UNHEALTHY_MS + 2_000;
// The clients: name, edge index, transport, rooms joined (through the join-room rule).
const PLAN = [
  ["a1", 0, "websocket", ["red", "blue"]],
  ["a2", 0, "polling", ["red"]],
  ["b1", 1, "websocket", ["blue"]],
  ["b2", 1, "websocket", []],
  ["b3", 1, "websocket", ["green"]],
  ["c1", 2, "websocket", ["green", "red"]],
];

let configs;
let cluster;
let clients;
let browser;
// Admin sockets the test holds on each edge: an edge's clientsCount counts every Engine.IO
// connection, the admin ones too (as the reference's engine.clientsCount does).
const adminOn = new Map();

function run(binary, args) {
  return new Promise((resolve) => {
    execFile(path.join(BIN_DIR, binary), args, { timeout: 15_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (err.code ?? -1) : 0, stdout, stderr });
    });
  });
}

/** `sbctl --json sockets --ns / --room ROOM` against `broker`: the member ids, sorted. */
async function sbctlRoomMembers(broker, room) {
  const { code, stdout, stderr } = await run("sbctl", [
    "--server", broker.address, "--json", "sockets", "--ns", "/", "--room", room,
  ]);
  assert.equal(code, 0, `sbctl sockets failed: ${stderr}`);
  return (JSON.parse(stdout).sockets ?? []).map((s) => s.id).sort();
}

function byName(name) {
  const socket = clients.sockets.find((s) => s.name === name);
  assert.ok(socket, `client ${name}`);
  return socket;
}

function appSockets(edgeId) {
  return clients.live().filter((s) => s.meta.edge === edgeId && s.meta.nsp === "/");
}

function expectedClients(edgeId) {
  return appSockets(edgeId).length + (adminOn.get(edgeId) ?? 0);
}

function countAdmin(edgeId, delta) {
  adminOn.set(edgeId, (adminOn.get(edgeId) ?? 0) + delta);
}

/** What the UI should show as a socket's rooms: its own id (a room of its own) and its rooms. */
function roomsOf(socket) {
  return [socket.id, ...socket.meta.rooms].sort();
}

function artifact(name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, name);
  process.stderr.write(`[admin_ui] screenshot ${file}\n`);
  return file;
}

/** Waits until the broker's index lists the live clients of "/" with their rooms. */
async function waitIndexed(api) {
  const want = clients
    .live()
    .map((s) => [s.id, s.meta.edge, [...s.meta.rooms].sort()])
    .sort();
  await eventually(
    async () => {
      const got = (await api.listAllSockets({ namespace: "/" }))
        .map((s) => [s.id, s.edge_id, [...s.rooms].sort()])
        .sort();
      assert.deepEqual(got, want);
    },
    { timeoutMs: 5_000, what: "the broker's index lists the clients" },
  );
}

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} (Debian chromium, scripts/setup --test)`);
  configs = writeAdminConfigs();
  cluster = await startCluster({ edges: 3, brokers: 1, config: configs.config, edgeArgs: EDGE_ARGS });
  clients = new Clients();
  for (const [name, edgeIndex, transport, rooms] of PLAN) {
    const edge = cluster.edges[edgeIndex];
    const socket = await clients.connect({ name, url: edge.url, edge: edge.id, transport });
    for (const room of rooms) await joinByRule(socket, room);
  }
  await waitIndexed(cluster.apis[0]);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});

after(async () => {
  if (browser) await browser.close();
  clients?.closeAll();
  if (cluster) await cluster.stop();
  configs?.cleanup();
});

// ------------------------------------------------------------------ protocol

describe("the admin namespace's protocol", () => {
  let admin1; // on e1, logged in with the password
  let admin2; // on e2, logged in with admin1's session id
  let sessionId;

  after(() => {
    for (const [socket, edge] of [[admin1, "e1"], [admin2, "e2"]]) {
      if (socket) {
        socket.close();
        countAdmin(edge, -1);
      }
    }
  });

  test("a wrong login is refused with CONNECT_ERROR \"invalid credentials\"", async () => {
    const url = cluster.edges[0].url;
    for (const auth of [
      { username: ADMIN_USER, password: "not-the-password" },
      { username: "root", password: ADMIN_PASSWORD },
      { username: ADMIN_USER },
      {},
      { sessionId: "forged-session-id" },
    ]) {
      const socket = adminSocket(url, auth);
      try {
        const err = await connectError(socket, `login with ${JSON.stringify(auth)}`);
        assert.equal(err.message, "invalid credentials", `login with ${JSON.stringify(auth)}`);
      } finally {
        socket.close();
      }
    }
  });

  test("a login gets session, config, every edge's server_stats and all_sockets", async () => {
    const started = Date.now();
    admin1 = await connectAdmin(cluster.edges[0].url, { username: ADMIN_USER, password: ADMIN_PASSWORD });
    countAdmin("e1", 1);

    [sessionId] = await nextEvent(admin1, "session");
    assert.equal(typeof sessionId, "string");
    assert.ok(sessionId.length >= 16, `session id ${JSON.stringify(sessionId)}`);

    const [config] = await nextEvent(admin1, "config");
    for (const feature of ["EMIT", "JOIN", "LEAVE", "DISCONNECT", "AGGREGATED_EVENTS", "ALL_EVENTS"]) {
      assert.ok(config.supportedFeatures.includes(feature), `config.supportedFeatures ${JSON.stringify(config)} has ${feature}`);
    }

    // Every edge's stats within ~3 s (each edge publishes every 2 s).
    await eventually(
      () => assert.deepEqual([...latestStats(admin1).keys()].sort(), cluster.edgeIds()),
      { timeoutMs: Math.max(500, 3_000 - (Date.now() - started)), what: "server_stats from e1, e2 and e3" },
    );
    process.stderr.write(`[admin_ui] server_stats of the 3 edges after ${Date.now() - started} ms\n`);

    await eventually(
      () => {
        const latest = latestStats(admin1);
        for (const edge of cluster.edges) {
          const stats = latest.get(edge.id);
          const what = `server_stats of ${edge.id}: ${JSON.stringify(stats)}`;
          assert.equal(stats.clientsCount, expectedClients(edge.id), `${what}: clientsCount`);
          const polling = appSockets(edge.id).filter((s) => s.meta.transport === "polling").length;
          assert.equal(stats.pollingClientsCount, polling, `${what}: pollingClientsCount`);
          const root = stats.namespaces.find((n) => n.name === "/");
          assert.equal(root?.socketsCount, appSockets(edge.id).length, `${what}: sockets of /`);
          assert.equal(stats.pid, edge.server.proc.pid, `${what}: pid`);
          assert.equal(typeof stats.hostname, "string", `${what}: hostname`);
          assert.ok(stats.uptime >= 0, `${what}: uptime`);
          assert.ok(Array.isArray(stats.aggregatedEvents), `${what}: aggregatedEvents`);
        }
      },
      { timeoutMs: 6_000, what: "every edge's server_stats count its clients" },
    );

    const [all] = await nextEvent(admin1, "all_sockets");
    const listed = all.filter((s) => s.nsp === "/").sort((a, b) => (a.id < b.id ? -1 : 1));
    const want = clients.live().sort((a, b) => (a.id < b.id ? -1 : 1));
    assert.deepEqual(listed.map((s) => s.id), want.map((s) => s.id), "all_sockets lists every client of /");
    for (const [i, s] of listed.entries()) {
      const what = `all_sockets entry ${JSON.stringify(s)}`;
      assert.deepEqual([...s.rooms].sort(), roomsOf(want[i]), `${what}: rooms`);
      assert.equal(s.transport, want[i].meta.transport, `${what}: transport`);
      assert.equal(typeof s.clientId, "string", `${what}: clientId`);
      assert.match(s.handshake?.address ?? "", /127\.0\.0\.1/, `${what}: handshake.address`);
    }
  });

  test("the session id logs in on another edge without the password", async () => {
    assert.ok(sessionId, "a session id from the previous test");
    admin2 = await connectAdmin(cluster.edges[1].url, { sessionId });
    countAdmin("e2", 1);
    const [config] = await nextEvent(admin2, "config");
    assert.ok(config.supportedFeatures.includes("JOIN"), JSON.stringify(config));
    await nextEvent(admin2, "all_sockets");
    await eventually(
      () => assert.deepEqual([...latestStats(admin2).keys()].sort(), cluster.edgeIds()),
      { timeoutMs: 3_000, what: "server_stats of every edge at e2" },
    );
  });

  test("join: a socket of another edge joins the room (sbctl sockets), room_joined arrives", async () => {
    const c1 = byName("c1"); // on e3; admin2 is on e2, admin1 on e1
    admin2.emit("join", "/", "roomX", c1.id);
    for (const [name, admin] of [["admin1 (e1)", admin1], ["admin2 (e2)", admin2]]) {
      await nextEvent(admin, "room_joined", (nsp, room, id) => nsp === "/" && room === "roomX" && id === c1.id, { what: name });
    }
    await eventually(async () => assert.deepEqual(await sbctlRoomMembers(cluster.brokers[0], "roomX"), [c1.id]), {
      what: "sbctl sockets --room roomX",
    });
    c1.meta.rooms.add("roomX");
  });

  test("emit: the room's members receive the event, nobody else; event_sent arrives", async () => {
    const { got } = await expectDelivery({
      all: clients.live(),
      expected: [byName("c1")],
      event: "hello",
      publish: () => admin1.emit("emit", "/", "roomX", "hello", { a: 1 }),
    });
    assert.deepEqual(got.get("c1"), [[{ a: 1 }]]);
    // Development mode: what an edge delivered is told as event_sent, per recipient.
    const c1 = byName("c1");
    for (const [name, admin] of [["admin1 (e1)", admin1], ["admin2 (e2)", admin2]]) {
      const [nsp, , args] = await nextEvent(
        admin, "event_sent", (n, id, a) => id === c1.id && a?.[0] === "hello", { what: name });
      assert.equal(nsp, "/");
      assert.deepEqual(args, ["hello", { a: 1 }]);
    }
  });

  test("leave: the socket leaves the room (sbctl sockets), room_left arrives", async () => {
    const c1 = byName("c1");
    admin1.emit("leave", "/", "roomX", c1.id);
    for (const [name, admin] of [["admin1 (e1)", admin1], ["admin2 (e2)", admin2]]) {
      await nextEvent(admin, "room_left", (nsp, room, id) => nsp === "/" && room === "roomX" && id === c1.id, { what: name });
    }
    await eventually(async () => assert.deepEqual(await sbctlRoomMembers(cluster.brokers[0], "roomX"), []), {
      what: "sbctl sockets --room roomX after the leave",
    });
    c1.meta.rooms.delete("roomX");
  });

  test("event_received: a client's event reaches the admin sockets of every edge", async () => {
    const b1 = byName("b1"); // on e2
    b1.emit("status-update", { mood: "fine" }, 7);
    for (const [name, admin] of [["admin1 (e1)", admin1], ["admin2 (e2, the client's edge)", admin2]]) {
      const [nsp, , args, timestamp] = await nextEvent(
        admin, "event_received", (n, id, a) => id === b1.id && a?.[0] === "status-update", { what: name });
      assert.equal(nsp, "/");
      assert.deepEqual(args, ["status-update", { mood: "fine" }, 7]);
      assert.ok(!Number.isNaN(Date.parse(timestamp)), `${name}: timestamp ${timestamp}`);
    }
  });

  test("_disconnect: the socket is disconnected by the server, socket_disconnected arrives", async () => {
    const victim = await clients.connect({ name: "victim", url: cluster.edges[0].url, edge: "e1" });
    const victimId = victim.id; // socket.io-client forgets it on disconnect
    // A connection on e1 is told to the admin sockets on e1 and on e2.
    for (const [name, admin] of [["admin1 (e1, the victim's edge)", admin1], ["admin2 (e2)", admin2]]) {
      const [serialized] = await nextEvent(admin, "socket_connected", (s) => s.id === victimId, { what: name });
      assert.equal(serialized.nsp, "/");
      assert.deepEqual(serialized.rooms, [victimId]);
    }

    const reason = disconnected(victim);
    admin2.emit("_disconnect", "/", false, victimId);
    assert.equal(await reason, "io server disconnect");
    for (const [name, admin] of [["admin1 (e1, the victim's edge)", admin1], ["admin2 (e2)", admin2]]) {
      const [nsp, , why] = await nextEvent(admin, "socket_disconnected", (n, id) => id === victimId, { what: name });
      assert.equal(nsp, "/");
      assert.equal(typeof why, "string");
    }
    await sleep(SETTLE_MS);
    assert.deepEqual(
      PLAN.map(([name]) => [name, byName(name).connected]),
      PLAN.map(([name]) => [name, true]),
      "only the victim was disconnected",
    );
    clients.sockets = clients.sockets.filter((s) => s !== victim);
  });
});

// ------------------------------------------------------------------- browser

describe("the served UI in Chromium", () => {
  let ui;

  after(async () => {
    if (ui) {
      await ui.close();
      countAdmin("e1", -1);
    }
  });

  test("the UI's files are served at /admin-ui/ with their content types", async () => {
    const base = `${cluster.edges[0].url}${UI_PATH}`;
    const index = await fetch(base);
    assert.equal(index.status, 200, `GET ${base}`);
    assert.match(index.headers.get("content-type") ?? "", /^text\/html/, "index.html's content-type");
    const html = await index.text();
    assert.match(html, /<title>Socket.IO Admin UI<\/title>/);
    const assets = [...new Set([...html.matchAll(/(?:src|href)="((?:js|css)\/[^"]+)"/g)].map((m) => m[1]))];
    assert.ok(assets.some((a) => a.endsWith(".js")) && assets.some((a) => a.endsWith(".css")), `assets ${assets}`);
    let scripts = "";
    for (const asset of assets) {
      const res = await fetch(base + asset);
      assert.equal(res.status, 200, `GET ${base}${asset}`);
      const type = res.headers.get("content-type") ?? "";
      assert.match(type, asset.endsWith(".js") ? /javascript/ : /^text\/css/, `${asset}'s content-type`);
      const body = await res.text();
      if (asset.endsWith(".js")) scripts += body;
    }
    // The app bar's logo (an <img>: only shown with an image type).
    const logo = /img\/logo-light\.[0-9a-f]+\.svg/.exec(scripts);
    assert.ok(logo, "the app's script names its logo");
    const svg = await fetch(base + logo[0]);
    assert.equal(svg.status, 200, `GET ${base}${logo[0]}`);
    assert.match(svg.headers.get("content-type") ?? "", /^image\/svg\+xml/, "the logo's content-type");
    await svg.arrayBuffer();
    const missing = await fetch(`${base}js/no-such-file.js`);
    assert.equal(missing.status, 404, "an unknown file");
    await missing.arrayBuffer();
  });

  test("a wrong password is refused, the right one connects; Servers lists the 3 edges", async () => {
    const e1 = cluster.edges[0];
    ui = await openAdminUi(browser, e1.url);
    await ui.submitLogin(e1.url, ADMIN_USER, "not-the-password");
    await ui.dialog.getByText("Invalid credentials").waitFor();
    await ui.screenshot(artifact("admin_ui_login_refused.png"));

    await ui.login(e1.url, ADMIN_USER, ADMIN_PASSWORD);
    countAdmin("e1", 1);
    await ui.show("#/servers/", "Servers");
    const rows = await ui.until(async () => {
      const servers = await ui.servers();
      assert.deepEqual(
        servers.map((s) => [s.serverId, s.clientsCount, s.status]),
        cluster.edges.map((e) => [e.id, expectedClients(e.id), "Healthy"]),
      );
      return servers;
    }, 8_000, "Servers: e1, e2, e3 healthy with their client counts");
    assert.deepEqual(rows.map((s) => s.pid), cluster.edges.map((e) => e.server.proc.pid), "Servers: the edges' pids");
    await ui.screenshot(artifact("admin_ui_servers.png"));
  });

  test("Sockets lists the cluster's sockets; a socket's page shows its rooms and joins one", async () => {
    await ui.show("#/sockets/", "Sockets");
    await ui.until(async () => {
      const rows = await ui.sockets();
      assert.deepEqual(
        rows.map((r) => [r.id, r.transport]).sort(),
        clients.live().map((s) => [s.id, s.meta.transport === "polling" ? "HTTP long-polling" : "WebSocket"]).sort(),
      );
    }, 5_000, "Sockets lists every client of /");
    await ui.screenshot(artifact("admin_ui_sockets.png"));

    // b1 (on e2, in "blue"): its page, from its row.
    const b1 = byName("b1");
    await ui.page.locator("main .v-data-table tbody tr td:first-child", { hasText: b1.id }).click();
    await ui.page.waitForURL((url) => url.hash === `#/n/%2F/sockets/${b1.id}`);
    const roomsCard = ui.page.locator("main .v-card", {
      has: ui.page.locator(".v-card__title", { hasText: /^\s*Rooms\s*$/ }),
    });
    const roomNames = () => roomsCard.locator("tbody tr td:first-child").allTextContents();
    await ui.until(async () => assert.deepEqual((await roomNames()).map((r) => r.trim()), roomsOf(b1)), 5_000, "b1's rooms");

    await roomsCard.getByLabel("Join a room").fill("room-ui");
    await roomsCard.locator("button[type=submit]").click();
    await eventually(async () => assert.deepEqual(await sbctlRoomMembers(cluster.brokers[0], "room-ui"), [b1.id]), {
      what: "sbctl sockets --room room-ui after the UI's join",
    });
    b1.meta.rooms.add("room-ui");
    await ui.until(async () => assert.deepEqual((await roomNames()).map((r) => r.trim()), roomsOf(b1)), 5_000,
      "b1's page shows room-ui");
    await ui.screenshot(artifact("admin_ui_socket_joined.png"));
  });

  test("a socket is disconnected from Sockets; an emit with the UI's session reaches a room", async () => {
    await ui.show("#/sockets/", "Sockets");
    const b2 = byName("b2"); // on e2
    const reason = disconnected(b2);
    await ui.page.locator("main .v-data-table tbody tr", { hasText: b2.id }).locator("button").click();
    assert.equal(await reason, "io server disconnect");
    // (The click reaches the row too: the UI opens that socket's page.)
    await ui.show("#/sockets/", "Sockets");
    await ui.until(async () => {
      const ids = (await ui.sockets()).map((r) => r.id).sort();
      assert.deepEqual(ids, clients.live().map((s) => s.id).sort());
    }, 5_000, "b2 has left Sockets");

    // The UI 0.5.1 has no emit form: the protocol's emit, logged in with the UI's session.
    const sessionId = await ui.sessionId();
    assert.ok(sessionId, "the UI kept the session id the server sent");
    const admin = await connectAdmin(cluster.edges[1].url, { sessionId });
    countAdmin("e2", 1);
    try {
      const red = clients.live().filter((s) => s.meta.rooms.has("red"));
      assert.deepEqual(red.map((s) => s.name).sort(), ["a1", "a2", "c1"]);
      const { got } = await expectDelivery({
        all: clients.live(),
        expected: red,
        event: "news",
        publish: () => admin.emit("emit", "/", "red", "news", { from: "admin-ui" }),
      });
      for (const s of red) assert.deepEqual(got.get(s.name), [[{ from: "admin-ui" }]]);
    } finally {
      admin.close();
      countAdmin("e2", -1);
    }
  });

  test("an edge killed with SIGKILL turns unhealthy; its sockets leave the list", async () => {
    await ui.show("#/servers/", "Servers");
    await ui.until(async () => {
      const servers = await ui.servers();
      assert.deepEqual(
        servers.map((s) => [s.serverId, s.clientsCount, s.status]),
        cluster.edges.map((e) => [e.id, expectedClients(e.id), "Healthy"]),
      );
    }, 5_000, "Servers before the kill");

    const e3 = cluster.edges[2];
    const killedAt = Date.now();
    e3.server.proc.kill("SIGKILL");
    await ui.until(async () => {
      const servers = await ui.servers();
      assert.deepEqual(servers.map((s) => [s.serverId, s.status]), [["e1", "Healthy"], ["e2", "Healthy"], ["e3", "Unhealthy"]]);
    }, UNHEALTHY_BOUND_MS + 3_000, "Servers: e3 unhealthy");
    const elapsed = Date.now() - killedAt;
    process.stderr.write(`[admin_ui] e3 shown unhealthy ${elapsed} ms after SIGKILL\n`);
    await ui.screenshot(artifact("admin_ui_edge_killed.png"));
    assert.ok(elapsed <= UNHEALTHY_BOUND_MS,
      `e3 unhealthy ${elapsed} ms after SIGKILL (the UI's threshold: 10 s after the last stats, sent every 2 s)`);

    // The brokers dropped e3's sockets: the UI is told the list again.
    await ui.show("#/sockets/", "Sockets");
    await ui.until(async () => {
      const ids = (await ui.sockets()).map((r) => r.id).sort();
      assert.deepEqual(ids, clients.live().filter((s) => s.meta.edge !== "e3").map((s) => s.id).sort());
    }, 8_000, "e3's sockets have left Sockets");
  });
});

// ----------------------------------------------------------------- read-only

describe("read-only", () => {
  let ro; // nats + broker + 1 edge with "readonly": true
  let roClients;
  let x;

  before(async () => {
    ro = await startCluster({ edges: 1, brokers: 1, config: configs.readonlyConfig, edgeArgs: EDGE_ARGS });
    roClients = new Clients();
    x = await roClients.connect({ name: "x", url: ro.edges[0].url, edge: "e1" });
    await joinByRule(x, "lobby");
  });

  after(async () => {
    roClients?.closeAll();
    if (ro) await ro.stop();
  });

  async function assertUnchanged(what) {
    await sleep(1_000);
    assert.ok(x.connected, `${what}: x still connected`);
    const [info] = await ro.apis[0].listAllSockets({ namespace: "/" });
    assert.equal(info?.id, x.id, `${what}: x listed`);
    assert.deepEqual([...info.rooms].sort(), ["lobby"], `${what}: x's rooms`);
  }

  test("no action features; join, emit and _disconnect change nothing", async () => {
    const admin = await connectAdmin(ro.edges[0].url, { username: ADMIN_USER, password: ADMIN_PASSWORD });
    try {
      const [config] = await nextEvent(admin, "config");
      for (const feature of ACTION_FEATURES) {
        assert.ok(!config.supportedFeatures.includes(feature), `read-only config ${JSON.stringify(config)} has no ${feature}`);
      }
      assert.ok(config.supportedFeatures.includes("AGGREGATED_EVENTS"), JSON.stringify(config));
      await nextEvent(admin, "all_sockets");

      const got = [];
      x.on("nope", (...args) => got.push(args));
      admin.emit("join", "/", "roomRO", x.id);
      admin.emit("emit", "/", x.id, "nope", 1);
      admin.emit("_disconnect", "/", false, x.id);
      await assertUnchanged("after the protocol's actions");
      assert.deepEqual(got, [], "x received no emit");
      assert.equal(admin.got.get("room_joined"), undefined, "no room_joined");
      assert.deepEqual(await sbctlRoomMembers(ro.brokers[0], "roomRO"), []);
    } finally {
      admin.close();
    }
  });

  test("the UI lists the socket but cannot act on it", async () => {
    const roEdge = ro.edges[0];
    const ui = await openAdminUi(browser, roEdge.url, { name: "read-only" });
    try {
      await ui.login(roEdge.url, ADMIN_USER, ADMIN_PASSWORD);
      await ui.show("#/sockets/", "Sockets");
      await ui.until(async () => assert.deepEqual((await ui.sockets()).map((r) => r.id), [x.id]), 5_000, "Sockets lists x");
      const row = ui.page.locator("main .v-data-table tbody tr", { hasText: x.id });
      assert.equal(await row.locator("button").count(), 0, "no disconnect button without DISCONNECT");

      // The socket's page still offers a join (the UI does not hide it): the edge ignores it.
      await row.locator("td:first-child").click();
      await ui.page.waitForURL((url) => url.hash === `#/n/%2F/sockets/${x.id}`);
      const roomsCard = ui.page.locator("main .v-card", {
        has: ui.page.locator(".v-card__title", { hasText: /^\s*Rooms\s*$/ }),
      });
      await roomsCard.getByLabel("Join a room").fill("room-ro-ui");
      await roomsCard.locator("button[type=submit]").click();
      await assertUnchanged("after the UI's join");
      assert.deepEqual(await sbctlRoomMembers(ro.brokers[0], "room-ro-ui"), []);
      await ui.screenshot(artifact("admin_ui_readonly.png"));
    } finally {
      await ui.close();
    }
  });
});
