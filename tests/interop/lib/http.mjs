// A plain HTTP GET on 127.0.0.1 (admin ports: /metrics, /readyz), for tests.
import http from "node:http";

/** GET http://127.0.0.1:port/target → { status, body }; fails after 2 s. */
export function httpGet(port, target) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: target, timeout: 2000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode, body }));
    });
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("timeout")));
  });
}
