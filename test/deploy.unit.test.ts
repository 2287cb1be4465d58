import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { load } from 'js-yaml';
import { Registry, agentMetrics, consumerMetrics, coordinatorMetrics, streamerMetrics } from '@haul/bus';
import { repoRoot } from './support/paths.ts';
import { promtoolBinary } from './support/prometheus.ts';

const alertsFile = join(repoRoot, 'deploy', 'prometheus', 'alerts.yml');
const alertTestsFile = join(repoRoot, 'deploy', 'prometheus', 'alerts.test.yml');
const dashboardFile = join(repoRoot, 'deploy', 'grafana', 'haul-dashboard.json');
const observabilityDoc = join(repoRoot, 'docs', 'observability.md');

/** Every series name haul's services export (a histogram's _bucket, _sum and _count). */
async function exportedSeries(): Promise<Set<string>> {
  const r = new Registry();
  coordinatorMetrics(r);
  agentMetrics(r);
  streamerMetrics(r);
  consumerMetrics(r, () => Promise.resolve(undefined));
  const names = new Set<string>();
  for (const m of await r.getMetricsAsJSON()) {
    names.add(m.name);
    if (String(m.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m.name + s);
  }
  return names;
}

const haulNames = (expr: string): string[] => [...expr.matchAll(/\bhaul_[a-z0-9_]+/g)].map((m) => m[0]);

type Rule = {
  alert?: string;
  expr?: unknown;
  for?: unknown;
  labels?: Record<string, unknown>;
  annotations?: Record<string, unknown>;
};

describe('deploy/: the alert rules and the Grafana dashboard', () => {
  it('the alert rules are well formed, cover stuck migrations, downtime and stale heartbeats, and use exported series', async () => {
    const doc = load(readFileSync(alertsFile, 'utf8')) as { groups?: { name?: string; rules?: Rule[] }[] };
    assert.ok(Array.isArray(doc.groups) && doc.groups.length > 0, 'groups');
    const known = await exportedSeries();
    const alerts: string[] = [];
    for (const g of doc.groups) {
      assert.equal(typeof g.name, 'string');
      assert.ok(Array.isArray(g.rules) && g.rules.length > 0, `rules of ${g.name}`);
      for (const r of g.rules) {
        assert.match(r.alert ?? '', /^Haul[A-Za-z]+$/);
        assert.equal(typeof r.expr, 'string', `${r.alert}: expr`);
        if (r.for !== undefined)
          assert.match(typeof r.for === 'string' ? r.for : '', /^[0-9]+[smh]$/, `${r.alert}: for`);
        assert.ok(['critical', 'warning'].includes(String(r.labels?.['severity'])), `${r.alert}: severity`);
        assert.equal(typeof r.annotations?.['summary'], 'string', `${r.alert}: summary`);
        for (const n of haulNames(r.expr as string))
          assert.ok(known.has(n), `${r.alert}: ${n} is not exported`);
        alerts.push(r.alert!);
      }
    }
    for (const a of ['HaulMigrationStuck', 'HaulDowntimeOverBudget', 'HaulNodeHeartbeatStale'])
      assert.ok(alerts.includes(a), a);
  });

  it('the dashboard is Grafana JSON whose panels fit the grid without overlapping and query exported series', async () => {
    const d = JSON.parse(readFileSync(dashboardFile, 'utf8')) as {
      uid: string;
      title: string;
      schemaVersion: number;
      panels: {
        id: number;
        type: string;
        gridPos: { x: number; y: number; w: number; h: number };
        targets?: { expr: string }[];
      }[];
    };
    assert.equal(typeof d.uid, 'string');
    assert.equal(typeof d.title, 'string');
    assert.ok(Number.isInteger(d.schemaVersion));
    assert.equal(new Set(d.panels.map((p) => p.id)).size, d.panels.length, 'panel ids are unique');
    const known = await exportedSeries();
    const cells = new Set<string>();
    for (const p of d.panels) {
      const { x, y, w, h } = p.gridPos;
      assert.ok(x >= 0 && w > 0 && x + w <= 24 && h > 0 && y >= 0, `panel ${p.id} fits`);
      for (let i = x; i < x + w; i++)
        for (let j = y; j < y + h; j++) {
          assert.ok(!cells.has(`${i},${j}`), `panel ${p.id} overlaps another at ${i},${j}`);
          cells.add(`${i},${j}`);
        }
      if (p.type === 'row') continue;
      assert.ok(p.targets && p.targets.length > 0, `panel ${p.id} has queries`);
      for (const t of p.targets)
        for (const n of haulNames(t.expr)) assert.ok(known.has(n), `panel ${p.id}: ${n} is not exported`);
    }
  });

  it('docs/observability.md has a row for every metric haul exports', async () => {
    const doc = readFileSync(observabilityDoc, 'utf8');
    const families = [...(await exportedSeries())].filter((n) => !/_(bucket|sum|count)$/.test(n));
    assert.deepEqual(
      families.filter((n) => !doc.includes(`| \`${n}\``)),
      [],
    );
  });

  it('promtool accepts the rules and each alert fires on the series of deploy/prometheus/alerts.test.yml', () => {
    // No promtool is a failure that says how to install it, never a skip.
    const promtool = promtoolBinary();
    execFileSync(promtool, ['check', 'rules', alertsFile], { stdio: 'pipe' });
    execFileSync(promtool, ['test', 'rules', alertTestsFile], { stdio: 'pipe' });
  });
});
