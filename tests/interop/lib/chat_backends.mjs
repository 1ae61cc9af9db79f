// The chat backend (examples/chat-backend/) in its three languages, started
// against brokers for a test, and socket.io-client helpers for its contract
// (examples/chat-backend/chat.h).
//
//   const backend = await startChatBackend("cpp", cluster.brokers.map((b) => b.address));
//   ...
//   await backend.stop();

import path from "node:path";

import { io } from "socket.io-client";

import { BIN_DIR, SOURCE_DIR, startServer } from "./server.mjs";
import { WAIT_MS, withTimeout } from "./wait.mjs";

export const CHAT_DIR = path.join(SOURCE_DIR, "examples", "chat-backend");
export const CHAT_CONFIG = path.join(CHAT_DIR, "switchboard.json");
const INTEROP_DIR = path.join(SOURCE_DIR, "tests", "interop");

const READY = /chat backend watching/;

/**
 * Starts the chat backend written in `kind` ("cpp", "python" or "node")
 * watching `brokers` (gRPC addresses; the first is used until it fails).
 * Resolves once its watch stream is live.
 */
export function startChatBackend(kind, brokers) {
  const servers = brokers.flatMap((address) => ["--server", address]);
  const options = { listen: false, ready: [READY], name: `chat-backend-${kind}` };
  switch (kind) {
    case "cpp":
      return startServer(path.join(BIN_DIR, "sb-chat-backend"), servers, options);
    case "python":
      return startServer(
        process.env.SB_PYTHON || "/usr/bin/python3",
        ["-u", path.join(CHAT_DIR, "python", "chat_backend.py"), ...servers],
        options,
      );
    case "node":
      return startServer(process.execPath, [path.join(CHAT_DIR, "node", "chat_backend.cjs"), ...servers], {
        ...options,
        // The example is CommonJS so that it finds the interop tests' @grpc packages this way.
        env: { NODE_PATH: path.join(INTEROP_DIR, "node_modules") },
      });
    default:
      throw new Error(`unknown chat backend ${kind}`);
  }
}

/**
 * Connects an official client; every chat event it receives is recorded in `socket.got` (the
 * argument; all of them, as an array, if there are several). `user-joined` / `user-left` are
 * recorded to show that none come: the seed's chat announces joins and leaves as `notification`.
 */
export async function chatClient(url, sockets, { transport = "websocket" } = {}) {
  const socket = io(url, { transports: [transport], forceNew: true, reconnection: false, timeout: WAIT_MS });
  sockets.push(socket);
  socket.got = {
    "user-list": [],
    notification: [],
    "chat-message": [],
    typing: [],
    "user-joined": [],
    "user-left": [],
  };
  for (const [event, list] of Object.entries(socket.got)) {
    socket.on(event, (arg, ...more) => list.push(more.length ? [arg, ...more] : arg));
  }
  await withTimeout(
    new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("connect_error", reject);
    }),
    WAIT_MS,
    "chat client connect",
  );
  return socket;
}

/**
 * The core of the chat (user-join, user list, join / leave notices, chat-message) against the
 * backend written in `kind`, on a cluster of nats-server, 2 brokers and 2 edges: registers the
 * node:test hooks and test of one test file.
 */
export async function defineCoreChatTest(kind) {
  const { after, before, test } = await import("node:test");
  const assert = (await import("node:assert/strict")).default;
  const { eventually, startCluster } = await import("./cluster.mjs");
  const { call } = await import("./wait.mjs");

  let cluster;
  let backend;
  const sockets = [];
  before(async () => {
    cluster = await startCluster({ edges: 2, brokers: 2, config: CHAT_CONFIG });
    backend = await startChatBackend(kind, cluster.brokers.map((b) => b.address));
  });
  after(async () => {
    for (const s of sockets) s.disconnect();
    if (backend) await backend.stop();
    if (cluster) await cluster.stop();
  });

  const has = (socket, event, match) =>
    eventually(
      () => {
        const found = socket.got[event].find(match);
        if (found === undefined) throw new Error(`no matching ${event}: ${JSON.stringify(socket.got[event])}`);
        return found;
      },
      { what: `${event} at a client` },
    );

  test(`${kind} chat backend: join, list, notices, messages, cleanup`, async () => {
    const alice = await chatClient(cluster.edges[0].url, sockets);
    const bob = await chatClient(cluster.edges[1].url, sockets);
    assert.deepEqual(await call(alice, "chat-message", "early"), { ok: false, error: "join first" });
    assert.deepEqual(await call(alice, "user-join", "alice"), { ok: true, username: "alice", users: ["alice"] });
    assert.deepEqual(await call(bob, "user-join", { username: "bob" }), {
      ok: true,
      username: "bob",
      users: ["alice", "bob"],
    });
    for (const s of [alice, bob]) await has(s, "user-list", (l) => JSON.stringify(l) === '["alice","bob"]');
    // The seed: socket.broadcast.emit("notification", `${username} joined the chat`), a plain string.
    await has(alice, "notification", (n) => n === "bob joined the chat");
    // bob has the list, published after the notice: he would have had it by now.
    assert.deepEqual(bob.got.notification, ["alice joined the chat"], "bob is not told about himself");

    const sentAt = Date.now();
    assert.deepEqual(await call(bob, "chat-message", "hello"), { ok: true });
    for (const s of [alice, bob]) {
      const m = await has(s, "chat-message", (x) => x.message === "hello");
      assert.ok(Math.abs(m.timestamp - sentAt) < 60_000, "timestamp is now");
      // The seed: io.emit("chat-message", { username, message, timestamp }).
      assert.deepEqual(m, { username: "bob", message: "hello", timestamp: m.timestamp });
      assert.deepEqual(Object.keys(m), ["username", "message", "timestamp"]);
    }

    bob.disconnect();
    // The seed: socket.broadcast.emit("notification", `${user.username} left the chat`).
    await has(alice, "notification", (n) => n === "bob left the chat");
    await eventually(() => assert.deepEqual(alice.got["user-list"].at(-1), ["alice"]), { what: "list without bob" });
    assert.deepEqual(alice.got.notification, ["bob joined the chat", "bob left the chat"]);
    for (const s of [alice, bob]) {
      assert.deepEqual([s.got["user-joined"], s.got["user-left"]], [[], []], "no other join / leave events");
    }
  });
}
