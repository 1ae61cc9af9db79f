// The chat backend's core in Node, on the Switchboard gRPC API only.
//
//   npm install @grpc/grpc-js @grpc/proto-loader
//   node chat_backend.cjs --server 127.0.0.1:50051 [--namespace /] [--token T]
//
// user-join (ack with the list, notification "X joined the chat" to the others), chat-message
// (to everyone, with username and timestamp), the user list to everyone on every change, and
// cleanup on disconnect ("X left the chat"); the contract of ../chat.h. Loads proto/switchboard/v1/switchboard.proto at start.
"use strict";

const path = require("node:path");
const { parseArgs } = require("node:util");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const { values: opts } = parseArgs({
  options: {
    server: { type: "string", multiple: true },
    namespace: { type: "string", default: "/" },
    token: { type: "string", default: process.env.SWITCHBOARD_TOKEN || "" },
  },
});
if (!opts.server?.length) {
  console.error("usage: chat_backend.cjs --server HOST:PORT [--server ...] [--namespace /] [--token T]");
  process.exit(2);
}

const definition = protoLoader.loadSync("switchboard/v1/switchboard.proto", {
  includeDirs: [path.join(__dirname, "..", "..", "..", "proto")],
  keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true,
});
const { Switchboard } = grpc.loadPackageDefinition(definition).switchboard.v1;

const nsp = opts.namespace;
const users = new Map(); // socket id -> username, in join order
let client = null;
let stream = null;
let stopping = false;

function metadata() {
  const md = new grpc.Metadata();
  if (opts.token) md.set("authorization", `Bearer ${opts.token}`);
  return md;
}
function call(method, request) {
  return new Promise((resolve, reject) =>
    client[method](request, metadata(), { deadline: Date.now() + 5000 }, (err, res) =>
      err ? reject(err) : resolve(res)));
}
const publish = (event, value, exceptSocket) =>
  call("Publish", {
    target: { namespace: nsp, except_socket_ids: exceptSocket ? [exceptSocket] : [] },
    event,
    args: [{ json: JSON.stringify(value) }],
  });
async function ack(event, value) {
  if (!event.wants_ack || !event.ack_ref) return;
  // NOT_FOUND: the client's ack timed out or it left meanwhile.
  await call("Ack", { ack_ref: event.ack_ref, args: [{ json: JSON.stringify(value) }] }).catch((err) =>
    console.error(`chat backend: Ack: ${err.details}`));
}
const userList = () => publish("user-list", [...users.values()]);

async function onClientEvent(event) {
  const arg = event.args[0]?.json ? JSON.parse(event.args[0].json) : null;
  if (event.event === "user-join") {
    const raw = typeof arg === "object" && arg !== null ? arg.username : arg;
    const name = typeof raw === "string" ? raw.trim() : "";
    if (users.has(event.socket_id)) return ack(event, { ok: false, error: "already joined" });
    if (!name || Buffer.byteLength(name) > 32) return ack(event, { ok: false, error: "invalid username" });
    users.set(event.socket_id, name);
    await publish("notification", `${name} joined the chat`, event.socket_id);
    await userList();
    return ack(event, { ok: true, username: name, users: [...users.values()] });
  }
  if (event.event === "chat-message") {
    const name = users.get(event.socket_id);
    const text = typeof arg === "object" && arg !== null ? arg.message : arg;
    if (name === undefined) return ack(event, { ok: false, error: "join first" });
    if (typeof text !== "string" || !text.trim()) return ack(event, { ok: false, error: "invalid message" });
    await publish("chat-message", { username: name, message: text, timestamp: Date.now() });
    return ack(event, { ok: true });
  }
  return ack(event, { ok: false, error: "unknown event" });
}

async function onDisconnect(socketId) {
  const name = users.get(socketId);
  if (name === undefined) return;
  users.delete(socketId);
  await publish("notification", `${name} left the chat`, socketId);
  await userList();
}

// One WatchEvents stream; resolves when it ends. Events are handled one at a time, in order.
async function watch(server) {
  client = new Switchboard(server, grpc.credentials.createInsecure());
  stream = client.WatchEvents(
    { namespace: nsp, events: ["user-join", "chat-message"],
      kinds: ["EVENT_KIND_CLIENT_EVENT", "EVENT_KIND_DISCONNECTED"] },
    metadata(),
  );
  let chain = Promise.resolve();
  const ended = new Promise((resolve) => {
    stream.on("error", (err) => {
      if (!stopping) console.error(`chat backend: ${server}: ${err.details}; reconnecting`);
      resolve();
    });
    stream.on("end", resolve);
  });
  stream.on("data", (response) => {
    chain = chain.then(() => {
      if (response.event === "client_event" && response.client_event.namespace === nsp) {
        return onClientEvent(response.client_event);
      }
      if (response.event === "disconnected" && response.disconnected.namespace === nsp) {
        return onDisconnect(response.disconnected.socket_id);
      }
    }).catch((err) => console.error(`chat backend: ${err.message}`));
  });
  // The broker sends initial metadata once the watch is registered.
  const live = await new Promise((resolve) => {
    stream.once("metadata", () => resolve(true));
    ended.then(() => resolve(false));
  });
  if (live) {
    try {
      const { sockets } = await call("ListSockets", { namespace: nsp, page_size: 1000 });
      const alive = new Set(sockets.map((s) => s.id));
      for (const id of [...users.keys()]) if (!alive.has(id)) chain = chain.then(() => onDisconnect(id));
      console.log(`chat backend watching ${server}`);
    } catch (err) {
      console.error(`chat backend: ListSockets: ${err.details}`);
      stream.cancel();
    }
  }
  await ended;
  client.close();
}

function stop() {
  stopping = true;
  stream?.cancel();
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

(async () => {
  for (let attempt = 0; !stopping; attempt++) {
    await watch(opts.server[attempt % opts.server.length]);
    if (!stopping) await new Promise((r) => setTimeout(r, 500));
  }
})();
