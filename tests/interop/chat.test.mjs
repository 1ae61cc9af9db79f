// The seed chat (examples/chat.json) served by `switchboard standalone`,
// driven by several official socket.io-client 4.8.x clients. Every behaviour
// checked here comes from the relay rules in the config file, none from code:
// namespace-wide relay with a server timestamp, room join / leave with
// notifications, room messages for members only, /chat's send-message,
// private messages to one socket, ack answers, and events no rule names.
// The server runs 2 shards so that relays cross threads.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { io } from "socket.io-client";

import { SOURCE_DIR, startServer } from "./lib/server.mjs";
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

    async function connect(nsp = "/") {
      const socket = io(server.url + nsp, {
        transports: [transport],
        forceNew: true,
        reconnection: false,
        timeout: WAIT_MS,
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

      assert.deepEqual(await call(a, "message", { text: "hello", n: 1 }), { ok: true });
      for (const list of got) {
        await waitForCount(list, 1, "message");
        const [payload] = list[0];
        assert.equal(payload.text, "hello");
        assert.equal(payload.n, 1);
        assertRecentTimestamp(payload.timestamp);
        assert.equal(list[0].length, 1, "one argument");
      }
      // Without an ack request, too.
      b.emit("message", { text: "no ack" });
      for (const list of got) await waitForCount(list, 2, "message");
      assert.equal(got[0][1][0].text, "no ack");

      await fence(a, b, c, other);
      assert.equal(otherGot.length, 0, "another namespace hears nothing");
      for (const list of got) assert.equal(list.length, 2, "no duplicates");

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
      assert.deepEqual(joinedA[0], [{ socketId: b.id, room: "lobby" }]);

      // Joining again is a no-op: acked, nobody told.
      assert.deepEqual(await call(b, "join-room", "lobby"), { ok: true, room: "lobby" });

      assert.deepEqual(await call(b, "leave-room", "lobby"), { ok: true, room: "lobby" });
      await waitForCount(leftA, 1, "user-left");
      assert.deepEqual(leftA[0], [{ socketId: b.id, room: "lobby" }]);
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
      assert.deepEqual(leftC[0], [{ socketId: goneId, room: "lobby" }]);
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
      assert.deepEqual(Object.keys(payload), ["from", "message", "timestamp"]);
      assert.equal(payload.from, a.id);
      assert.equal(payload.message, "yo");
      assertRecentTimestamp(payload.timestamp);

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

    test("private-message reaches exactly the named socket", async () => {
      const [a, b, c] = [await connect(), await connect(), await connect()];
      const gotA = collect(a, "private-message");
      const gotB = collect(b, "private-message");
      const gotC = collect(c, "private-message");

      assert.deepEqual(await call(a, "private-message", { to: b.id, message: "psst" }), { ok: true });
      await waitForCount(gotB, 1, "private-message");
      assert.deepEqual(gotB[0], [{ from: a.id, message: "psst" }]);

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
      assert.equal(gotB.length, 1);
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

      b.emit("send-message", { msg: "object form" });
      await waitForCount(gotA, 2, "new-message");
      assert.deepEqual(gotA[1], [{ from: b.id, msg: "object form" }]);

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
