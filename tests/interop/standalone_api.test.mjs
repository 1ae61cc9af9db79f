// The gRPC API of `switchboard standalone` (edge + broker in one process over
// the in-process bus): the same cases as cluster.test.mjs (lib/cases.mjs) —
// every Publish target kind, binary arguments, acks and their timeout,
// PublishStream order, JoinRooms / LeaveRooms / DisconnectSockets, GetStats,
// ListSockets, ListRooms, GetPresence, WatchEvents, INVALID_ARGUMENT — with
// official socket.io-client clients. The server runs 2 I/O threads, so that
// deliveries cross shards.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";

import { connectApi } from "./lib/api.mjs";
import {
  registerCommandTests,
  registerDeliveryTests,
  registerValidationTests,
  registerWatchTests,
} from "./lib/cases.mjs";
import { CONFIG_DIR, eventually } from "./lib/cluster.mjs";
import { startServer } from "./lib/server.mjs";

const CONFIG = path.join(CONFIG_DIR, "cluster.json");

let server;
let api;
let edgeId;
let brokerId;

const env = () => ({
  edges: [{ id: edgeId, url: server.url }],
  apis: [api],
  brokerIds: [brokerId],
  cluster: false,
});

before(async () => {
  server = await startServer(
    "switchboard",
    ["standalone", "--config", CONFIG, "--threads", "2", "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0"],
    { ready: ["grpc", "http"], name: "standalone" },
  );
  api = connectApi(server.grpcAddress);
  // The one edge inside the process, as the API names it.
  await eventually(
    async () => {
      const stats = await api.getStats();
      assert.equal(stats.edges.length, 1, `GetStats lists the embedded edge: ${JSON.stringify(stats.edges)}`);
      edgeId = stats.edges[0].edge_id;
      brokerId = stats.broker_id;
    },
    { what: "standalone GetStats" },
  );
  assert.ok(edgeId, "the embedded edge has an id");
  assert.ok(brokerId, "GetStats names the broker that answered");
});

after(async () => {
  api?.close();
  if (server) {
    const { code, signal } = await server.stop();
    assert.equal(code, 0, `switchboard standalone exits cleanly on SIGTERM (code ${code}, signal ${signal})`);
  }
});

test("the gRPC and Socket.IO ports are distinct and both serve", () => {
  assert.ok(server.grpcPort > 0 && server.port > 0);
  assert.notEqual(server.grpcPort, server.port);
});

registerDeliveryTests(env);
registerCommandTests(env);
registerWatchTests(env);
registerValidationTests(env);
