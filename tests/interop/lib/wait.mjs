// Bounded waits shared by the interop tests: nothing here waits forever.

import { setTimeout as sleep } from "node:timers/promises";

export const WAIT_MS = 5000;

export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Resolves with the arguments of the next `event`.
export function once(emitter, event, ms = WAIT_MS) {
  return withTimeout(
    new Promise((resolve) => emitter.once(event, (...args) => resolve(args))),
    ms,
    `"${event}"`,
  );
}

// Every `event` received by `socket`, as argument arrays.
export function collect(socket, event) {
  const got = [];
  socket.on(event, (...args) => got.push(args));
  return got;
}

export async function waitForCount(list, n, what, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  while (list.length < n) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${n} ${what}, got ${list.length}: ${JSON.stringify(list)}`);
    }
    await sleep(10);
  }
}

// Emits with an acknowledgement; resolves with ALL the ack's arguments.
export function callAll(socket, event, ...args) {
  return new Promise((resolve, reject) => {
    socket.timeout(WAIT_MS).emit(event, ...args, (err, ...response) => {
      if (err) reject(new Error(`no ack for "${event}" within ${WAIT_MS} ms (${err.message})`));
      else resolve(response);
    });
  });
}

// Emits with an acknowledgement; resolves with the ack's first argument.
export async function call(socket, event, ...args) {
  return (await callAll(socket, event, ...args))[0];
}
