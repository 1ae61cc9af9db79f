// Tests of the chart's Grafana dashboard (helm/switchboard/dashboards/switchboard.json).
//
// The ConfigMap: off by default; on, it carries the sidecar's label (configurable), the extra
// labels and annotations, the namespace override, and the dashboard as valid JSON with a
// templated Prometheus data source. The metrics: every metric name in every panel query and
// variable query must be exported by a live process: a real nats-server (JetStream), a
// `switchboard broker` and a `switchboard edge` with connection state recovery, one Socket.IO
// client and an API publish it receives; their /metrics are scraped and the names compared, and
// the label values the queries match and the labels they group by.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import YAML from 'yaml';

import { cleanUpHelm, helm, setUpHelm } from './helm.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const CHART = path.join(ROOT, 'helm/switchboard');
const DASHBOARD = path.join(CHART, 'dashboards/switchboard.json');
const RELEASE = 'sb';
const NAMESPACE = 'realtime';

function render(sets = []) {
  const args = ['template', RELEASE, CHART, '--namespace', NAMESPACE];
  for (const s of sets) args.push('--set', s);
  const r = helm(args);
  assert.equal(r.status, 0, `helm template failed:\n${r.stderr}`);
  return YAML.parseAllDocuments(r.stdout, { version: '1.1' }).map((d) => d.toJS()).filter(Boolean);
}

const dashboard = () => JSON.parse(fs.readFileSync(DASHBOARD, 'utf8'));

// name -> [labels] of every sample of every scrape.
function samplesOf(scrapes) {
  const all = new Map();
  for (const text of scrapes) {
    for (const [name, series] of exportedSamples(text)) all.set(name, [...(all.get(name) ?? []), ...series]);
  }
  return all;
}

const dashboardMap = (objects) =>
  objects.filter((o) => o.kind === 'ConfigMap' && o.metadata.name === `${RELEASE}-switchboard-grafana-dashboard`);

// ---------------------------------------------------------------------------------------------
// Metric names in PromQL

const PROMQL_WORDS = new Set([
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless',
  'offset', 'inf', 'nan',
]);

// The metric names a PromQL expression selects: identifiers that are not functions (followed by
// `(`), keywords, grouping labels (`by (...)`), label matchers (`{...}`), ranges (`[...]`),
// strings, numbers, durations or Grafana variables.
export function metricNames(expr) {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, ' ')
    .replace(/\$\{[^}]*\}|\$\w+/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/(?<![A-Za-z0-9_:])\d[0-9A-Za-z_.]*/g, ' '); // numbers, durations (offset 1h)
  const names = new Set();
  for (const m of stripped.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*(?![A-Za-z0-9_:])/g)) {
    const rest = stripped.slice(m.index + m[0].length);
    if (/^\s*\(/.test(rest)) continue; // a function
    if (PROMQL_WORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return names;
}

// Every query of the dashboard: { where, expr } for panel targets and query variables
// (label_values(SELECTOR, label): the selector).
function dashboardQueries(json) {
  const out = [];
  const walk = (panels) => {
    for (const p of panels ?? []) {
      for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr });
      walk(p.panels);
    }
  };
  walk(json.panels);
  for (const v of json.templating.list) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : v.query.query;
    const lv = /^label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)$/.exec(q);
    out.push({ where: `variable ${v.name}`, expr: lv ? lv[1] : q });
  }
  return out;
}

// The samples of Prometheus text format: name -> [labels] (a histogram's name_bucket, name_sum,
// name_count).
function exportedSamples(text) {
  const samples = new Map();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})? /.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] ?? '').matchAll(/([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    if (!samples.has(m[1])) samples.set(m[1], []);
    samples.get(m[1]).push(labels);
  }
  return samples;
}

// Labels Prometheus adds to a target's samples (a ServiceMonitor's): not the process's own. A
// process's own `namespace` label becomes `exported_namespace` next to the target's.
const TARGET_LABELS = new Set(['namespace', 'job', 'pod', 'instance', 'service', 'endpoint', 'container']);
const ownLabel = (label) => (label === 'exported_namespace' ? 'namespace' : label);

// What an expression says about labels that no exported sample has: a matcher `metric{l="v"}` or
// `l=~"a|b"` with values no sample of the metric carries, a `by (l)` no metric of it has.
function labelProblems(expr, samples) {
  const problems = [];
  for (const sel of expr.matchAll(/([A-Za-z_:][A-Za-z0-9_:]*)\{([^}]*)\}/g)) {
    const series = samples.get(sel[1]) ?? [];
    for (const m of sel[2].matchAll(/([A-Za-z_][A-Za-z0-9_]*)\s*(=~|=)\s*"([^"]*)"/g)) {
      const [, label, op, value] = m;
      if (TARGET_LABELS.has(label) || value.includes('$')) continue;
      const values = op === '=' ? [value] : /^[A-Za-z0-9_ ]+(\|[A-Za-z0-9_ ]+)*$/.test(value) ? value.split('|') : [];
      for (const v of values) {
        if (!series.some((s) => s[ownLabel(label)] === v)) problems.push(`${sel[1]}{${label}="${v}"}`);
      }
    }
  }
  const metrics = [...metricNames(expr)];
  for (const by of expr.matchAll(/\bby\s*\(([^)]*)\)/g)) {
    for (const label of by[1].split(',').map((l) => l.trim()).filter(Boolean)) {
      if (TARGET_LABELS.has(label)) continue;
      const has = metrics.some((name) => (samples.get(name) ?? []).some((s) => ownLabel(label) in s));
      if (!has) problems.push(`by (${label}) on ${metrics.join(', ')}`);
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------

before(() => setUpHelm());
process.on('exit', cleanUpHelm);

describe('the dashboard JSON', () => {
  const json = dashboard();

  test('Grafana 10 schema: a templated Prometheus data source, unique panel ids, queries on it', () => {
    assert.ok(json.schemaVersion >= 38, 'schemaVersion of Grafana 10');
    assert.equal(typeof json.uid, 'string');
    const ds = json.templating.list.find((v) => v.name === 'datasource');
    assert.deepEqual([ds.type, ds.query], ['datasource', 'prometheus']);
    for (const name of ['namespace', 'job', 'pod', 'edge']) {
      assert.ok(json.templating.list.some((v) => v.name === name), `variable ${name}`);
    }
    const ids = [];
    const walk = (panels) => {
      for (const p of panels ?? []) {
        ids.push(p.id);
        if (p.type !== 'row') {
          assert.deepEqual(p.datasource, { type: 'prometheus', uid: '${datasource}' }, p.title);
          assert.ok(p.targets.length > 0, `${p.title}: no query`);
          for (const t of p.targets) assert.deepEqual(t.datasource, p.datasource, p.title);
        }
        walk(p.panels);
      }
    };
    walk(json.panels);
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
    const repeated = json.panels.filter((p) => p.type === 'row' && p.repeat);
    assert.deepEqual(repeated.map((p) => p.repeat), ['edge'], 'one row repeated per edge');
  });

  test('metricNames reads PromQL', () => {
    assert.deepEqual(
      [...metricNames('histogram_quantile(0.99, sum by (le, method) (rate(a_bucket{x=~"$y", op="b c"}[$__rate_interval]))) > 0 or on (pod) b_total')],
      ['a_bucket', 'b_total'],
    );
    assert.deepEqual([...metricNames('sum without (job) (rate(x_total[5m] offset 1h)) * 2e3')], ['x_total']);
  });
});

describe('the ConfigMap', () => {
  test('helm lint --strict with the dashboard on', () => {
    const r = helm(['lint', '--strict', CHART, '--namespace', NAMESPACE, '--set', 'grafana.dashboard.enabled=true']);
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });

  test('off by default', () => {
    assert.deepEqual(dashboardMap(render()), []);
  });

  test('on: the sidecar label, the dashboard as JSON', () => {
    const [cm, ...more] = dashboardMap(render(['grafana.dashboard.enabled=true']));
    assert.ok(cm, 'a ConfigMap');
    assert.equal(more.length, 0);
    assert.equal(cm.metadata.namespace, NAMESPACE);
    assert.equal(cm.metadata.labels.grafana_dashboard, '1');
    assert.equal(cm.metadata.labels['app.kubernetes.io/instance'], RELEASE);
    assert.equal(cm.metadata.annotations, undefined);
    assert.deepEqual(JSON.parse(cm.data['switchboard.json']), dashboard());
  });

  test('label, labels, annotations and namespace are configurable', () => {
    const [cm] = dashboardMap(render([
      'grafana.dashboard.enabled=true',
      'grafana.dashboard.label=dashboards.example.com/grafana',
      'grafana.dashboard.labelValue=yes',
      'grafana.dashboard.labels.team=realtime',
      'grafana.dashboard.annotations.grafana_folder=Switchboard',
      'grafana.dashboard.namespace=monitoring',
    ]));
    assert.equal(cm.metadata.namespace, 'monitoring');
    assert.equal(cm.metadata.labels['dashboards.example.com/grafana'], 'yes');
    assert.equal(cm.metadata.labels.grafana_dashboard, undefined);
    assert.equal(cm.metadata.labels.team, 'realtime');
    assert.deepEqual(cm.metadata.annotations, { grafana_folder: 'Switchboard' });
  });

  test('the schema refuses unknown keys and bad labels', () => {
    for (const set of ['grafana.dashboard.folder=x', 'grafana.dashboard.label=not a label', 'grafana.dashboard.enabled=maybe']) {
      const r = helm(['template', RELEASE, CHART, '--namespace', NAMESPACE, '--set', set]);
      assert.notEqual(r.status, 0, `${set} accepted`);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The live processes

describe('every metric the dashboard queries is exported', { timeout: 120000 }, () => {
  let cluster;
  let socket;
  let dir;
  const scrapes = [];

  before(async () => {
    // cluster.mjs runs nats-server and the built switchboard ($SB_BIN_DIR, else build/bin).
    const lib = pathToFileURL(path.join(ROOT, 'tests/interop/lib/cluster.mjs')).href;
    const { startCluster, eventually } = await import(lib);
    const interop = createRequire(path.join(ROOT, 'tests/interop/package.json'));
    const { io } = interop('socket.io-client');
    const { json } = await import(pathToFileURL(path.join(ROOT, 'tests/interop/lib/api.mjs')).href);

    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-dashboard-'));
    const config = path.join(dir, 'config.json');
    fs.writeFileSync(config, JSON.stringify({
      namespaces: { '/': { connectionStateRecovery: { maxDisconnectionDuration: 60000 } } },
    }));
    cluster = await startCluster({
      edges: 1,
      brokers: 1,
      config,
      natsArgs: ['-js', '-sd', path.join(dir, 'jetstream')],
    });
    const [edge] = cluster.edges;
    const [broker] = cluster.brokers;

    socket = io(edge.url, { transports: ['websocket'], reconnection: false, forceNew: true });
    const got = new Promise((resolve) => socket.on('dash', resolve));
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('client did not connect in 10 s')), 10000);
      socket.once('connect', () => { clearTimeout(timer); resolve(); });
      socket.once('connect_error', (e) => { clearTimeout(timer); reject(e); });
    });
    // A publish the client receives: a delivery (latency histogram), a gRPC call, a log append.
    await eventually(async () => {
      await broker.api.publish({ target: { namespace: '/' }, event: 'dash', args: [json(1)] });
      await Promise.race([got, new Promise((_, reject) => setTimeout(() => reject(new Error('not delivered')), 1000))]);
    }, { what: 'the client receives a publish' });

    for (const server of [edge.server, broker.server]) {
      const r = await fetch(`http://127.0.0.1:${server.adminPort}/metrics`);
      assert.equal(r.status, 200);
      scrapes.push(await r.text());
    }
  });

  after(async () => {
    socket?.close();
    await cluster?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('panel and variable queries name only exported metrics', () => {
    const exported = samplesOf(scrapes);
    assert.ok(exported.has('switchboard_connections'), 'the edge was scraped');
    assert.ok(exported.has('switchboard_recovery_log_appends_total'), 'the broker was scraped');
    const missing = [];
    let checked = 0;
    for (const { where, expr } of dashboardQueries(dashboard())) {
      const names = metricNames(expr);
      assert.ok(names.size > 0, `${where}: no metric in ${expr}`);
      for (const name of names) {
        checked++;
        if (!exported.has(name)) missing.push(`${where}: ${name}`);
      }
    }
    assert.ok(checked > 40, `only ${checked} metric references found`);
    assert.deepEqual(missing, [], 'metrics no live process exports');
  });

  test('their label matchers and groupings name labels and values the metrics have', () => {
    const exported = samplesOf(scrapes);
    const problems = [];
    for (const { where, expr } of dashboardQueries(dashboard())) {
      for (const p of labelProblems(expr, exported)) problems.push(`${where}: ${p}`);
    }
    assert.deepEqual(problems, []);
    // The check itself sees a wrong value and a wrong grouping.
    assert.deepEqual(labelProblems('sum by (nope) (rate(switchboard_bus_errors_total{op=~"queue_full|full"}[5m]))', exported),
      ['switchboard_bus_errors_total{op="full"}', 'by (nope) on switchboard_bus_errors_total']);
  });
});
