// A round-robin HTTP + WebSocket reverse proxy for the tests: a load balancer
// with no affinity of any kind, as a Kubernetes Service without
// sessionAffinity. Every HTTP request goes to the NEXT upstream in turn over a
// NEW upstream connection (upstream keep-alive would pin a client's requests
// to one edge), and so does every upgrade, whose bytes are then piped both
// ways. A client's keep-alive connection to the proxy does not pin it either.
//
//   const proxy = await startRoundRobinProxy([{ host: "127.0.0.1", port }, ...]);
//   io(proxy.url, ...);
//   proxy.stats   // { requests, upgrades, byStatus: { 200: n, 400: n, ... }, perUpstream: [n, ...],
//                 //   errors: the first 10 answers >= 400 ({ method, url, upstream, status, body }) }
//   proxy.setDown(i, true);  // take upstream i out of the rotation (a balancer's health check)
//   proxy.routeUpgrades(i);  // every WebSocket upgrade to upstream i (a test forcing session moves)
//   await proxy.close();
//
// `requests` counts HTTP requests (not upgrades); `byStatus` counts the status
// of every response, upgrades included (101, or what the upstream answered
// instead); `perUpstream[i]` counts requests + upgrades sent to upstream i.
// An upstream that cannot be reached gives the client a 502 (counted).

import http from "node:http";
import net from "node:net";

// Hop-by-hop headers (RFC 9110 7.6.1) are the proxy's own business.
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

function endToEndHeaders(rawHeaders) {
  const out = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (!HOP_BY_HOP.has(rawHeaders[i].toLowerCase())) out.push(rawHeaders[i], rawHeaders[i + 1]);
  }
  return out;
}

/**
 * Starts the proxy on 127.0.0.1 (a free port) in front of `upstreams`
 * ([{ host, port }, ...]). Resolves with { port, url, stats, setDown(i, down), close() }.
 */
export async function startRoundRobinProxy(upstreams) {
  if (!Array.isArray(upstreams) || upstreams.length === 0) {
    throw new Error("startRoundRobinProxy: at least one upstream");
  }
  const stats = { requests: 0, upgrades: 0, byStatus: {}, perUpstream: upstreams.map(() => 0), errors: [] };
  const down = upstreams.map(() => false);
  let upgradesTo = null; // routeUpgrades(i): every upgrade to upstream i
  let next = 0;
  const sockets = new Set(); // every client and upstream socket, destroyed by close()

  const track = (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    return socket;
  };
  const count = (status) => {
    stats.byStatus[status] = (stats.byStatus[status] ?? 0) + 1;
  };
  // The next upstream in turn that is not down.
  const pick = () => {
    for (let tries = 0; tries < upstreams.length; tries++) {
      const i = next;
      next = (next + 1) % upstreams.length;
      if (!down[i]) {
        stats.perUpstream[i]++;
        return i;
      }
    }
    return -1;
  };

  const server = http.createServer((req, res) => {
    stats.requests++;
    const i = pick();
    const fail = (message) => {
      count(502);
      if (!res.headersSent) {
        res.writeHead(502, { "content-type": "text/plain", connection: "close" });
        res.end(message);
      } else {
        res.destroy();
      }
    };
    if (i < 0) {
      req.resume();
      return fail("no upstream");
    }
    const { host, port } = upstreams[i];
    const upstream = http.request({
      host,
      port,
      method: req.method,
      path: req.url,
      headers: endToEndHeaders(req.rawHeaders),
      agent: false, // a new connection for every request, closed after it
      setHost: false,
    });
    upstream.on("socket", track);
    upstream.on("response", (up) => {
      count(up.statusCode);
      // The first few error answers, for failure messages.
      if (up.statusCode >= 400 && stats.errors.length < 10) {
        const entry = { method: req.method, url: req.url, upstream: i, status: up.statusCode, body: "" };
        stats.errors.push(entry);
        up.on("data", (chunk) => {
          if (entry.body.length < 200) entry.body += chunk.toString("utf8").slice(0, 200);
        });
      }
      res.writeHead(up.statusCode, up.statusMessage, endToEndHeaders(up.rawHeaders));
      up.pipe(res);
      up.on("error", () => res.destroy());
    });
    upstream.on("error", (err) => fail(`upstream ${host}:${port}: ${err.message}`));
    // A client that goes away mid-request (a long-poll it abandoned) takes the upstream request with it.
    res.on("close", () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  });
  server.on("connection", track);
  server.keepAliveTimeout = 5_000;

  server.on("upgrade", (req, client, head) => {
    stats.upgrades++;
    const i = upgradesTo === null ? pick() : upgradesTo;
    if (upgradesTo !== null) stats.perUpstream[i]++;
    if (i < 0) {
      count(502);
      client.end("HTTP/1.1 502 Bad Gateway\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
      return;
    }
    const { host, port } = upstreams[i];
    const upstream = track(net.connect({ host, port }));
    let status = null; // the upstream's status line, read from its first bytes
    let early = Buffer.alloc(0);
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => {
      if (status === null) {
        count(502);
        client.end("HTTP/1.1 502 Bad Gateway\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
      } else {
        client.destroy();
      }
    });
    upstream.on("connect", () => {
      // The request as it came (headers verbatim: Upgrade and Connection are the point here).
      let text = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
      for (let k = 0; k < req.rawHeaders.length; k += 2) text += `${req.rawHeaders[k]}: ${req.rawHeaders[k + 1]}\r\n`;
      upstream.write(text + "\r\n");
      if (head?.length) upstream.write(head);
      client.pipe(upstream);
    });
    const onData = (chunk) => {
      early = Buffer.concat([early, chunk]);
      const eol = early.indexOf("\r\n");
      if (eol < 0 && early.length < 1024) return;
      const m = /^HTTP\/\d\.\d (\d{3})/.exec(early.subarray(0, eol < 0 ? early.length : eol).toString("latin1"));
      status = m ? Number(m[1]) : 0;
      count(status);
      upstream.off("data", onData);
      client.write(early);
      early = null;
      upstream.pipe(client);
    };
    upstream.on("data", onData);
    upstream.on("end", () => {
      if (status === null) {
        count(502);
        client.end("HTTP/1.1 502 Bad Gateway\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
      }
    });
    upstream.on("close", () => client.destroy());
    client.on("close", () => upstream.destroy());
  });

  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address();

  return {
    port,
    url: `http://127.0.0.1:${port}`,
    stats,
    /** Takes upstream i out of the rotation (down = true) or puts it back. */
    setDown(i, isDown = true) {
      down[i] = isDown;
    },
    /** Sends every WebSocket upgrade to upstream i (null: back to the rotation). */
    routeUpgrades(i) {
      upgradesTo = i;
    },
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
  };
}
