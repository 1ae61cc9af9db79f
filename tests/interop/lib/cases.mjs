// The gRPC API cases shared by cluster.test.mjs (3 edges, 2 brokers over NATS)
// and standalone_api.test.mjs (one process, in-process bus): every target kind
// of Publish, acks, PublishStream, JoinRooms / LeaveRooms / DisconnectSockets,
// the read calls, WatchEvents and argument validation, each checked against
// what real socket.io-client clients receive and did.
//
// Each register*() adds one describe() block. It takes `env()`, called when
// the block's tests run, which returns:
//   { edges: [{ id, url }, ...],   clients are spread over these (round robin)
//     apis: [api, ...],            every API server (lib/api.mjs clients)
//     brokerIds: [id, ...],        what GetStats.broker_id says, per api
//     cluster: bool }              socket ids are "<edge-id>.<20 chars>"
// Every block leaves no client connected and waits until every API shows none.

import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";

import { argValue, binary, json, status } from "./api.mjs";
import { Clients, eventually, expectedSockets, expectedView, socketView } from "./cluster.mjs";
import { WAIT_MS, call, once, waitForCount } from "./wait.mjs";

/** After the expected deliveries arrived: how long to wait for unexpected ones. */
export const SETTLE_MS = 300;
/** How long the brokers may take to reflect what clients did. */
export const INDEX_WAIT_MS = 5_000;

// ------------------------------------------------------------------ helpers

function names(sockets) {
  return sockets.map((s) => s.name).sort();
}

/** Records `event` on each socket; stop() removes the listeners. */
export function record(sockets, event) {
  const got = new Map();
  const handlers = [];
  for (const s of sockets) {
    const list = [];
    got.set(s.name, list);
    const h = (...args) => {
      if (typeof args[args.length - 1] === "function") args.pop();
      list.push(args);
    };
    s.on(event, h);
    handlers.push([s, h]);
  }
  return {
    got,
    counts() {
      return Object.fromEntries([...got].map(([n, l]) => [n, l.length]));
    },
    stop() {
      for (const [s, h] of handlers) s.off(event, h);
    },
  };
}

/**
 * Runs `publish()`, waits until every socket of `expected` received `event`,
 * lets SETTLE_MS pass, and asserts that each of `expected` got it exactly
 * once and every other socket of `all` never. Resolves with
 * { result: publish()'s value, got: Map name → [args...] }.
 */
export async function expectDelivery({ all, expected, event, publish, settleMs = SETTLE_MS }) {
  const rec = record(all, event);
  try {
    const result = await publish();
    for (const s of expected) {
      await waitForCount(rec.got.get(s.name), 1, `"${event}" at client ${s.name}`);
    }
    await sleep(settleMs);
    const want = Object.fromEntries(all.map((s) => [s.name, expected.includes(s) ? 1 : 0]));
    assert.deepEqual(rec.counts(), want, `"${event}" reaches exactly ${JSON.stringify(names(expected))}, once each`);
    return { result, got: rec.got };
  } finally {
    rec.stop();
  }
}

/** Waits until every api lists exactly `sockets` (their meta) in ListSockets. */
export async function waitIndex(apis, sockets, what = "index", timeoutMs = INDEX_WAIT_MS) {
  const want = expectedSockets(sockets);
  await Promise.all(
    apis.map((api) =>
      eventually(
        async () => {
          const got = (await api.listAllSockets()).map(socketView);
          assert.deepEqual(got, want);
        },
        { timeoutMs, what: `${what} on API ${api.address}` },
      ),
    ),
  );
}

/** Waits until no api lists any socket (GetStats and ListSockets). */
export async function waitEmpty(apis, timeoutMs = INDEX_WAIT_MS) {
  await Promise.all(
    apis.map((api) =>
      eventually(
        async () => {
          const stats = await api.getStats();
          assert.equal(stats.totals.sockets, 0, "GetStats.totals.sockets");
          assert.deepEqual((await api.listAllSockets()).map((s) => s.id), [], "ListSockets");
        },
        { timeoutMs, what: `no sockets left on API ${api.address}` },
      ),
    ),
  );
}

/** A client joins `room` through the seed chat's `join-room` rule. */
export async function joinByRule(socket, room) {
  assert.deepEqual(await call(socket, "join-room", room), { ok: true, room }, `${socket.name} joins ${room}`);
  socket.meta.rooms.add(room);
}

/** Resolves with the reason of the socket's next "disconnect". */
export function disconnected(socket, ms = WAIT_MS) {
  return once(socket, "disconnect", ms).then(([reason]) => reason);
}

export async function assertGrpcError(promise, code, what) {
  await assert.rejects(promise, (err) => {
    assert.equal(err.code, code, `${what}: expected status ${code}, got ${err.code} (${err.details ?? err.message})`);
    return true;
  });
}

function assertBuffer(value, expected, what) {
  assert.ok(Buffer.isBuffer(value), `${what}: expected a Buffer, got ${Object.prototype.toString.call(value)}`);
  assert.deepEqual(value, Buffer.from(expected), what);
}

function assertSocketId(env, socket) {
  assert.ok(typeof socket.id === "string" && socket.id.length > 0, `${socket.name} has an id`);
  if (env.cluster) {
    const prefix = `${socket.meta.edge}.`;
    assert.ok(
      socket.id.startsWith(prefix) && socket.id.length === prefix.length + 20,
      `socket id ${socket.id} is "<edge-id>.<20 chars>" with edge ${socket.meta.edge}`,
    );
  }
}

// Distinct-count helpers for GetStats expectations.
function counts(sockets) {
  const users = new Set(sockets.map((s) => s.meta.userId).filter(Boolean));
  const rooms = new Set(sockets.flatMap((s) => [...s.meta.rooms].map((r) => `${s.meta.nsp}\u0000${r}`)));
  return { sockets: sockets.length, users: users.size, rooms: rooms.size };
}

function pick(c) {
  return { sockets: c.sockets, users: c.users, rooms: c.rooms };
}

// ---------------------------------------------------------------- population
//
// name  edge  transport  user  namespace  rooms
//  a     0    websocket   u1    /          red, blue
//  b     1    polling     u1    /          red
//  c     2    websocket   u2    /          blue
//  d     0    polling     -     /          green
//  e     1    websocket   -     /          -
//  f     2    polling     u3    /          red, green
//  g     0    websocket   u1    /admin     red
//  h     2    polling     -     /admin     blue
const POPULATION = [
  { name: "a", edge: 0, transport: "websocket", userId: "u1", nsp: "/", rooms: ["red", "blue"] },
  { name: "b", edge: 1, transport: "polling", userId: "u1", nsp: "/", rooms: ["red"] },
  { name: "c", edge: 2, transport: "websocket", userId: "u2", nsp: "/", rooms: ["blue"] },
  { name: "d", edge: 0, transport: "polling", nsp: "/", rooms: ["green"] },
  { name: "e", edge: 1, transport: "websocket", nsp: "/", rooms: [] },
  { name: "f", edge: 2, transport: "polling", userId: "u3", nsp: "/", rooms: ["red", "green"] },
  { name: "g", edge: 0, transport: "websocket", userId: "u1", nsp: "/admin", rooms: ["red"] },
  { name: "h", edge: 2, transport: "polling", nsp: "/admin", rooms: ["blue"] },
];

function edgeOf(env, i) {
  return env.edges[i % env.edges.length];
}

async function connectSpec(env, clients, spec) {
  const edge = edgeOf(env, spec.edge);
  const s = await clients.connect({ ...spec, url: edge.url, edge: edge.id });
  assertSocketId(env, s);
  for (const room of spec.rooms ?? []) await joinByRule(s, room);
  return s;
}

// ------------------------------------------------------------------ delivery

export function registerDeliveryTests(env) {
  describe("Publish: every target kind reaches exactly the right clients, once", () => {
    const clients = new Clients();
    const c = {};
    let all;
    let apis;
    // Spread the calls over the API servers.
    let turn = 0;
    const api = () => apis[turn++ % apis.length];

    before(async () => {
      apis = env().apis;
      for (const spec of POPULATION) c[spec.name] = await connectSpec(env(), clients, spec);
      all = Object.values(c);
      await waitIndex(apis, all, "every client and room in the index");
    });

    after(async () => {
      clients.closeAll();
      await waitEmpty(apis);
    });

    test("a room", async () => {
      const { result } = await expectDelivery({
        all,
        expected: [c.a, c.b, c.f],
        event: "to-room",
        publish: () => api().publish({ target: { rooms: ["red"] }, event: "to-room", args: [json({ n: 1 })] }),
      });
      assert.equal(result.recipients, 3, "PublishResponse.recipients");
      assert.deepEqual(result.acks, [], "no acks without ack_timeout_ms");
    });

    test("several rooms: a member of two gets it once", async () => {
      const { result, got } = await expectDelivery({
        all,
        expected: [c.a, c.b, c.c, c.f],
        event: "to-rooms",
        publish: () => api().publish({ target: { namespace: "/", rooms: ["red", "blue"] }, event: "to-rooms", args: [json("x")] }),
      });
      assert.equal(result.recipients, 4);
      assert.deepEqual(got.get("a"), [["x"]]);
    });

    test("the whole namespace (no room, socket or user)", async () => {
      const { result, got } = await expectDelivery({
        all,
        expected: [c.a, c.b, c.c, c.d, c.e, c.f],
        event: "to-ns",
        publish: () => api().publish({ target: { namespace: "/" }, event: "to-ns", args: [json({ all: true }), json(7)] }),
      });
      assert.equal(result.recipients, 6);
      for (const list of got.values()) for (const args of list) assert.deepEqual(args, [{ all: true }, 7]);
    });

    test("an empty namespace means /", async () => {
      await expectDelivery({
        all,
        expected: [c.a, c.b, c.c, c.d, c.e, c.f],
        event: "to-default-ns",
        publish: () => api().publish({ target: {}, event: "to-default-ns", args: [] }),
      });
    });

    test("socket ids (on remote edges; one of another namespace is not matched)", async () => {
      const { result } = await expectDelivery({
        all,
        expected: [c.c],
        event: "to-socket",
        publish: () => api().publish({ target: { socket_ids: [c.c.id] }, event: "to-socket", args: [json(1)] }),
      });
      assert.equal(result.recipients, 1);
      const two = await expectDelivery({
        all,
        expected: [c.b, c.f],
        event: "to-sockets",
        publish: () =>
          api().publish({ target: { namespace: "/", socket_ids: [c.b.id, c.f.id, c.g.id] }, event: "to-sockets", args: [] }),
      });
      assert.equal(two.result.recipients, 2, "g is in /admin, not in /");
    });

    test("a user with sockets on two edges (only in the target's namespace)", async () => {
      const { result } = await expectDelivery({
        all,
        expected: [c.a, c.b],
        event: "to-user",
        publish: () => api().publish({ target: { user_ids: ["u1"] }, event: "to-user", args: [json("hi u1")] }),
      });
      assert.equal(result.recipients, 2);
      await expectDelivery({
        all,
        expected: [c.g],
        event: "to-user-admin",
        publish: () => api().publish({ target: { namespace: "/admin", user_ids: ["u1"] }, event: "to-user-admin", args: [] }),
      });
    });

    test("rooms, users and socket ids together: the union, once each", async () => {
      const { result } = await expectDelivery({
        all,
        expected: [c.c, c.d, c.e, c.f],
        event: "to-union",
        publish: () =>
          api().publish({
            target: { rooms: ["green"], user_ids: ["u2", "u3"], socket_ids: [c.e.id, c.f.id] },
            event: "to-union",
            args: [json(0)],
          }),
      });
      assert.equal(result.recipients, 4);
    });

    test("except rooms", async () => {
      const ns = await expectDelivery({
        all,
        expected: [c.c, c.d, c.e],
        event: "except-room-ns",
        publish: () => api().publish({ target: { namespace: "/", except_rooms: ["red"] }, event: "except-room-ns", args: [] }),
      });
      assert.equal(ns.result.recipients, 3);
      const rooms = await expectDelivery({
        all,
        expected: [c.c, c.d],
        event: "except-room-rooms",
        publish: () =>
          api().publish({ target: { rooms: ["blue", "green"], except_rooms: ["red"] }, event: "except-room-rooms", args: [] }),
      });
      assert.equal(rooms.result.recipients, 2);
    });

    test("except socket ids", async () => {
      const room = await expectDelivery({
        all,
        expected: [c.a, c.f],
        event: "except-socket-room",
        publish: () =>
          api().publish({ target: { rooms: ["red"], except_socket_ids: [c.b.id] }, event: "except-socket-room", args: [] }),
      });
      assert.equal(room.result.recipients, 2);
      await expectDelivery({
        all,
        expected: [c.b],
        event: "except-socket-user",
        publish: () =>
          api().publish({ target: { user_ids: ["u1"], except_socket_ids: [c.a.id] }, event: "except-socket-user", args: [] }),
      });
      await expectDelivery({
        all,
        expected: [c.a, c.c, c.e],
        event: "except-both",
        publish: () =>
          api().publish({
            target: { except_socket_ids: [c.b.id], except_rooms: ["green"] },
            event: "except-both",
            args: [],
          }),
      });
    });

    test("a namespace other than /", async () => {
      const { result } = await expectDelivery({
        all,
        expected: [c.g, c.h],
        event: "to-admin",
        publish: () => api().publish({ target: { namespace: "/admin" }, event: "to-admin", args: [json({ x: 1 })] }),
      });
      assert.equal(result.recipients, 2);
      // Same room name as in /: only /admin's member.
      await expectDelivery({
        all,
        expected: [c.g],
        event: "to-admin-room",
        publish: () => api().publish({ target: { namespace: "/admin", rooms: ["red"] }, event: "to-admin-room", args: [] }),
      });
      await expectDelivery({
        all,
        expected: [c.h],
        event: "to-admin-socket",
        publish: () => api().publish({ target: { namespace: "/admin", socket_ids: [c.h.id] }, event: "to-admin-socket", args: [] }),
      });
    });

    test("a room nobody is in reaches nobody", async () => {
      const { result } = await expectDelivery({
        all,
        expected: [],
        event: "to-empty-room",
        publish: () => api().publish({ target: { rooms: ["no-such-room"] }, event: "to-empty-room", args: [] }),
        settleMs: 500,
      });
      assert.equal(result.recipients, 0);
    });

    test("binary arguments arrive as Buffers with the same bytes, in order with JSON ones", async () => {
      const bytes = Buffer.concat([Buffer.from([0, 255, 1, 254]), randomBytes(300)]);
      const small = Buffer.from([42]);
      const { got } = await expectDelivery({
        all,
        expected: [c.a, c.c, c.h],
        event: "bin",
        publish: () =>
          api().publish({
            // c and a over WebSocket, h over polling (a binary attachment is base64 there).
            target: { namespace: "/", rooms: ["blue"] },
            event: "bin",
            args: [json({ kind: "bin" }), binary(bytes), json("tail"), binary(small)],
          }).then(() =>
            api().publish({ target: { namespace: "/admin", rooms: ["blue"] }, event: "bin", args: [binary(bytes)] }),
          ),
      });
      for (const name of ["a", "c"]) {
        const [args] = got.get(name);
        assert.equal(args.length, 4, `${name}: 4 arguments`);
        assert.deepEqual(args[0], { kind: "bin" });
        assertBuffer(args[1], bytes, `${name}: first attachment`);
        assert.equal(args[2], "tail");
        assertBuffer(args[3], small, `${name}: second attachment`);
      }
      const [hArgs] = got.get("h");
      assert.equal(hArgs.length, 1);
      assertBuffer(hArgs[0], bytes, "h (polling): attachment");
    });

    test("acks are collected from clients on several edges", async () => {
      const asked = record(all, "ask");
      const answers = {
        a: (cb, arg) => cb({ who: "a", got: arg }),
        b: (cb) => cb("b", 2),
        f: (cb) => cb(Buffer.from([9, 8, 7])),
      };
      const handlers = Object.entries(answers).map(([name, answer]) => {
        const h = (arg, cb) => answer(cb, arg);
        c[name].on("ask", h);
        return [c[name], h];
      });
      try {
        const res = await api().publishWithAcks({
          target: { rooms: ["red"] },
          event: "ask",
          args: [json({ q: 1 })],
          ack_timeout_ms: 2000,
        });
        assert.equal(res.recipients, 3, "recipients");
        const byId = Object.fromEntries(res.acks.map((a) => [a.socket_id, a]));
        assert.deepEqual(Object.keys(byId).sort(), [c.a.id, c.b.id, c.f.id].sort(), "one Ack per recipient");
        assert.equal(res.acks.length, 3);
        for (const a of res.acks) assert.equal(a.error, "", `ack of ${a.socket_id} has no error`);
        assert.deepEqual(byId[c.a.id].args.map(argValue), [{ who: "a", got: { q: 1 } }]);
        assert.deepEqual(byId[c.b.id].args.map(argValue), ["b", 2]);
        const fArgs = byId[c.f.id].args;
        assert.equal(fArgs.length, 1);
        assert.equal(fArgs[0].value, "binary", "a Buffer in an ack comes back as a binary Argument");
        assertBuffer(argValue(fArgs[0]), [9, 8, 7], "f's ack");
        await sleep(SETTLE_MS);
        assert.deepEqual(
          asked.counts(),
          Object.fromEntries(all.map((s) => [s.name, ["a", "b", "f"].includes(s.name) ? 1 : 0])),
          "each recipient asked once",
        );
      } finally {
        asked.stop();
        for (const [s, h] of handlers) s.off("ask", h);
      }
    });

    test("a client that does not answer is reported as \"timeout\"", async () => {
      const hF = (...args) => args.pop()("f"); // the event has no arguments: the ack callback is the only one
      const hD = () => {}; // never answers
      c.f.on("ask2", hF);
      c.d.on("ask2", hD);
      try {
        const started = Date.now();
        const res = await api().publishWithAcks({
          target: { rooms: ["green"] },
          event: "ask2",
          args: [],
          ack_timeout_ms: 1000,
        });
        const elapsed = Date.now() - started;
        assert.ok(elapsed >= 900, `the call waited for the ack timeout (${elapsed} ms)`);
        assert.equal(res.recipients, 2);
        const byId = Object.fromEntries(res.acks.map((a) => [a.socket_id, a]));
        assert.deepEqual(Object.keys(byId).sort(), [c.d.id, c.f.id].sort());
        assert.equal(byId[c.f.id].error, "");
        assert.deepEqual(byId[c.f.id].args.map(argValue), ["f"]);
        assert.equal(byId[c.d.id].error, "timeout");
        assert.deepEqual(byId[c.d.id].args, []);
      } finally {
        c.f.off("ask2", hF);
        c.d.off("ask2", hD);
      }
    });

    test("PublishStream: every targeted client receives all N events, in order", async () => {
      const N = 50;
      const rec = record(all, "seq");
      try {
        // Even i: room red (a, b, f); odd i: room red + user u2 (adds c).
        const requests = Array.from({ length: N }, (_, i) => ({
          target: { rooms: ["red"], ...(i % 2 ? { user_ids: ["u2"] } : {}) },
          event: "seq",
          args: [json({ i })],
        }));
        const res = await api().publishStream(requests);
        assert.equal(res.accepted, N, "PublishStreamResponse.accepted");
        assert.equal(res.recipients, 3 * N + N / 2, "PublishStreamResponse.recipients");
        for (const s of [c.a, c.b, c.f]) await waitForCount(rec.got.get(s.name), N, `"seq" at ${s.name}`);
        await waitForCount(rec.got.get("c"), N / 2, `"seq" at c`);
        await sleep(SETTLE_MS);
        assert.deepEqual(rec.counts(), { a: N, b: N, c: N / 2, d: 0, e: 0, f: N, g: 0, h: 0 });
        for (const name of ["a", "b", "f"]) {
          assert.deepEqual(
            rec.got.get(name).map((args) => args[0].i),
            Array.from({ length: N }, (_, i) => i),
            `${name} got every event in order`,
          );
        }
        assert.deepEqual(
          rec.got.get("c").map((args) => args[0].i),
          Array.from({ length: N / 2 }, (_, i) => 2 * i + 1),
          "c (by user) got the odd ones, in order",
        );
      } finally {
        rec.stop();
      }
    });

    // ------------------------------------------------------------- reads

    test("GetStats: totals, per edge, per namespace", async () => {
      const e = env();
      for (const [i, a] of apis.entries()) {
        const stats = await a.getStats();
        assert.equal(stats.broker_id, e.brokerIds[i], "broker_id");
        assert.deepEqual(pick(stats.totals), counts(all), "totals");
        const edgeIds = [...new Set(e.edges.map((x) => x.id))].sort();
        assert.deepEqual(stats.edges.map((x) => x.edge_id), edgeIds, "one entry per edge, sorted");
        for (const es of stats.edges) {
          const mine = all.filter((s) => s.meta.edge === es.edge_id);
          assert.deepEqual(pick(es.counts), counts(mine), `counts of edge ${es.edge_id}`);
          assert.ok(es.last_seq > 0, `edge ${es.edge_id}: last_seq ${es.last_seq} > 0`);
          assert.ok(es.last_heartbeat && es.last_heartbeat.seconds > 0, `edge ${es.edge_id}: last_heartbeat set`);
          assert.ok(Math.abs(Date.now() / 1000 - es.last_heartbeat.seconds) < 60, "last_heartbeat is recent");
        }
        assert.deepEqual(
          stats.namespaces.map((n) => [n.namespace, pick(n.counts)]),
          [
            ["/", counts(all.filter((s) => s.meta.nsp === "/"))],
            ["/admin", counts(all.filter((s) => s.meta.nsp === "/admin"))],
          ],
          "namespaces, sorted",
        );
      }
      // The clients sent packets (joins, acks) and received events: the
      // edges' counters say so by their next heartbeat.
      for (const a of apis) {
        await eventually(
          async () => {
            const stats = await a.getStats();
            for (const es of stats.edges) {
              assert.ok(es.counts.messages_in > 0, `edge ${es.edge_id} messages_in ${es.counts.messages_in}`);
              assert.ok(es.counts.messages_out > 0, `edge ${es.edge_id} messages_out ${es.counts.messages_out}`);
            }
            const sum = (k) => stats.edges.reduce((n, x) => n + x.counts[k], 0);
            assert.equal(stats.totals.messages_in, sum("messages_in"), "totals.messages_in = sum over edges");
            assert.equal(stats.totals.messages_out, sum("messages_out"), "totals.messages_out = sum over edges");
          },
          { timeoutMs: 8000, what: "message counters" },
        );
      }
    });

    test("ListSockets: every socket with edge, user, rooms, transport, address, time; filters; pages", async () => {
      const want = expectedSockets(all);
      for (const a of apis) {
        const page = await a.listSockets({});
        assert.equal(page.next_page_token, "", "8 sockets fit the default page");
        assert.deepEqual(page.sockets.map(socketView), want, "sockets, ordered by id");
        for (const info of page.sockets) {
          assert.match(info.remote_address, /^127\.0\.0\.1$/, "remote_address");
          assert.ok(info.connected_at, "connected_at set");
          const age = Date.now() / 1000 - info.connected_at.seconds;
          assert.ok(age >= -5 && age < 120, `connected_at is recent (${age} s ago)`);
        }

        const only = async (request, sockets, what) =>
          assert.deepEqual((await a.listAllSockets(request)).map(socketView), expectedSockets(sockets), what);
        await only({ namespace: "/" }, all.filter((s) => s.meta.nsp === "/"), "namespace /");
        await only({ namespace: "/admin" }, [c.g, c.h], "namespace /admin");
        await only({ namespace: "/", room: "red" }, [c.a, c.b, c.f], "room red of /");
        await only({ namespace: "/admin", room: "red" }, [c.g], "room red of /admin");
        await only({ user_id: "u1" }, [c.a, c.b, c.g], "user u1");
        await only({ namespace: "/", user_id: "u1" }, [c.a, c.b], "user u1 in /");
        await only({ user_id: "nobody" }, [], "unknown user");

        // Pages of 3: 3 + 3 + 2, in order, nothing repeated.
        const pages = [];
        let page_token = "";
        do {
          const p = await a.listSockets({ page_size: 3, page_token });
          pages.push(p.sockets.map(socketView));
          page_token = p.next_page_token;
          assert.ok(pages.length <= 3, "at most 3 pages");
        } while (page_token);
        assert.deepEqual(pages.map((p) => p.length), [3, 3, 2], "page sizes");
        assert.deepEqual(pages.flat(), want, "pages concatenated = the whole list");
      }
    });

    test("ListRooms: member counts, namespace and prefix filters, pages", async () => {
      const want = [
        { namespace: "/", name: "blue", members: 2 },
        { namespace: "/", name: "green", members: 2 },
        { namespace: "/", name: "red", members: 3 },
        { namespace: "/admin", name: "blue", members: 1 },
        { namespace: "/admin", name: "red", members: 1 },
      ];
      for (const a of apis) {
        const page = await a.listRooms({});
        assert.deepEqual(page.rooms, want, "rooms, ordered by (namespace, name)");
        assert.equal(page.next_page_token, "");
        assert.deepEqual((await a.listAllRooms({ namespace: "/" })), want.slice(0, 3), "namespace /");
        assert.deepEqual((await a.listAllRooms({ prefix: "r" })), [want[2], want[4]], "prefix r");
        assert.deepEqual((await a.listAllRooms({ namespace: "/", prefix: "gr" })), [want[1]], "/ + prefix gr");
        assert.deepEqual((await a.listAllRooms({ prefix: "zzz" })), [], "no match");
        const sizes = [];
        const rooms = [];
        let page_token = "";
        do {
          const p = await a.listRooms({ page_size: 2, page_token });
          sizes.push(p.rooms.length);
          rooms.push(...p.rooms);
          page_token = p.next_page_token;
          assert.ok(sizes.length <= 3, "at most 3 pages");
        } while (page_token);
        assert.deepEqual(sizes, [2, 2, 1], "page sizes");
        assert.deepEqual(rooms, want, "pages concatenated");
      }
    });

    test("GetPresence: online users and their sockets, namespace filter", async () => {
      for (const a of apis) {
        const u1 = await a.getPresence({ user_id: "u1" });
        assert.equal(u1.online, true);
        assert.deepEqual(u1.sockets.map(socketView), expectedSockets([c.a, c.b, c.g]), "u1 everywhere");
        const u1admin = await a.getPresence({ user_id: "u1", namespace: "/admin" });
        assert.deepEqual(u1admin.sockets.map(socketView), [expectedView(c.g)], "u1 in /admin");
        assert.equal(u1admin.online, true);
        const u3 = await a.getPresence({ user_id: "u3" });
        assert.deepEqual(u3.sockets.map(socketView), [expectedView(c.f)]);
        const u3admin = await a.getPresence({ user_id: "u3", namespace: "/admin" });
        assert.equal(u3admin.online, false, "u3 is not in /admin");
        assert.deepEqual(u3admin.sockets, []);
        const nobody = await a.getPresence({ user_id: "nobody" });
        assert.equal(nobody.online, false);
        assert.deepEqual(nobody.sockets, []);
      }
    });
  });
}

// ------------------------------------------------------------------ commands

export function registerCommandTests(env) {
  describe("JoinRooms / LeaveRooms / DisconnectSockets act on sockets wherever they are", () => {
    let clients;
    let apis;
    let turn = 0;
    const api = () => apis[turn++ % apis.length];

    before(() => {
      apis = env().apis;
    });

    // x: edge 0 user u7; y: edge 1 anonymous (polling); z: edge 2 user u7; w: edge 1.
    async function population() {
      clients = new Clients();
      const s = {
        x: await connectSpec(env(), clients, { name: "x", edge: 0, transport: "websocket", userId: "u7" }),
        y: await connectSpec(env(), clients, { name: "y", edge: 1, transport: "polling" }),
        z: await connectSpec(env(), clients, { name: "z", edge: 2, transport: "websocket", userId: "u7" }),
        w: await connectSpec(env(), clients, { name: "w", edge: 1, transport: "websocket" }),
      };
      await waitIndex(apis, Object.values(s), "the command clients in the index");
      return s;
    }

    afterEach(async () => {
      clients?.closeAll();
      clients = null;
      await waitEmpty(apis);
    });

    test("JoinRooms by socket id, by user and by room; publishes then reach the new members", async () => {
      const s = await population();
      const all = Object.values(s);

      // By socket id, on two edges.
      const bySocket = await api().joinRooms({ selector: { socket_ids: [s.x.id, s.z.id] }, rooms: ["cmd-a"] });
      assert.equal(bySocket.matched_sockets, 2);
      s.x.meta.rooms.add("cmd-a");
      s.z.meta.rooms.add("cmd-a");
      await waitIndex(apis, all, "x and z in cmd-a");
      await expectDelivery({
        all,
        expected: [s.x, s.z],
        event: "cmd-a-1",
        publish: () => api().publish({ target: { rooms: ["cmd-a"] }, event: "cmd-a-1", args: [] }),
      });

      // By user: both of u7's sockets, two rooms at once.
      const byUser = await api().joinRooms({ selector: { namespace: "/", user_ids: ["u7"] }, rooms: ["cmd-u", "cmd-v"] });
      assert.equal(byUser.matched_sockets, 2);
      for (const k of ["x", "z"]) {
        s[k].meta.rooms.add("cmd-u");
        s[k].meta.rooms.add("cmd-v");
      }
      await waitIndex(apis, all, "u7's sockets in cmd-u and cmd-v");
      await expectDelivery({
        all,
        expected: [s.x, s.z],
        event: "cmd-uv",
        publish: () => api().publish({ target: { rooms: ["cmd-u", "cmd-v"] }, event: "cmd-uv", args: [] }),
      });

      // By room: cmd-a's members (x, z) and y by socket id join cmd-b.
      const byRoom = await api().joinRooms({ selector: { rooms: ["cmd-a"], socket_ids: [s.y.id] }, rooms: ["cmd-b"] });
      assert.equal(byRoom.matched_sockets, 3);
      for (const k of ["x", "y", "z"]) s[k].meta.rooms.add("cmd-b");
      await waitIndex(apis, all, "x, y, z in cmd-b");
      await expectDelivery({
        all,
        expected: [s.x, s.y, s.z],
        event: "cmd-b-1",
        publish: () => api().publish({ target: { rooms: ["cmd-b"] }, event: "cmd-b-1", args: [] }),
      });

      // Every socket of the namespace.
      const everyone = await api().joinRooms({ selector: { all_sockets: true }, rooms: ["cmd-all"] });
      assert.equal(everyone.matched_sockets, 4);
      for (const x of all) x.meta.rooms.add("cmd-all");
      await waitIndex(apis, all, "everyone in cmd-all");
      for (const a of apis) {
        const rooms = await a.listAllRooms({ namespace: "/", prefix: "cmd-" });
        assert.deepEqual(
          rooms.map((r) => [r.name, r.members]),
          [["cmd-a", 2], ["cmd-all", 4], ["cmd-b", 3], ["cmd-u", 2], ["cmd-v", 2]],
        );
      }
    });

    test("LeaveRooms by socket id, by user and by room; publishes no longer reach them", async () => {
      const s = await population();
      const all = Object.values(s);
      await api().joinRooms({ selector: { socket_ids: [s.x.id, s.y.id, s.z.id] }, rooms: ["lv-a", "lv-b"] });
      for (const k of ["x", "y", "z"]) ["lv-a", "lv-b"].forEach((r) => s[k].meta.rooms.add(r));
      await waitIndex(apis, all, "x, y, z in lv-a and lv-b");

      // By socket id (z, on edge 2).
      const bySocket = await api().leaveRooms({ selector: { socket_ids: [s.z.id] }, rooms: ["lv-a"] });
      assert.equal(bySocket.matched_sockets, 1);
      s.z.meta.rooms.delete("lv-a");
      await waitIndex(apis, all, "z left lv-a");
      await expectDelivery({
        all,
        expected: [s.x, s.y],
        event: "lv-1",
        publish: () => api().publish({ target: { rooms: ["lv-a"] }, event: "lv-1", args: [] }),
      });

      // By user (u7 = x and z) from lv-b.
      const byUser = await api().leaveRooms({ selector: { user_ids: ["u7"] }, rooms: ["lv-b"] });
      assert.equal(byUser.matched_sockets, 2);
      s.x.meta.rooms.delete("lv-b");
      s.z.meta.rooms.delete("lv-b");
      await waitIndex(apis, all, "u7 left lv-b");
      await expectDelivery({
        all,
        expected: [s.y],
        event: "lv-2",
        publish: () => api().publish({ target: { rooms: ["lv-b"] }, event: "lv-2", args: [] }),
      });

      // By room: every member of lv-a (x, y) leaves lv-a.
      const byRoom = await api().leaveRooms({ selector: { rooms: ["lv-a"] }, rooms: ["lv-a"] });
      assert.equal(byRoom.matched_sockets, 2);
      s.x.meta.rooms.delete("lv-a");
      s.y.meta.rooms.delete("lv-a");
      await waitIndex(apis, all, "lv-a is empty");
      const { result } = await expectDelivery({
        all,
        expected: [],
        event: "lv-3",
        settleMs: 500,
        publish: () => api().publish({ target: { rooms: ["lv-a"] }, event: "lv-3", args: [] }),
      });
      assert.equal(result.recipients, 0);
      for (const a of apis) {
        assert.deepEqual(
          (await a.listAllRooms({ prefix: "lv-" })).map((r) => [r.name, r.members]),
          [["lv-b", 1]],
          "lv-a is gone from ListRooms",
        );
      }
    });

    test("DisconnectSockets by socket id, by user and by room: the clients see it, the index drops them", async () => {
      const s = await population();

      // By socket id: y on edge 1.
      let reason = disconnected(s.y);
      const bySocket = await api().disconnectSockets({ selector: { socket_ids: [s.y.id] } });
      assert.equal(bySocket.matched_sockets, 1);
      assert.equal(await reason, "io server disconnect", "y's disconnect reason");
      await waitIndex(apis, [s.x, s.z, s.w], "y is gone");

      // By user: u7 has x (edge 0) and z (edge 2).
      const reasons = [disconnected(s.x), disconnected(s.z)];
      const byUser = await api().disconnectSockets({ selector: { user_ids: ["u7"] } });
      assert.equal(byUser.matched_sockets, 2);
      assert.deepEqual(await Promise.all(reasons), ["io server disconnect", "io server disconnect"]);
      await waitIndex(apis, [s.w], "u7's sockets are gone");
      for (const a of apis) {
        assert.deepEqual(await a.getPresence({ user_id: "u7" }), { online: false, sockets: [] }, "u7 offline");
      }

      // By room: w joins dc-room, then the room is disconnected.
      await joinByRule(s.w, "dc-room");
      await waitIndex(apis, [s.w], "w in dc-room");
      reason = disconnected(s.w);
      const byRoom = await api().disconnectSockets({ selector: { rooms: ["dc-room"] } });
      assert.equal(byRoom.matched_sockets, 1);
      assert.equal(await reason, "io server disconnect");
      await waitIndex(apis, [], "every socket gone");
    });

    test("DisconnectSockets close=false leaves the connection's other namespaces; close=true ends them all", async () => {
      clients = new Clients();
      const e = env();
      const edge = edgeOf(e, 2);
      const m = clients.manager(edge.url, "websocket");
      const main = await clients.socketOn(m, { name: "main", edge: edge.id, nsp: "/", userId: "u8" });
      const admin = await clients.socketOn(m, { name: "admin", edge: edge.id, nsp: "/admin", userId: "u8" });
      await waitIndex(apis, [main, admin], "both namespaces of one connection");

      const adminGone = disconnected(admin);
      const r1 = await api().disconnectSockets({ selector: { namespace: "/admin", socket_ids: [admin.id] }, close: false });
      assert.equal(r1.matched_sockets, 1);
      assert.equal(await adminGone, "io server disconnect");
      await waitIndex(apis, [main], "only /admin's socket is gone");
      await sleep(SETTLE_MS);
      assert.equal(main.connected, true, "the / socket of the same connection stays");

      // A new /admin socket on the same connection, then close=true on /.
      const admin2 = await clients.socketOn(m, { name: "admin2", edge: edge.id, nsp: "/admin", userId: "u8" });
      await waitIndex(apis, [main, admin2], "a new /admin socket");
      const gone = [disconnected(main), disconnected(admin2)];
      const engineClosed = once(m, "close");
      const r2 = await api().disconnectSockets({ selector: { user_ids: ["u8"] }, close: true });
      assert.equal(r2.matched_sockets, 1, "u8 has one socket in /");
      // Both namespaces end (by a DISCONNECT packet or by the transport closing).
      for (const reason of await Promise.all(gone)) {
        assert.ok(["io server disconnect", "transport close"].includes(reason), `disconnect reason ${reason}`);
      }
      await engineClosed;
      await waitIndex(apis, [], "both sockets gone");
    });
  });
}

// --------------------------------------------------------------- validation

export function registerValidationTests(env) {
  describe("invalid requests are INVALID_ARGUMENT", () => {
    test("selectors, targets, events, arguments, filters", async () => {
      const IA = status.INVALID_ARGUMENT;
      for (const api of env().apis) {
        await assertGrpcError(api.disconnectSockets({ selector: {} }), IA, "empty selector");
        await assertGrpcError(api.joinRooms({ selector: {}, rooms: ["r"] }), IA, "JoinRooms with an empty selector");
        await assertGrpcError(
          api.disconnectSockets({ selector: { all_sockets: true, rooms: ["r"] } }),
          IA,
          "all_sockets with another criterion",
        );
        await assertGrpcError(api.joinRooms({ selector: { rooms: ["r"] }, rooms: [] }), IA, "JoinRooms without rooms");
        await assertGrpcError(api.leaveRooms({ selector: { rooms: ["r"] }, rooms: [] }), IA, "LeaveRooms without rooms");
        await assertGrpcError(api.publish({ target: {}, event: "", args: [] }), IA, "empty event name");
        for (const reserved of ["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"]) {
          await assertGrpcError(api.publish({ target: {}, event: reserved, args: [] }), IA, `reserved event ${reserved}`);
        }
        await assertGrpcError(api.publish({ target: {}, event: "e", args: [{ json: "{" }] }), IA, "argument not JSON");
        await assertGrpcError(api.publish({ target: {}, event: "e", args: [{}] }), IA, "unset Argument");
        await assertGrpcError(
          api.publish({ target: {}, event: "e", args: [], volatile: true, ack_timeout_ms: 100 }),
          IA,
          "volatile with acks",
        );
        await assertGrpcError(
          api.publishStream([{ target: {}, event: "e", args: [], ack_timeout_ms: 100 }]),
          IA,
          "PublishStream with ack_timeout_ms",
        );
        await assertGrpcError(api.listSockets({ room: "r" }), IA, "ListSockets room without namespace");
        await assertGrpcError(api.listSockets({ page_token: "not-ours" }), IA, "page token not issued by us");
        await assertGrpcError(api.getPresence({ user_id: "" }), IA, "GetPresence without user");
      }
    });
  });
}

// ------------------------------------------------------------------ watching

export function registerWatchTests(env) {
  describe("WatchEvents streams connects, joins, leaves and disconnects", () => {
    let clients;
    after(async () => {
      clients?.closeAll();
      await waitEmpty(env().apis);
    });

    test("a client's life on a remote edge, seen by every API server; filters", async () => {
      const e = env();
      clients = new Clients();
      const edge = edgeOf(e, 1);
      for (const api of e.apis) {
        const watch = api.watchEvents({});
        const joinsOnly = api.watchEvents({ kinds: ["EVENT_KIND_JOINED"] });
        const adminOnly = api.watchEvents({ namespace: "/admin" });
        try {
          // The stream starts "from the moment of the call": probe until it sees a connect.
          await eventually(
            async () => {
              const probe = await clients.connect({ name: "probe", url: edge.url, edge: edge.id });
              const id = probe.id;
              probe.disconnect();
              await watch.next((ev) => ev.event === "connected" && ev.connected.socket.id === id, 1000);
            },
            { timeoutMs: 10_000, what: "WatchEvents is live" },
          );

          const s = await clients.connect({ name: "watched", url: edge.url, edge: edge.id, transport: "polling", userId: "u9" });
          const conn = await watch.next((ev) => ev.event === "connected" && ev.connected.socket.id === s.id);
          assert.equal(conn.edge_id, edge.id, "edge_id");
          assert.equal(conn.connected.socket.edge_id, edge.id);
          assert.equal(conn.connected.socket.user_id, "u9");
          assert.equal(conn.connected.socket.namespace, "/");
          assert.equal(conn.connected.socket.transport, "TRANSPORT_POLLING");
          assert.ok(conn.time && conn.time.seconds > 0, "time set");

          await joinByRule(s, "watch-room");
          const joined = await watch.next((ev) => ev.event === "joined" && ev.joined.socket_id === s.id);
          assert.deepEqual(joined.joined, { socket_id: s.id, namespace: "/", user_id: "u9", room: "watch-room" });

          assert.deepEqual(await call(s, "leave-room", "watch-room"), { ok: true, room: "watch-room" });
          const left = await watch.next((ev) => ev.event === "left" && ev.left.socket_id === s.id);
          assert.deepEqual(left.left, { socket_id: s.id, namespace: "/", user_id: "u9", room: "watch-room" });

          const id = s.id;
          s.disconnect();
          const gone = await watch.next((ev) => ev.event === "disconnected" && ev.disconnected.socket_id === id);
          assert.equal(gone.disconnected.namespace, "/");
          assert.equal(gone.disconnected.user_id, "u9");
          assert.equal(gone.disconnected.reason, "client namespace disconnect");

          const j = await joinsOnly.next((ev) => ev.event === "joined" && ev.joined.socket_id === id);
          assert.equal(j.joined.room, "watch-room");
          await sleep(SETTLE_MS);
          // (The probes never joined a room.)
          assert.deepEqual(joinsOnly.events.map((ev) => ev.event), ["joined"], "kinds filter: joins only");
          assert.deepEqual(adminOnly.events, [], "namespace filter: nothing from /");
          assert.equal(watch.error, null, "the stream is still up");
        } finally {
          watch.close();
          joinsOnly.close();
          adminOnly.close();
        }
      }
    });
  });
}
