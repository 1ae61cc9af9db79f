// The seed chat (examples/chat.json) served by `switchboard standalone`,
// driven by several official socket.io-client 4.8.x clients. Every behaviour
// checked here comes from the relay rules in the config file, none from code:
// namespace-wide relay with a server timestamp, room join / leave with
// notifications, room messages for members only, /chat's send-message,
// private messages to one socket, ack answers, and events no rule names.
// The server runs 2 shards so that relays cross threads.
//
// Every payload is compared whole with what the seed's Node server
// (/work/shared/seed-socketio-recipe.txt, "Rooms", "Namespaces",
// "Authentication middleware") sends, so that a client written for it reads
// the same fields: message {...data, timestamp}, user-joined / user-left {id},
// room-message {from, message, timestamp}, private-message {from, fromUser,
// message} (fromUser left out when the sender's name is not known, as
// JSON.stringify leaves out undefined), new-message {from, msg}.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { io } from "socket.io-client";

import { sign } from "./lib/jwt.mjs";
import { SOURCE_DIR, startServer, startStandalone } from "./lib/server.mjs";
import { WAIT_MS, call, collect, waitForCount, withTimeout } from "./lib/wait.mjs";

const CONFIG = path.join(process.env.SB_SOURCE_DIR || SOURCE_DIR, "examples", "chat.json");

// ---------------------------------------------------------------- helpers

// After this, whatever the server sent these sockets before has arrived: an
// acked round trip on each connection (an event no rule names is answered
// with an error ack), plus slack for deliveries posted from the other shard.
async function fence(...sockets) {
  for (const s of sockets) {
    assert.deepEqual(await call(s, "fence"), { ok: false, error: "unknown event" });
  }
  await sleep(100);
}

function assertRecentTimestamp(ts) {
  assert.equal(typeof ts, "number", `timestamp ${ts} is a number`);
  assert.ok(Math.abs(Date.now() - ts) < 60_000, `timestamp ${ts} is close to now`);
}

// ------------------------------------------------------------------ tests

for (const transport of ["websocket", "polling"]) {
  describe(`seed chat over ${transport}`, () => {
    let server;
    const sockets = [];

    async function connect(nsp = "/", auth = undefined) {
      const socket = io(server.url + nsp, {
        transports: [transport],
        forceNew: true,
        reconnection: false,
        timeout: WAIT_MS,
        ...(auth ? { auth } : {}),
      });
      sockets.push(socket);
      await withTimeout(
        new Promise((resolve, reject) => {
          socket.once("connect", resolve);
          socket.once("connect_error", reject);
        }),
        WAIT_MS,
        `connect to ${nsp}`,
      );
      assert.ok(socket.id, "socket has an id");
      return socket;
    }

    before(async () => {
      server = await startServer("switchboard", [
        "standalone", "--config", CONFIG, "--threads", "2", "--grpc-listen", "127.0.0.1:0",
      ]);
    });

    after(async () => {
      for (const s of sockets) s.disconnect();
      // Let the server see the disconnects before SIGTERM: this test is about
      // the relay rules, not about draining live connections.
      await sleep(300);
      if (server) {
        const { code, signal } = await server.stop();
        assert.equal(code, 0, `switchboard exits cleanly on SIGTERM (code ${code}, signal ${signal})`);
      }
    });

    test("message goes to the whole namespace, sender included, with a timestamp", async () => {
      const [a, b, c] = [await connect(), await connect(), await connect()];
      const other = await connect("/chat");
      const got = [a, b, c].map((s) => collect(s, "message"));
      const otherGot = collect(other, "message");

      assert.deepEqual(await call(a, "message", { user: "alice", text: "hello", n: 1 }), { ok: true });
      for (const list of got) {
        await waitForCount(list, 1, "message");
        const [payload] = list[0];
        assertRecentTimestamp(payload.timestamp);
        // The seed: io.emit("message", { ...data, timestamp: Date.now() }).
        assert.deepEqual(payload, { user: "alice", text: "hello", n: 1, timestamp: payload.timestamp });
        assert.deepEqual(Object.keys(payload), ["user", "text", "n", "timestamp"]);
        assert.equal(list[0].length, 1, "one argument");
      }
      // Without an ack request, too.
      b.emit("message", { text: "no ack" });
      for (const list of got) await waitForCount(list, 2, "message");
      assert.equal(got[0][1][0].text, "no ack");
      // The server's timestamp wins over the client's, as in the seed's spread.
      c.emit("message", { text: "old", timestamp: 1 });
      for (const list of got) await waitForCount(list, 3, "message");
      assert.equal(got[1][2][0].text, "old");
      assertRecentTimestamp(got[1][2][0].timestamp);

      await fence(a, b, c, other);
      assert.equal(otherGot.length, 0, "another namespace hears nothing");
      for (const list of got) assert.equal(list.length, 3, "no duplicates");

      // The rule requires an object.
      assert.deepEqual(await call(a, "message", "just text"), {
        ok: false,
        error: "argument must be an object",
      });
    });

    test("join-room / leave-room notify the room's other members", async () => {
      const [a, b, c] = [await connect(), await connect(), await connect()];
      const joinedA = collect(a, "user-joined");
      const joinedB = collect(b, "user-joined");
      const joinedC = collect(c, "user-joined");
      const leftA = collect(a, "user-left");
      const leftB = collect(b, "user-left");

      assert.deepEqual(await call(a, "join-room", "lobby"), { ok: true, room: "lobby" });
      // The object form works too.
      assert.deepEqual(await call(b, "join-room", { room: "lobby" }), { ok: true, room: "lobby" });
      await waitForCount(joinedA, 1, "user-joined");
      // The seed: socket.to(room).emit("user-joined", { id: socket.id }).
      assert.deepEqual(joinedA[0], [{ id: b.id }]);

      // Joining again is a no-op: acked, nobody told.
      assert.deepEqual(await call(b, "join-room", "lobby"), { ok: true, room: "lobby" });

      assert.deepEqual(await call(b, "leave-room", "lobby"), { ok: true, room: "lobby" });
      await waitForCount(leftA, 1, "user-left");
      assert.deepEqual(leftA[0], [{ id: b.id }]);
      assert.deepEqual(await call(b, "leave-room", "lobby"), { ok: false, error: "not in room" });

      await fence(a, b, c);
      assert.equal(joinedA.length, 1, "A told once");
      assert.equal(joinedB.length, 0, "the joiner is not told about itself");
      assert.equal(joinedC.length, 0, "non-members are not told");
      assert.equal(leftB.length, 0, "the leaver is not told about itself");

      // Disconnecting leaves every room: the remaining members are told.
      const leftC = collect(c, "user-left");
      assert.deepEqual(await call(c, "join-room", "lobby"), { ok: true, room: "lobby" });
      const goneId = a.id;
      a.disconnect();
      await waitForCount(leftC, 1, "user-left after a disconnect");
      assert.deepEqual(leftC[0], [{ id: goneId }]);
    });

    test("room-message reaches the room's other members only, and only from a member", async () => {
      const [a, b, c] = [await connect(), await connect(), await connect()];
      assert.deepEqual(await call(a, "join-room", "room-1"), { ok: true, room: "room-1" });
      assert.deepEqual(await call(b, "join-room", "room-1"), { ok: true, room: "room-1" });
      const gotA = collect(a, "room-message");
      const gotB = collect(b, "room-message");
      const gotC = collect(c, "room-message");

      assert.deepEqual(await call(a, "room-message", { room: "room-1", message: "yo" }), { ok: true });
      await waitForCount(gotB, 1, "room-message");
      const [payload] = gotB[0];
      assert.equal(gotB[0].length, 1, "one argument");
      assertRecentTimestamp(payload.timestamp);
      assert.deepEqual(payload, { from: a.id, message: "yo", timestamp: payload.timestamp });
      assert.deepEqual(Object.keys(payload), ["from", "message", "timestamp"]);

      // A non-member is refused and nothing is relayed.
      assert.deepEqual(await call(c, "room-message", { room: "room-1", message: "intruder" }), {
        ok: false,
        error: "not in room",
      });
      // Missing fields are refused.
      assert.deepEqual(await call(a, "room-message", { message: "where?" }), {
        ok: false,
        error: '"room" must be a string',
      });
      assert.deepEqual(await call(a, "room-message", { room: "room-1" }), {
        ok: false,
        error: '"message" is required',
      });

      // After B leaves, it hears nothing more from the room.
      assert.deepEqual(await call(b, "leave-room", "room-1"), { ok: true, room: "room-1" });
      assert.deepEqual(await call(a, "room-message", { room: "room-1", message: "alone" }), { ok: true });

      await fence(a, b, c);
      assert.equal(gotA.length, 0, "the sender does not get its own room message");
      assert.equal(gotB.length, 1, "B got exactly the one message sent while it was a member");
      assert.equal(gotC.length, 0, "non-members get nothing");
    });

    test("bad room names and the per-socket room cap are refused", async () => {
      const [a, b] = [await connect(), await connect()];
      for (const bad of ["has space", "x".repeat(65), "", "é", 42, { room: 7 }, b.id]) {
        assert.deepEqual(
          await call(a, "join-room", bad),
          { ok: false, error: "invalid room name" },
          `join-room ${JSON.stringify(bad)}`,
        );
      }
      // A socket can never leave its own room (private messages still reach it).
      assert.deepEqual(await call(a, "leave-room", a.id), { ok: false, error: "invalid room name" });
      // Nor relay into another socket's room by calling it a room.
      assert.deepEqual(await call(a, "room-message", { room: b.id, message: "x" }), {
        ok: false,
        error: "invalid room name",
      });

      // maxRoomsPerSocket is 50 in the example.
      const joins = [];
      for (let i = 0; i < 50; i++) joins.push(call(a, "join-room", `cap-${i}`));
      for (const r of await Promise.all(joins)) assert.equal(r.ok, true);
      assert.deepEqual(await call(a, "join-room", "cap-50"), { ok: false, error: "too many rooms" });
      assert.deepEqual(await call(a, "leave-room", "cap-0"), { ok: true, room: "cap-0" });
      assert.deepEqual(await call(a, "join-room", "cap-50"), { ok: true, room: "cap-50" });
    });

    test("private-message reaches exactly the named socket, with the sender's name when known", async () => {
      const [a, b, c] = [await connect(), await connect(), await connect()];
      // userIdFromAuth: "username" in the example: the namespace knows this sender's name.
      const alice = await connect("/", { username: "alice" });
      const gotA = collect(a, "private-message");
      const gotB = collect(b, "private-message");
      const gotC = collect(c, "private-message");

      assert.deepEqual(await call(a, "private-message", { to: b.id, message: "psst" }), { ok: true });
      await waitForCount(gotB, 1, "private-message");
      // An anonymous sender: the seed's fromUser would be undefined, left out of the JSON.
      assert.deepEqual(gotB[0], [{ from: a.id, message: "psst" }]);

      assert.deepEqual(await call(alice, "private-message", { to: b.id, message: "hi b" }), { ok: true });
      await waitForCount(gotB, 2, "private-message");
      // The seed: io.to(to).emit("private-message", { from: socket.id, fromUser: socket.username, message }).
      assert.deepEqual(gotB[1], [{ from: alice.id, fromUser: "alice", message: "hi b" }]);
      assert.deepEqual(Object.keys(gotB[1][0]), ["from", "fromUser", "message"]);

      assert.deepEqual(await call(a, "private-message", { to: "nobody-here", message: "x" }), {
        ok: false,
        error: "unknown socket",
      });
      assert.deepEqual(await call(a, "private-message", { message: "to whom?" }), {
        ok: false,
        error: '"to" must be a string',
      });

      await fence(a, b, c);
      assert.equal(gotA.length, 0);
      assert.equal(gotB.length, 2);
      assert.equal(gotC.length, 0);
    });

    test("/chat: send-message becomes new-message {from, msg} for the namespace", async () => {
      const [a, b] = [await connect("/chat"), await connect("/chat")];
      const root = await connect("/");
      const gotA = collect(a, "new-message");
      const gotB = collect(b, "new-message");
      const gotRoot = collect(root, "new-message");

      assert.deepEqual(await call(a, "send-message", "hello chat"), { ok: true });
      await waitForCount(gotA, 1, "new-message");
      await waitForCount(gotB, 1, "new-message");
      assert.deepEqual(gotA[0], [{ from: a.id, msg: "hello chat" }]);
      assert.deepEqual(gotB[0], [{ from: a.id, msg: "hello chat" }]);

      // msg is the argument as sent, whatever it is (the seed: { from: socket.id, msg }).
      b.emit("send-message", { msg: "object form", n: 2 });
      await waitForCount(gotA, 2, "new-message");
      assert.deepEqual(gotA[1], [{ from: b.id, msg: { msg: "object form", n: 2 } }]);

      // "/" rules do not apply in /chat: message is not a /chat event.
      assert.deepEqual(await call(a, "message", { text: "x" }), { ok: false, error: "unknown event" });

      await fence(a, b, root);
      assert.equal(gotRoot.length, 0, "the / namespace hears nothing");
    });

    test("an event no rule names is ignored", async () => {
      const [a, b] = [await connect(), await connect()];
      const seen = [];
      b.onAny((event, ...args) => seen.push([event, ...args]));

      a.emit("whatever", { x: 1 });
      a.emit("room-messag", { room: "lobby", message: "typo" });
      assert.deepEqual(await call(a, "whatever", 1), { ok: false, error: "unknown event" });

      await fence(a, b);
      assert.deepEqual(seen, [], "nothing relayed");
      assert.ok(a.connected && b.connected, "nobody was disconnected");
    });
  });
}

// The seed's "Authentication middleware" recipe: a token names the user, and a private message
// carries the sender's name as fromUser. Here the token is a JWT whose `username` claim the
// namespace keeps (auth.claims); the rules are examples/chat.json's, unchanged.
describe("seed chat with JWT authentication", () => {
  const SECRET = "seed-chat-test-secret-0123456789abcdef";
  let server;
  const sockets = [];

  before(async () => {
    const config = JSON.parse(readFileSync(CONFIG, "utf8"));
    const root = config.namespaces["/"];
    delete root.userIdFromAuth; // exclusive with auth
    root.auth = {
      keys: [{ algorithms: ["HS256"], secretEnv: "SB_SEED_CHAT_JWT_SECRET" }],
      claims: ["username"],
    };
    process.env.SB_SEED_CHAT_JWT_SECRET = SECRET;
    server = await startStandalone(config, { threads: 2 });
  });

  after(async () => {
    for (const s of sockets) s.disconnect();
    await sleep(300);
    await server?.stop();
  });

  function connect(token) {
    const socket = io(server.url, {
      transports: ["websocket"],
      forceNew: true,
      reconnection: false,
      timeout: WAIT_MS,
      ...(token ? { auth: { token } } : {}),
    });
    sockets.push(socket);
    return withTimeout(
      new Promise((resolve) => {
        socket.once("connect", () => resolve({ socket }));
        socket.once("connect_error", (error) => resolve({ error }));
      }),
      WAIT_MS,
      "connect or connect_error",
    );
  }

  test("private-message: fromUser is the token's username, else its user id", async () => {
    // The seed's message when there is no token.
    const { error } = await connect();
    assert.equal(error?.message, "Authentication token required");

    const { socket: alice } = await connect(sign({ sub: "1", username: "alice" }, { key: SECRET }));
    const { socket: nameless } = await connect(sign({ sub: "2" }, { key: SECRET }));
    const { socket: b } = await connect(sign({ sub: "3", username: "bob" }, { key: SECRET }));
    assert.ok(alice && nameless && b, "the tokens are accepted");
    const got = collect(b, "private-message");

    assert.deepEqual(await call(alice, "private-message", { to: b.id, message: "hi" }), { ok: true });
    assert.deepEqual(await call(nameless, "private-message", { to: b.id, message: "hey" }), { ok: true });
    await waitForCount(got, 2, "private-message");
    const byFrom = new Map(got.map(([p]) => [p.from, p]));
    assert.deepEqual(byFrom.get(alice.id), { from: alice.id, fromUser: "alice", message: "hi" });
    assert.deepEqual(byFrom.get(nameless.id), { from: nameless.id, fromUser: "2", message: "hey" });
  });
});
