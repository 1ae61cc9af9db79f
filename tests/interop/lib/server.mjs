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
// Roles that serve gRPC print `serving gRPC on HOST:PORT`: pass
// `{ ready: ["grpc"] }` (or `["grpc", "http"]`) as the third argument to wait
// for that line too, and `{ listen: false }` for a binary without `--listen`.
//
// `switchboard` also gets `--admin-listen 127.0.0.1:0` (its admin port: /metrics,
// /healthz, /readyz) unless args set one, so that many run side by side, and
// `--drain-window-ms 200` (a short SIGTERM drain, well within stop()'s 2 s)
// unless args set one. startServer also waits for the admin port it prints
// ("admin on HOST:PORT"), returned as `adminPort`.
//
// The binary is looked up in $SB_BIN_DIR (set by ctest), else in build/bin of
// this checkout. The child's stderr (and stdout) are copied to this process's
// stderr, prefixed with the binary name, so failures show the server's log.

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const SOURCE_DIR = process.env.SB_SOURCE_DIR || path.resolve(HERE, "../../..");
export const BIN_DIR = process.env.SB_BIN_DIR || path.join(SOURCE_DIR, "build", "bin");

const STARTUP_TIMEOUT_MS = 10_000;
const KILL_GRACE_MS = 2_000;
const LISTENING_RE = /listening on (https?:\/\/(\[[^\]]+\]|[^\s:/]+):(\d+))/;
const GRPC_RE = /serving gRPC on ((\[[^\]]+\]|[^\s:/]+):(\d+))/;
const ADMIN_RE = /^admin on (\[[^\]]+\]|[^\s:/]+):(\d+)/;

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
 * Ends a child: `signal` (SIGTERM by default), then SIGKILL after
 * KILL_GRACE_MS. Resolves with `exited` (how the child ended).
 */
export async function stopProcess(proc, exited, prefix, signal = "SIGTERM") {
  if (proc.exitCode === null && proc.signalCode === null) {
    proc.kill(signal);
    let timer;
    const killed = new Promise((resolve) => {
      timer = setTimeout(() => {
        process.stderr.write(`${prefix} did not exit ${KILL_GRACE_MS} ms after ${signal}; SIGKILL\n`);
        proc.kill("SIGKILL");
        resolve();
      }, KILL_GRACE_MS);
    });
    await Promise.race([exited, killed]);
    clearTimeout(timer);
  }
  return exited;
}

/**
 * Spawns `${SB_BIN_DIR}/${binaryName}` with `args` (plus
 * `--listen 127.0.0.1:0` unless args has --listen or options.listen is false)
 * and waits (at most 10 s) for its "listening on http://HOST:PORT" line, and
 * for whatever else options.ready names.
 *
 * @param {object} [options]
 * @param {Array<"http"|"grpc"|RegExp>} [options.ready] lines to wait for (default ["http"]):
 *   "http" = `listening on http://HOST:PORT`, "grpc" = `serving gRPC on HOST:PORT`, a RegExp =
 *   a stdout line it matches.
 * @param {object} [options.env] extra environment variables of the child.
 * @param {boolean} [options.listen] add `--listen 127.0.0.1:0` when absent (default true).
 * @param {string} [options.name] log prefix (default: the binary's name).
 * @param {string[]} [options.launcher] a command that runs the binary, e.g.
 *   `["prlimit", "--nofile=64:64"]` (it must exec the binary, so that the child's pid is the
 *   binary's).
 * @returns {Promise<{port: number, url: string, grpcPort: number, grpcAddress: string,
 *           proc: import("node:child_process").ChildProcess,
 *           exited: Promise<{code: number|null, signal: string|null}>,
 *           stop: () => Promise<{code: number|null, signal: string|null}>,
 *           log: string[]}>}
 *   port/url are set when "http" is awaited, grpcPort/grpcAddress ("HOST:PORT")
 *   when "grpc" is; `log` collects the child's stderr lines (its log). stop() sends SIGTERM,
 *   then SIGKILL after 2 s, and resolves with how the child exited. Calling it again returns the same result.
 */
export async function startServer(binaryName, args = [], options = {}) {
  const ready = options.ready ?? ["http"];
  const binary = path.isAbsolute(binaryName) ? binaryName : path.join(BIN_DIR, binaryName);
  if (!existsSync(binary)) {
    throw new Error(`startServer: ${binary} does not exist (build first; SB_BIN_DIR=${BIN_DIR})`);
  }
  const fullArgs = [...args];
  if (options.listen !== false && !fullArgs.some((a) => a === "--listen" || a.startsWith("--listen="))) {
    fullArgs.push("--listen", "127.0.0.1:0");
  }
  if (path.basename(binary) === "switchboard" && !fullArgs.some((a) => a === "--admin-listen" || a.startsWith("--admin-listen="))) {
    fullArgs.push("--admin-listen", "127.0.0.1:0");
  }
  if (path.basename(binary) === "switchboard" && !fullArgs.some((a) => a === "--drain-window-ms" || a.startsWith("--drain-window-ms="))) {
    fullArgs.push("--drain-window-ms", "200");
  }

  // The child's stderr lines (its log), as they come.
  const log = [];
  const launcher = options.launcher ?? [];
  const proc = spawn(launcher[0] ?? binary, [...launcher.slice(1), ...(launcher.length ? [binary] : []), ...fullArgs], {
    stdio: ["ignore", "pipe", "pipe"],
    ...(options.env ? { env: { ...process.env, ...options.env } } : {}),
  });
  live.add(proc);
  const prefix = `[${options.name ?? path.basename(binary)}:${proc.pid}]`;

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
      finish(reject, new Error(`${prefix} no ${ready.join(" + ")} ready line within ${STARTUP_TIMEOUT_MS} ms`));
    }, STARTUP_TIMEOUT_MS);
    proc.once("error", (err) => finish(reject, err));
    exited.then(({ code, signal }) =>
      finish(reject, new Error(`${prefix} exited before listening (code ${code}, signal ${signal})`)),
    );
    const where = {};
    const pending = new Set(ready);
    // Every switchboard role prints its admin port (a broker after its gRPC line).
    if (path.basename(binary) === "switchboard") pending.add("admin");
    forwardLines(proc.stdout, prefix, (line) => {
      const http = LISTENING_RE.exec(line);
      if (http && pending.has("http")) {
        where.url = http[1];
        where.port = Number(http[3]);
        pending.delete("http");
      }
      const admin = ADMIN_RE.exec(line);
      if (admin && pending.has("admin")) {
        where.adminPort = Number(admin[2]);
        pending.delete("admin");
      }
      const grpc = GRPC_RE.exec(line);
      if (grpc && pending.has("grpc")) {
        where.grpcAddress = grpc[1];
        where.grpcPort = Number(grpc[3]);
        pending.delete("grpc");
      }
      for (const want of pending) {
        if (want instanceof RegExp && want.test(line)) pending.delete(want);
      }
      if (pending.size === 0) finish(resolve, where);
    });
    forwardLines(proc.stderr, prefix, (line) => log.push(line));
  });

  let stopping = null;
  const stop = () => {
    if (stopping) return stopping;
    stopping = stopProcess(proc, exited, prefix);
    return stopping;
  };

  let where;
  try {
    where = await started;
  } catch (err) {
    await stop();
    throw err;
  }
  return { ...where, proc, exited, stop, log };
}

/**
 * Starts `switchboard standalone` with `config` (an object, written to a
 * temporary file) and `threads` I/O threads. Same result as startServer;
 * its stop() also removes the temporary file.
 */
export async function startStandalone(config, { threads = 1 } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), "sb-config-"));
  const file = path.join(dir, "switchboard.json");
  writeFileSync(file, JSON.stringify(config));
  let server;
  try {
    server = await startServer("switchboard", [
      "standalone", "--config", file, "--threads", String(threads), "--grpc-listen", "127.0.0.1:0",
    ]);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const stop = server.stop;
  server.stop = async () => {
    const result = await stop();
    rmSync(dir, { recursive: true, force: true });
    return result;
  };
  return server;
}
