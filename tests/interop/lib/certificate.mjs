// A self-signed certificate for 127.0.0.1 and localhost, made with the openssl CLI, for the
// tests that run switchboard with --tls-cert.

import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";

/**
 * Writes cert.pem and key.pem into `dir`.
 * @returns {{cert: string, key: string, ca: Buffer}} the files' paths, and the certificate to
 *   trust (it is its own CA).
 */
export function makeCertificate(dir) {
  const cert = path.join(dir, "cert.pem");
  const key = path.join(dir, "key.pem");
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
  ], { stdio: ["ignore", "ignore", "pipe"] });
  return { cert, key, ca: readFileSync(cert) };
}
