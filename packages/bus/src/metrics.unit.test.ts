import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { MigrationStatus } from '@haul/schemas';
import { Registry, agentMetrics, cachedSource, coordinatorMetrics } from './metrics.ts';
import { MetricsConfigError, metricsConfigFromEnv } from './metrics-server.ts';

const status = (phase: MigrationStatus['phase'], extra: Partial<MigrationStatus> = {}): MigrationStatus => ({
  migrationId: 'm1',
  ctid: '101',
  source: 'node-a',
  target: 'node-b',
  mode: 'live',
  phase,
  iteration: 0,
  updatedAt: '2026-01-01T00:00:00.000Z',
  lastSeq: 1,
  ...extra,
});

/** A sample's value (a histogram's samples are named `<family>_sum`, `_count`, `_bucket`). */
const valueOf = async (r: Registry, name: string, labels: Record<string, string>) => {
  const values = (await r.getMetricsAsJSON()).flatMap((m) =>
    m.values.map((v) => ({ ...v, name: (v as { metricName?: string }).metricName ?? m.name })),
  );
  return values.find((v) => v.name === name && Object.entries(labels).every(([k, l]) => v.labels[k] === l))
    ?.value;
};

it('metrics are off unless a port is set; a bad port or host is a typed error naming the setting', () => {
  assert.equal(metricsConfigFromEnv({}), undefined);
  assert.equal(metricsConfigFromEnv({ HAUL_METRICS_PORT: '0' }), undefined);
  assert.deepEqual(metricsConfigFromEnv({ HAUL_METRICS_PORT: '9464' }), { host: '127.0.0.1', port: 9464 });
  assert.deepEqual(metricsConfigFromEnv({ HAUL_METRICS_PORT: '9464', HAUL_METRICS_HOST: '0.0.0.0' }), {
    host: '0.0.0.0',
    port: 9464,
  });
  for (const [env, setting] of [
    [{ HAUL_METRICS_PORT: '65536' }, 'HAUL_METRICS_PORT'],
    [{ HAUL_METRICS_PORT: '-1' }, 'HAUL_METRICS_PORT'],
    [{ HAUL_METRICS_PORT: '80x' }, 'HAUL_METRICS_PORT'],
    [{ HAUL_METRICS_PORT: '9464', HAUL_METRICS_HOST: 'a b' }, 'HAUL_METRICS_HOST'],
  ] as const)
    assert.throws(
      () => metricsConfigFromEnv(env),
      (e: unknown) => e instanceof MetricsConfigError && e.setting === setting,
    );
});

it('an end counts once, by its outcome and the furthest forward phase; the active gauge follows the phases', async () => {
  const r = new Registry();
  const m = coordinatorMetrics(r);
  m.projected(status('preflight'));
  m.projected(status('iterating'));
  assert.equal(await valueOf(r, 'haul_migrations_active', { phase: 'iterating' }), 1);
  m.projected(status('rollback'));
  assert.equal(await valueOf(r, 'haul_migrations_active', { phase: 'iterating' }), 0);
  assert.equal(await valueOf(r, 'haul_migrations_active', { phase: 'rollback' }), 1);
  m.projected(status('rolled-back', { stats: { totalMs: 2500, iterations: [], downtimeMs: 300 } }));
  assert.equal(await valueOf(r, 'haul_migrations_active', { phase: 'rollback' }), undefined);
  assert.equal(
    await valueOf(r, 'haul_migrations_finished_total', { outcome: 'rolled-back', phase: 'iterating' }),
    1,
  );
  assert.equal(await valueOf(r, 'haul_migration_downtime_seconds_sum', { outcome: 'rolled-back' }), 0.3);
});

it('a tool failure is labelled with the tool’s name, not its path, and "none" when it was killed', async () => {
  const r = new Registry();
  const m = agentMetrics(r);
  m.toolFailed('/usr/sbin/criu', 1, 'exit');
  m.toolFailed('vzctl', undefined, 'timeout');
  assert.equal(await valueOf(r, 'haul_tool_failures_total', { tool: 'criu', exit_code: '1' }), 1);
  assert.equal(await valueOf(r, 'haul_tool_failures_total', { tool: 'vzctl', exit_code: 'none' }), 1);
});

it('a scrape-time source is asked at most once per ttl and a slow one does not hold the scrape', async () => {
  let calls = 0;
  const fast = cachedSource(() => Promise.resolve(++calls), 0, 60_000);
  assert.equal(await fast(), 1);
  assert.equal(await fast(), 1);
  assert.equal(calls, 1);
  const never = cachedSource(() => new Promise<number>(() => {}), -1, 60_000, 20);
  assert.equal(await never(), -1);
});
