// A gRPC client of the Switchboard API (proto/switchboard/v1/switchboard.proto)
// for the tests: promisified unary calls with a deadline, PublishStream and
// WatchEvents helpers, and small builders for arguments.
//
//   import { connectApi, json, binary } from "./lib/api.mjs";
//   const api = connectApi("127.0.0.1:50051");
//   await api.publish({ target: { rooms: ["lobby"] }, event: "news", args: [json({ a: 1 })] });
//   api.close();
//
// Messages are plain objects with the proto's field names (keepCase): uint64
// fields are Numbers, enums are their names ("TRANSPORT_POLLING"), bytes are
// Buffers, and a set oneof is named by a virtual field (`Argument.value` is
// "json" or "binary"; `WatchEventsResponse.event` is "connected", ...).
// A failed call rejects with the grpc-js error: `.code` is a grpc.status value.

import path from "node:path";

import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

import { SOURCE_DIR } from "./server.mjs";
import { WAIT_MS, withTimeout } from "./wait.mjs";

export { grpc };
export const status = grpc.status;

/** Deadline of a unary call that does not say otherwise. */
export const CALL_DEADLINE_MS = 10_000;

let servicePromise = null;

function loadService() {
  if (!servicePromise) {
    const definition = protoLoader.loadSync("switchboard/v1/switchboard.proto", {
      includeDirs: [path.join(SOURCE_DIR, "proto")],
      keepCase: true,
      longs: Number,
      enums: String,
      bytes: Buffer,
      defaults: true,
      arrays: true,
      oneofs: true,
    });
    servicePromise = grpc.loadPackageDefinition(definition).switchboard.v1.Switchboard;
  }
  return servicePromise;
}

/** A JSON Argument. */
export function json(value) {
  return { json: JSON.stringify(value) };
}

/** A binary Argument. */
export function binary(bytes) {
  return { binary: Buffer.from(bytes) };
}

/** An Argument back as a JS value: parsed JSON, or a Buffer. */
export function argValue(arg) {
  if (arg.value === "binary") return Buffer.from(arg.binary);
  if (arg.value === "json") return JSON.parse(arg.json);
  throw new Error(`Argument with neither json nor binary: ${JSON.stringify(arg)}`);
}

function deadline(ms) {
  return new Date(Date.now() + ms);
}

/**
 * A client of one server's gRPC API (plaintext). `token`, or $SB_API_TOKEN, is
 * sent as `authorization: Bearer <token>` when set.
 */
export function connectApi(address, { token = process.env.SB_API_TOKEN } = {}) {
  const Service = loadService();
  const client = new Service(address, grpc.credentials.createInsecure());

  function metadata() {
    const md = new grpc.Metadata();
    if (token) md.set("authorization", `Bearer ${token}`);
    return md;
  }

  function unary(method) {
    return (request = {}, { deadlineMs = CALL_DEADLINE_MS } = {}) =>
      new Promise((resolve, reject) => {
        client[method](request, metadata(), { deadline: deadline(deadlineMs) }, (err, response) => {
          if (err) {
            err.message = `${method}: ${err.message}`;
            reject(err);
          } else {
            resolve(response);
          }
        });
      });
  }

  const api = {
    address,
    client,
    publish: unary("Publish"),
    joinRooms: unary("JoinRooms"),
    leaveRooms: unary("LeaveRooms"),
    disconnectSockets: unary("DisconnectSockets"),
    getStats: unary("GetStats"),
    listSockets: unary("ListSockets"),
    listRooms: unary("ListRooms"),
    getPresence: unary("GetPresence"),
    ack: unary("Ack"),

    /** Publish with ack collection: the call's deadline covers the ack timeout. */
    publishWithAcks(request) {
      return api.publish(request, { deadlineMs: request.ack_timeout_ms + CALL_DEADLINE_MS });
    },

    /**
     * Sends `requests` on one PublishStream in order, half-closes, and resolves
     * with the PublishStreamResponse.
     */
    publishStream(requests, { deadlineMs = CALL_DEADLINE_MS } = {}) {
      return new Promise((resolve, reject) => {
        const call = client.PublishStream(metadata(), { deadline: deadline(deadlineMs) }, (err, response) => {
          if (err) {
            err.message = `PublishStream: ${err.message}`;
            reject(err);
          } else {
            resolve(response);
          }
        });
        (async () => {
          for (const request of requests) {
            if (!call.write(request)) {
              await new Promise((r) => call.once("drain", r));
            }
          }
          call.end();
        })().catch(reject);
      });
    },

    /** Every socket ListSockets returns for `request`, following page tokens. */
    async listAllSockets(request = {}) {
      const sockets = [];
      let page_token = "";
      for (let pages = 0; pages < 1000; pages++) {
        const page = await api.listSockets({ ...request, page_token });
        sockets.push(...page.sockets);
        if (!page.next_page_token) return sockets;
        page_token = page.next_page_token;
      }
      throw new Error("ListSockets: more than 1000 pages");
    },

    /** Every room ListRooms returns for `request`, following page tokens. */
    async listAllRooms(request = {}) {
      const rooms = [];
      let page_token = "";
      for (let pages = 0; pages < 1000; pages++) {
        const page = await api.listRooms({ ...request, page_token });
        rooms.push(...page.rooms);
        if (!page.next_page_token) return rooms;
        page_token = page.next_page_token;
      }
      throw new Error("ListRooms: more than 1000 pages");
    },

    /**
     * Opens a WatchEvents stream. Returns { events, next(predicate, ms), close() }:
     * `events` collects every WatchEventsResponse; next() resolves with the first
     * event (already received or still to come, not returned by next() before)
     * matching `predicate`, and rejects after `ms`.
     */
    watchEvents(request = {}) {
      const call = client.WatchEvents(request, metadata());
      const events = [];
      const consumed = new Set();
      const waiters = new Set();
      let error = null;
      call.on("data", (event) => {
        events.push(event);
        for (const w of [...waiters]) w();
      });
      call.on("error", (err) => {
        if (err.code !== grpc.status.CANCELLED) error = err;
        for (const w of [...waiters]) w();
      });
      // A status event always follows; nothing to do with it.
      call.on("status", () => {});
      return {
        events,
        call,
        get error() {
          return error;
        },
        next(predicate = () => true, ms = WAIT_MS) {
          const find = () => {
            for (let i = 0; i < events.length; i++) {
              if (!consumed.has(i) && predicate(events[i])) {
                consumed.add(i);
                return events[i];
              }
            }
            return undefined;
          };
          let waiter;
          return withTimeout(
            new Promise((resolve, reject) => {
              waiter = () => {
                const found = find();
                if (found) resolve(found);
                else if (error) reject(error);
              };
              waiters.add(waiter);
              waiter();
            }),
            ms,
            "a matching WatchEvents event",
          ).finally(() => waiters.delete(waiter));
        },
        close() {
          call.cancel();
        },
      };
    },

    close() {
      client.close();
    },
  };
  return api;
}
