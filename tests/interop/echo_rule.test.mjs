// The benchmark's echo rule (bench/switchboard.json) as the official
// socket.io-client sees it: the ack "$" carries the first argument back exactly
// as sent (the edge copies its text, never re-encoding it), whatever the
// argument holds — strings with brackets, quotes and escapes, Unicode, nested
// arrays, numbers, null, binary attachments — in "/" and in another namespace;
// the relay to the sender's own socket without the sender reaches nobody; a
// relay of the arguments as they are still reaches the others.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";

import { startStandalone } from "./lib/server.mjs";
import { WAIT_MS, call, callAll, collect, once, withTimeout } from "./lib/wait.mjs";

const ECHO = {
  event: "echo", action: "relay", target: { socket: "$socket.id" },
  exceptSender: true, ack: "$",
};
const CONFIG = {
  namespaces: {
    "/": {
      rules: [
        ECHO,
        { event: "say", action: "relay" },
        { event: "both", action: "relay", exceptSender: true, ack: { first: "$", all: "$args" } },
        // socket.emit(1, ...) reaches the rule for "1", as the reference
        // server's socket.on("1") gets it.
        { event: "1", action: "relay", exceptSender: true, ack: { event: "$event", first: "$" } },
      ],
    },
    "/n": { rules: [ECHO] },
  },
};

const VALUES = [
  { t: 1796001756988329, p: "x".repeat(70) },
  "a],[\"b\\\"c\" ] } {",
  { "k]": "}{", "q\"": ["\\", "/", "\n\t\r\b\f", "\u0001"] },
  "café ☕ 😀 \u2028",
  [1, [2, [3, [4, []]]], {}, [{}]],
  [-0.5, 1e-7, 12345678901234567890, 3.141592653589793, -17, 0],
  true,
  false,
  null,
  "",
  { _placeholder: true, num: 0 },
];

for (const transport of ["websocket", "polling"]) {
  describe(`echo rule over ${transport}`, () => {
    let server;
    const sockets = [];

    async function open(nsp = "/") {
      const socket = io(server.url + nsp, {
        transports: [transport], forceNew: true, reconnection: false, timeout: WAIT_MS,
      });
      sockets.push(socket);
      await withTimeout(
        new Promise((resolve, reject) => {
          socket.once("connect", resolve);
          socket.once("connect_error", reject);
        }),
        WAIT_MS, "connect");
      return socket;
    }

    before(async () => {
      server = await startStandalone(CONFIG, { threads: 1 });
    });

    after(async () => {
      for (const s of sockets) s.disconnect();
      if (server) await server.stop();
    });

    test("the ack carries the first argument back as sent", async () => {
      const socket = await open();
      for (const value of VALUES) {
        assert.deepEqual(await call(socket, "echo", value), value);
        assert.deepEqual(await callAll(socket, "echo", value, "second", 3), [value]);
      }
      // No argument: the ack has none either.
      assert.deepEqual(await callAll(socket, "echo"), []);
    });

    test("binary arguments come back as binary", async () => {
      const socket = await open();
      const bytes = Buffer.from([0, 1, 2, 253, 254, 255]);
      const reply = await call(socket, "echo", { file: bytes, name: "f" });
      assert.equal(reply.name, "f");
      assert.deepEqual(Buffer.from(reply.file), bytes);
      assert.deepEqual(Buffer.from(await call(socket, "echo", bytes)), bytes);
    });

    test("in another namespace", async () => {
      const socket = await open("/n");
      for (const value of VALUES) assert.deepEqual(await call(socket, "echo", value), value);
    });

    test("the relay reaches nobody; relays of the arguments reach the others", async () => {
      const a = await open();
      const b = await open();
      const echoes = [...collect(a, "echo"), ...collect(b, "echo")];
      const echoesA = collect(a, "echo");
      const echoesB = collect(b, "echo");
      await call(a, "echo", { hello: 1 });
      // "say" goes to everyone, the sender too: once it is in, an echo sent
      // before it would have been too.
      const saidA = once(a, "say");
      const saidB = once(b, "say");
      a.emit("say", "a],[\"b", { n: [1, 2] }, null);
      assert.deepEqual(await saidA, ["a],[\"b", { n: [1, 2] }, null]);
      assert.deepEqual(await saidB, ["a],[\"b", { n: [1, 2] }, null]);
      assert.deepEqual([...echoes, ...echoesA, ...echoesB], []);

      // A relay whose ack reads the arguments as values.
      const both = once(b, "both");
      assert.deepEqual(await call(a, "both", "x", [1]), { first: "x", all: ["x", [1]] });
      assert.deepEqual(await both, ["x", [1]]);
    });

    test("a numeric event name is relayed by the rule for its decimal name", async () => {
      const a = await open();
      const b = await open();
      const relayed = once(b, "1");
      assert.deepEqual(await call(a, 1, "x", { n: 2 }), { event: "1", first: "x" });
      assert.deepEqual(await relayed, ["x", { n: 2 }]);
      assert.equal(a.connected, true);
    });
  });
}
