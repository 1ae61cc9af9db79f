// Starts one of our binaries for a test and stops it again.
//
//   import { startServer } from "./lib/server.mjs";
//   const server = await startServer("sb-interop-server", ["--threads", "2"]);
//   ... io(server.url) ...
//   const { code, signal } = await server.stop();
//
// Contract every Switchboard binary follows: it takes `--listen HOST:PORT`
// (port 0 picks a free port) and prints a stdout line containing
// `listening on http://HOST:PORT` once it accepts connections.
//
// The binary is looked up in $SB_BIN_DIR (set by ctest), else in build/bin of
// this checkout. The child's stderr (and stdout) are copied to this process's
// stderr, prefixed with the binary name, so failures show the server's log.

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const SOURCE_DIR = process.env.SB_SOURCE_DIR || path.resolve(HERE, "../../..");
export const BIN_DIR = process.env.SB_BIN_DIR || path.join(SOURCE_DIR, "build", "bin");

const STARTUP_TIMEOUT_MS = 10_000;
const KILL_GRACE_MS = 2_000;
const LISTENING_RE = /listening on (https?:\/\/(\[[^\]]+\]|[^\s:/]+):(\d+))/;

// Children still running; killed if this process exits without stopping them.
const live = new Set();
process.on("exit", () => {
  for (const child of live) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
});

function forwardLines(stream, prefix, onLine) {
  let buffered = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk) => {
    buffered += chunk;
    let nl;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      process.stderr.write(`${prefix} ${line}\n`);
      if (onLine) onLine(line);
    }
  });
  stream.on("end", () => {
    if (buffered) {
      process.stderr.write(`${prefix} ${buffered}\n`);
      if (onLine) onLine(buffered);
    }
  });
}

/**
 * Spawns `${SB_BIN_DIR}/${binaryName}` with `args` (plus
 * `--listen 127.0.0.1:0` unless args has --listen) and waits (at most 10 s)
 * for its "listening on http://HOST:PORT" line.
 *
 * @returns {Promise<{port: number, url: string, proc: import("node:child_process").ChildProcess,
 *           stop: () => Promise<{code: number|null, signal: string|null}>}>}
 *   stop() sends SIGTERM, then SIGKILL after 2 s, and resolves with how the
 *   child exited. Calling it again returns the same result.
 */
export async function startServer(binaryName, args = []) {
  const binary = path.isAbsolute(binaryName) ? binaryName : path.join(BIN_DIR, binaryName);
  if (!existsSync(binary)) {
    throw new Error(`startServer: ${binary} does not exist (build first; SB_BIN_DIR=${BIN_DIR})`);
  }
  const fullArgs = [...args];
  if (!fullArgs.some((a) => a === "--listen" || a.startsWith("--listen="))) {
    fullArgs.push("--listen", "127.0.0.1:0");
  }

  const proc = spawn(binary, fullArgs, { stdio: ["ignore", "pipe", "pipe"] });
  live.add(proc);
  const prefix = `[${path.basename(binary)}:${proc.pid}]`;

  const exited = new Promise((resolve) => {
    proc.once("exit", (code, signal) => {
      live.delete(proc);
      resolve({ code, signal });
    });
  });

  const started = new Promise((resolve, reject) => {
    let done = false;
    const finish = (fn, value) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      fn(value);
    };
    const timer = setTimeout(() => {
      finish(reject, new Error(`${prefix} no "listening on" line within ${STARTUP_TIMEOUT_MS} ms`));
    }, STARTUP_TIMEOUT_MS);
    proc.once("error", (err) => finish(reject, err));
    exited.then(({ code, signal }) =>
      finish(reject, new Error(`${prefix} exited before listening (code ${code}, signal ${signal})`)),
    );
    forwardLines(proc.stdout, prefix, (line) => {
      const m = LISTENING_RE.exec(line);
      if (m) finish(resolve, { url: m[1], port: Number(m[3]) });
    });
    forwardLines(proc.stderr, prefix);
  });

  let stopping = null;
  const stop = () => {
    if (stopping) return stopping;
    stopping = (async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill("SIGTERM");
        let timer;
        const killed = new Promise((resolve) => {
          timer = setTimeout(() => {
            process.stderr.write(`${prefix} did not exit ${KILL_GRACE_MS} ms after SIGTERM; SIGKILL\n`);
            proc.kill("SIGKILL");
            resolve();
          }, KILL_GRACE_MS);
        });
        await Promise.race([exited, killed]);
        clearTimeout(timer);
      }
      return exited;
    })();
    return stopping;
  };

  let where;
  try {
    where = await started;
  } catch (err) {
    await stop();
    throw err;
  }
  return { port: where.port, url: where.url, proc, stop };
}
