// JWT authentication and per-namespace authorization with the official
// socket.io-client against `switchboard standalone`: tokens from the CONNECT
// auth payload, the Authorization header and the query string; HS256, RS256
// (PEM file) and ES256; rejections as CONNECT_ERROR with a message and a
// machine-readable data.code; the token's sub as the user id and kept claims
// in ListSockets; allowedEvents and a rooms claim; a public namespace beside
// protected ones.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { io } from "socket.io-client";

import { connectApi } from "./lib/api.mjs";
import { eventually } from "./lib/cluster.mjs";
import { keyPairs, now, sign } from "./lib/jwt.mjs";
import { startServer } from "./lib/server.mjs";
import { call, withTimeout } from "./lib/wait.mjs";

const SECRET = "a-test-secret-of-reasonable-length-0123456789";
let server;
let api;
let dir;
let keys;

before(async () => {
  keys = keyPairs();
  dir = mkdtempSync(path.join(tmpdir(), "sb-auth-"));
  writeFileSync(path.join(dir, "rsa.pem"), keys.rsa.publicKey);
  writeFileSync(path.join(dir, "ec.pem"), keys.ec.publicKey);
  const config = {
    namespaces: {
      "/": {},
      "/secure": {
        auth: {
          keys: [
            { kid: "hmac", algorithms: ["HS256", "HS384", "HS512"], secretEnv: "SB_TEST_JWT_SECRET" },
            { kid: "rsa", algorithms: ["RS256"], publicKeyFile: path.join(dir, "rsa.pem") },
            { kid: "ec", algorithms: ["ES256"], publicKeyFile: path.join(dir, "ec.pem") },
          ],
          issuer: "https://issuer.test",
          audience: "switchboard",
          leewaySeconds: 5,
          tokenFrom: ["auth", "header", "query"],
          claims: ["name"],
        },
        allowedEvents: ["join-room", "message", "post", "post-member"],
        roomsClaim: "rooms",
        rules: [
          { event: "join-room", action: "join", room: "$.room|$", ack: { ok: true, room: "$room" } },
          { event: "message", action: "relay", payload: { text: "$.text" }, ack: { ok: true } },
          { event: "secret", action: "relay", ack: { ok: true } },
          // The client chooses the room it posts to.
          { event: "post", action: "relay", target: { room: "$.room" }, payload: { text: "$.text" } },
          { event: "post-member", action: "relay", target: { room: "$.room" }, requireMember: true, emit: "post" },
        ],
      },
    },
  };
  const file = path.join(dir, "config.json");
  writeFileSync(file, JSON.stringify(config));
  process.env.SB_TEST_JWT_SECRET = SECRET;
  server = await startServer("switchboard", ["standalone", "--config", file, "--threads", "2", "--grpc-listen", "127.0.0.1:0"], {
    ready: ["grpc", "http"],
  });
  api = connectApi(server.grpcAddress);
});

after(async () => {
  api?.close();
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const claims = (extra = {}) => ({
  sub: "alice",
  iss: "https://issuer.test",
  aud: "switchboard",
  exp: now() + 600,
  name: "Alice",
  rooms: ["ops"],
  ...extra,
});
const hs = (payload = claims(), alg = "HS256", kid = "hmac") => sign(payload, { alg, key: SECRET, kid });

/** Connects to /secure; resolves {socket} on connect or {error} on connect_error. */
function attempt(options = {}, nsp = "/secure") {
  const socket = io(`${server.url}${nsp}`, { transports: ["websocket"], reconnection: false, forceNew: true, ...options });
  return withTimeout(
    new Promise((resolve) => {
      socket.on("connect", () => resolve({ socket }));
      socket.on("connect_error", (error) => {
        socket.close();
        resolve({ error });
      });
    }),
    5000,
    "connect or connect_error",
  );
}

async function expectRejected(options, message, code) {
  const { socket, error } = await attempt(options);
  socket?.close();
  assert.ok(error, "rejected");
  assert.equal(error.message, message);
  assert.deepEqual(error.data, { code });
}

describe("tokens", () => {
  test("HS256/384/512, RS256 and ES256 tokens are accepted; sub is the user, kept claims are listed", async () => {
    const tokens = {
      HS256: hs(),
      HS384: hs(claims(), "HS384"),
      HS512: hs(claims(), "HS512"),
      RS256: sign(claims(), { alg: "RS256", key: keys.rsa.privateKey, kid: "rsa" }),
      ES256: sign(claims(), { alg: "ES256", key: keys.ec.privateKey, kid: "ec" }),
    };
    for (const [alg, token] of Object.entries(tokens)) {
      const { socket, error } = await attempt({ auth: { token } });
      assert.ok(socket, `${alg}: ${error?.message}`);
      // The index learns of the socket from the edge's membership stream.
      await eventually(
        async () => {
          const { sockets } = await api.listSockets({ namespace: "/secure" });
          const info = sockets.find((s) => s.id === socket.id);
          assert.ok(info, `${alg}: listed`);
          assert.equal(info.user_id, "alice");
          assert.deepEqual(JSON.parse(info.claims), { name: "Alice", rooms: ["ops"] });
        },
        { what: `${alg} socket in ListSockets` },
      );
      socket.close();
    }
  });

  test("the Authorization header and the query string carry tokens too", async () => {
    const viaHeader = await attempt({ extraHeaders: { Authorization: `Bearer ${hs()}` } });
    assert.ok(viaHeader.socket, viaHeader.error?.message);
    viaHeader.socket.close();
    const viaQuery = await attempt({ query: { token: hs() } });
    assert.ok(viaQuery.socket, viaQuery.error?.message);
    viaQuery.socket.close();
  });

  test("no token, bad tokens and forged tokens get CONNECT_ERROR with a code", async () => {
    await expectRejected({}, "Authentication token required", "token_required");
    await expectRejected({ auth: { token: "not.a.token" } }, "Invalid authentication token", "invalid_token");
    await expectRejected({ auth: { token: hs(claims(), "HS256", "hmac").slice(0, -2) + "xx" } }, "Invalid authentication token", "invalid_token");
    await expectRejected({ auth: { token: sign(claims(), { alg: "HS256", key: "wrong-secret", kid: "hmac" }) } }, "Invalid authentication token", "invalid_token");
    await expectRejected({ auth: { token: sign(claims(), { alg: "none" }) } }, "Invalid authentication token", "invalid_token");
    // Algorithm confusion: HMAC over the RSA public key's PEM, presented for the RSA key.
    await expectRejected(
      { auth: { token: sign(claims(), { alg: "HS256", key: keys.rsa.publicKey, kid: "rsa" }) } },
      "Invalid authentication token",
      "invalid_token",
    );
    await expectRejected({ auth: { token: hs(claims({ exp: now() - 60 })) } }, "Token expired", "token_expired");
    await expectRejected({ auth: { token: hs(claims({ nbf: now() + 600 })) } }, "Invalid authentication token", "token_not_yet_valid");
    await expectRejected({ auth: { token: hs(claims({ iss: "https://evil.test" })) } }, "Invalid authentication token", "invalid_token");
    await expectRejected({ auth: { token: hs(claims({ aud: "someone-else" })) } }, "Invalid authentication token", "invalid_token");
    await expectRejected({ auth: { token: hs(claims({ sub: undefined })) } }, "Invalid authentication token", "invalid_token");
  });

  test("a public namespace needs no token", async () => {
    const { socket, error } = await attempt({}, "/");
    assert.ok(socket, error?.message);
    socket.close();
  });
});

describe("authorization", () => {
  test("events outside allowedEvents are refused", async () => {
    const { socket } = await attempt({ auth: { token: hs() } });
    try {
      assert.deepEqual(await call(socket, "secret", {}), { ok: false, error: "event not allowed" });
      assert.deepEqual(await call(socket, "message", { text: "hi" }), { ok: true });
    } finally {
      socket.close();
    }
  });

  test("a client joins only rooms its token's rooms claim lists", async () => {
    const { socket } = await attempt({ auth: { token: hs() } });
    try {
      assert.deepEqual(await call(socket, "join-room", "ops"), { ok: true, room: "ops" });
      const denied = await call(socket, "join-room", "payroll");
      assert.equal(denied.ok, false);
      assert.equal(denied.error, "room not allowed");
      await eventually(
        async () => {
          const { sockets } = await api.listSockets({ namespace: "/secure", room: "ops" });
          assert.deepEqual(sockets.map((s) => s.id), [socket.id]);
        },
        { what: "ops member in ListSockets" },
      );
      assert.equal((await api.listSockets({ namespace: "/secure", room: "payroll" })).sockets.length, 0);
    } finally {
      socket.close();
    }
  });

  test("a client posts only to rooms its token's rooms claim lists (or, with requireMember, it is in)", async () => {
    const { socket: alice } = await attempt({ auth: { token: hs() } });
    const { socket: payroll } = await attempt({ auth: { token: hs(claims({ sub: "bob", rooms: ["payroll", "ops"] })) } });
    try {
      assert.deepEqual(await call(payroll, "join-room", "payroll"), { ok: true, room: "payroll" });
      assert.deepEqual(await call(payroll, "join-room", "ops"), { ok: true, room: "ops" });
      const got = [];
      payroll.on("post", (...args) => got.push(args));
      // Not in alice's claim: refused, nothing delivered.
      assert.deepEqual(await call(alice, "post", { room: "payroll", text: "raise?" }), { ok: false, error: "room not allowed" });
      assert.deepEqual(await call(alice, "post-member", { room: "payroll" }), { ok: false, error: "not in room" });
      // Listed: delivered, whether or not alice is in the room.
      assert.deepEqual(await call(alice, "post", { room: "ops", text: "hello ops" }), { ok: true });
      assert.deepEqual(await call(alice, "join-room", "ops"), { ok: true, room: "ops" });
      assert.deepEqual(await call(alice, "post-member", { room: "ops", text: "as member" }), { ok: true });
      await eventually(
        async () => assert.deepEqual(got, [[{ text: "hello ops" }], [{ room: "ops", text: "as member" }]]),
        { what: "the posts to ops" },
      );
    } finally {
      alice.close();
      payroll.close();
    }
  });
});
