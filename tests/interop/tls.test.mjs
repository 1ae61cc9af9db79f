// HTTPS and WSS on the edge listener (`--tls-cert` / `--tls-key`): the
// official socket.io-client, trusting only a certificate made here with the
// openssl CLI, connects to `switchboard standalone` over each transport, emits
// with an ack, and receives a publish from the gRPC API; ListSockets shows the
// client's own address. A client that does not trust the certificate, and one
// that speaks plain HTTP to the TLS port, do not get in.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { io } from "socket.io-client";

import { connectApi, json } from "./lib/api.mjs";
import { makeCertificate } from "./lib/certificate.mjs";
import { CONFIG_DIR, TRANSPORTS, eventually } from "./lib/cluster.mjs";
import { startServer } from "./lib/server.mjs";
import { WAIT_MS, call, once, withTimeout } from "./lib/wait.mjs";

const CONFIG = path.join(CONFIG_DIR, "cluster.json");

let dir;
let ca;
let server;
let api;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "sb-tls-"));
  const { cert, key, ca: trusted } = makeCertificate(dir);
  ca = trusted;
  server = await startServer(
    "switchboard",
    ["standalone", "--config", CONFIG, "--threads", "2", "--listen", "127.0.0.1:0",
     "--grpc-listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key],
    { ready: ["grpc", "http"], name: "standalone-tls" },
  );
  api = connectApi(server.grpcAddress);
});

after(async () => {
  api?.close();
  if (server) {
    const { code } = await server.stop();
    assert.equal(code, 0, "switchboard exits cleanly on SIGTERM");
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("the ready line announces https", () => {
  assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
});

function connect(transport, options = {}) {
  return io(server.url, {
    ...TRANSPORTS[transport],
    forceNew: true,
    reconnection: false,
    timeout: WAIT_MS,
    ca,
    ...options,
  });
}

function connected(socket) {
  return withTimeout(
    new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("connect_error", (err) => reject(new Error(`connect_error: ${err.message}`)));
    }),
    WAIT_MS,
    "connect",
  );
}

describe("official client over TLS", () => {
  for (const transport of ["websocket", "polling", "upgrade"]) {
    test(`${transport}: emit with ack, receive a publish, address and transport in ListSockets`, async () => {
      const socket = connect(transport);
      try {
        await connected(socket);
        const room = `tls-${transport}`;
        assert.deepEqual(await call(socket, "join-room", room), { ok: true, room });
        if (transport === "upgrade") {
          await eventually(() => assert.equal(socket.io.engine.transport.name, "websocket"), {
            what: "the upgrade to WebSocket",
          });
        }
        const news = once(socket, "news");
        const big = "z".repeat(64 * 1024);  // several TLS records
        await api.publish({ target: { rooms: [room] }, event: "news", args: [json({ big })] });
        const [payload] = await news;
        assert.equal(payload.big.length, big.length);

        const expected = transport === "polling" ? "TRANSPORT_POLLING" : "TRANSPORT_WEBSOCKET";
        await eventually(async () => {
          const sockets = (await api.listAllSockets()).filter((s) => s.id === socket.id);
          assert.equal(sockets.length, 1, "ListSockets shows the socket");
          assert.equal(sockets[0].remote_address, "127.0.0.1");
          assert.equal(sockets[0].transport, expected);
        }, { what: "ListSockets" });
      } finally {
        socket.disconnect();
      }
    });
  }

  test("a client that does not trust the certificate cannot connect", async () => {
    const socket = connect("websocket", { ca: undefined });
    try {
      await assert.rejects(connected(socket), /connect_error/);
    } finally {
      socket.disconnect();
    }
  });

  test("plain HTTP to the TLS port gets no Socket.IO connection", async () => {
    const socket = io(server.url.replace("https://", "http://"), {
      ...TRANSPORTS.polling,
      forceNew: true,
      reconnection: false,
      timeout: WAIT_MS,
    });
    try {
      await assert.rejects(connected(socket), /connect_error/);
    } finally {
      socket.disconnect();
    }
  });

  test("no socket is left once the clients are gone", async () => {
    await eventually(async () => {
      assert.deepEqual((await api.listAllSockets()).map((s) => s.id), []);
    }, { what: "no sockets left" });
  });
});
