// Signs JSON Web Tokens for tests with node:crypto only (HS256/384/512,
// RS256, ES256), including deliberately broken ones (alg none, forged
// headers), so the server's verifier is tested against tokens made
// independently of it.

import crypto from "node:crypto";

const b64url = (buf) => Buffer.from(buf).toString("base64url");

/** A token: header and payload as given, signed with `key` for `header.alg`. */
export function sign(payload, { alg = "HS256", key, kid, header = {} } = {}) {
  const h = { alg, typ: "JWT", ...(kid ? { kid } : {}), ...header };
  const input = `${b64url(JSON.stringify(h))}.${b64url(JSON.stringify(payload))}`;
  let signature;
  if (alg === "none") {
    signature = "";
  } else if (alg.startsWith("HS")) {
    signature = b64url(crypto.createHmac(`sha${alg.slice(2)}`, key).update(input).digest());
  } else if (alg === "RS256") {
    signature = b64url(crypto.sign("sha256", Buffer.from(input), key));
  } else if (alg === "ES256") {
    signature = b64url(crypto.sign("sha256", Buffer.from(input), { key, dsaEncoding: "ieee-p1363" }));
  } else {
    throw new Error(`sign: unsupported alg ${alg}`);
  }
  return `${input}.${signature}`;
}

/** Seconds since the epoch. */
export const now = () => Math.floor(Date.now() / 1000);

/** A fresh RSA 2048 and EC P-256 key pair (PEM). */
export function keyPairs() {
  const pem = { type: "spki", format: "pem" };
  const priv = { type: "pkcs8", format: "pem" };
  const rsa = crypto.generateKeyPairSync("rsa", { modulusLength: 2048, publicKeyEncoding: pem, privateKeyEncoding: priv });
  const ec = crypto.generateKeyPairSync("ec", { namedCurve: "P-256", publicKeyEncoding: pem, privateKeyEncoding: priv });
  return { rsa, ec };
}
