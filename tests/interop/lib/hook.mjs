// A backend's switchboard.v1.ConnectHook service (proto/switchboard/v1/hooks.proto) for the
// tests, on a free loopback port, answering with whatever `decide(request)` returns:
//
//   const hook = await startConnectHook(async (req) => ({ allow: { user_id: "u1" } }));
//   ... "connectHook": { "address": hook.address } ...
//   await hook.stop();
//
// `request` is a ConnectRequest as a plain object (keepCase; `auth` is the JSON text of the
// CONNECT auth payload). `decide` may return a Promise (to answer late) or throw (error status).

import path from "node:path";

import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

import { SOURCE_DIR } from "./server.mjs";

function loadService() {
  const definition = protoLoader.loadSync("switchboard/v1/hooks.proto", {
    includeDirs: [path.join(SOURCE_DIR, "proto")],
    keepCase: true,
    longs: Number,
    enums: String,
    bytes: Buffer,
    defaults: true,
    arrays: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).switchboard.v1.ConnectHook;
}

export async function startConnectHook(decide) {
  const Service = loadService();
  const server = new grpc.Server();
  const calls = [];
  server.addService(Service.service, {
    OnConnect(call, callback) {
      calls.push(call.request);
      Promise.resolve()
        .then(() => decide(call.request))
        .then(
          (response) => callback(null, response),
          (err) => callback({ code: grpc.status.INTERNAL, details: String(err?.message ?? err) }),
        );
    },
  });
  const port = await new Promise((resolve, reject) => {
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    );
  });
  return {
    port,
    address: `127.0.0.1:${port}`,
    calls,
    stop() {
      return new Promise((resolve) => server.tryShutdown(() => resolve()));
    },
  };
}
