// Limits (services/CONFIG.md, "limits" and the namespace policy) as the
// official socket.io-client sees them, against `switchboard standalone` with
// a configuration of small limits: the event rate (dropped events answered
// with an error ack, the "rate-limited" notice), sockets per user and
// namespaces per connection (CONNECT_ERROR messages), the CONNECT budget of a
// connection (closed past it, counted in /metrics), and the CORS allow-list
// (403 for a foreign Origin, nothing for clients that send none).

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { io, Manager } from "socket.io-client";

import { httpGet } from "./lib/http.mjs";
import { startStandalone } from "./lib/server.mjs";
import { WAIT_MS, call, withTimeout } from "./lib/wait.mjs";

const CONFIG = {
  engine: { cors: { origins: ["https://good.example"] } },
  limits: { maxNamespacesPerConnection: 2, connectRate: { perSecond: 0.01, burst: 4 } },
  namespaces: {
    "/": {
      eventRate: { perSecond: 0.01, burst: 3, floodDrops: 1000 },
    },
    "/a": {},
    "/b": {},
    "/u": { userIdFromAuth: "userId", maxSocketsPerUser: 1 },
  },
};

for (const transport of ["websocket", "polling"]) {
  describe(`limits over ${transport}`, () => {
    let server;
    const sockets = [];

    function open(nsp = "/", options = {}) {
      const socket = io(server.url + nsp, {
        transports: [transport],
        forceNew: true,
        reconnection: false,
        timeout: WAIT_MS,
        ...options,
      });
      sockets.push(socket);
      return socket;
    }

    // Resolves on connect, rejects with the connect_error.
    function connected(socket) {
      return withTimeout(
        new Promise((resolve, reject) => {
          socket.once("connect", resolve);
          socket.once("connect_error", reject);
        }),
        WAIT_MS,
        "connect",
      );
    }

    before(async () => {
      server = await startStandalone(CONFIG, { threads: 2 });
    });

    after(async () => {
      for (const s of sockets) s.disconnect();
      if (server) await server.stop();
    });

    test("events past the rate get an error ack and one rate-limited notice", async () => {
      const socket = open();
      await connected(socket);
      const notices = [];
      socket.on("rate-limited", (info) => notices.push(info));
      // The burst: events no rule names are answered "unknown event".
      for (let i = 0; i < 3; i++) {
        assert.deepEqual(await call(socket, "ping-me"), { ok: false, error: "unknown event" });
      }
      const refused = await call(socket, "ping-me");
      assert.equal(refused.ok, false);
      assert.equal(refused.error, "rate-limited");
      assert.ok(refused.retryAfterMs > 0, `retryAfterMs ${refused.retryAfterMs}`);
      assert.equal((await call(socket, "ping-me")).error, "rate-limited");
      assert.equal(notices.length, 1, "one notice a second at most");
      assert.ok(notices[0].retryAfterMs > 0);
      assert.equal(socket.connected, true);
    });

    test("a user past maxSocketsPerUser gets CONNECT_ERROR", async () => {
      const first = open("/u", { auth: { userId: "u1" } });
      await connected(first);
      const second = open("/u", { auth: { userId: "u1" } });
      await assert.rejects(connected(second), { message: "Too many connections for this user" });
      const other = open("/u", { auth: { userId: "u2" } });
      await connected(other);
    });

    test("a connection past maxNamespacesPerConnection gets CONNECT_ERROR", async () => {
      const manager = new Manager(server.url, {
        transports: [transport],
        reconnection: false,
        timeout: WAIT_MS,
      });
      const nsps = ["/", "/a", "/b"].map((n) => manager.socket(n));
      sockets.push(...nsps);
      // Listening to all three at once: over polling the answers come in one response.
      const [main, a, b] = await Promise.allSettled(nsps.map(connected));
      assert.equal(main.status, "fulfilled");
      assert.equal(a.status, "fulfilled");
      assert.equal(b.status, "rejected");
      assert.equal(b.reason.message, "Too many namespaces");
      assert.equal(nsps[0].connected, true);
    });

    test("CONNECT / DISCONNECT cycles past connectRate close the connection", async () => {
      const manager = new Manager(server.url, { transports: [transport], reconnection: false, timeout: WAIT_MS });
      // "/" holds the connection open while "/a" leaves and joins again.
      const main = manager.socket("/");
      const cycling = manager.socket("/a");
      sockets.push(main, cycling);
      await Promise.all([connected(main), connected(cycling)]);
      const engine = manager.engine;
      for (let i = 0; i < 2; i++) {
        cycling.disconnect();
        cycling.connect();
        await connected(cycling);
      }
      assert.equal(manager.engine, engine, "one connection throughout");
      // The fifth CONNECT on it (burst 4): the server disconnects "/" and closes.
      const dropped = new Promise((resolve) => main.once("disconnect", resolve));
      cycling.disconnect();
      cycling.connect();
      assert.equal(await withTimeout(dropped, WAIT_MS, "disconnect"), "io server disconnect");
      const { body } = await httpGet(server.adminPort, "/metrics");
      assert.match(body, /^switchboard_rate_limit_hits_total\{limit="connect"\} 1$/m);
    });

    test("a foreign Origin gets 403, no Origin is fine", async () => {
      const url = `${server.url}/socket.io/?EIO=4&transport=polling`;
      const bad = await fetch(url, { headers: { Origin: "https://evil.example" } });
      assert.equal(bad.status, 403);
      assert.deepEqual(await bad.json(), { code: 4, message: "Forbidden" });
      const good = await fetch(url, { headers: { Origin: "https://good.example" } });
      assert.equal(good.status, 200);
      assert.equal(good.headers.get("access-control-allow-origin"), "https://good.example");
      await good.text();  // (its session ends when the server stops)
    });
  });
}
