/**
 * npm run bench:metrics — what recording metrics costs when nobody scrapes. Times each recording call of the
 * services (the streamer's per-chunk byte count is the only one on a hot path; the others run once per step or per
 * projected status) and counts the heap it leaves behind; then the idle CPU of a registry with the process metrics
 * (served, not scraped) against none, and one scrape for scale. Run with --expose-gc for the heap numbers.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import type { MigrationStatus } from '@haul/schemas';
import { Registry, agentMetrics, coordinatorMetrics, processMetrics, streamerMetrics } from '@haul/bus';

const gc = (globalThis as { gc?: () => void }).gc;

function measure(name: string, n: number, fn: (i: number) => void): void {
  for (let i = 0; i < 10_000; i++) fn(i); // warm up: the labelled children exist before timing
  gc?.();
  const heap0 = process.memoryUsage().heapUsed;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) fn(i);
  const ns = ((performance.now() - t0) * 1e6) / n;
  gc?.();
  const retained = process.memoryUsage().heapUsed - heap0;
  console.log(
    `${name.padEnd(44)} ${ns.toFixed(0).padStart(6)} ns/call` +
      (gc ? `   heap retained after ${n} calls: ${(retained / 1024).toFixed(0)} KiB` : ''),
  );
}

const status = (phase: MigrationStatus['phase'], i: number): MigrationStatus => ({
  migrationId: `m${i % 100}`,
  ctid: '101',
  source: 'node-a',
  target: 'node-b',
  mode: 'live',
  phase,
  iteration: 1,
  updatedAt: '2026-01-01T00:00:00.000Z',
  lastSeq: i,
});

const r = new Registry();
const streamer = streamerMetrics(r);
const agent = agentMetrics(r);
const coordinator = coordinatorMetrics(r);
const phases: MigrationStatus['phase'][] = [
  'preflight',
  'iterating',
  'frozen',
  'restoring',
  'committed',
  'cleanup',
];
const iterating = phases.map((p, i) => status(p, i));

measure('streamer: bytes sent (per 1 MiB chunk)', 5_000_000, () => streamer.sent(1 << 20));
measure('agent: step duration + tool time (per step)', 1_000_000, () =>
  agent.step('restore', 'succeeded', 1.5, 300),
);
measure('coordinator: a projected phase (per status)', 1_000_000, (i) =>
  coordinator.projected(iterating[i % 6]!),
);

const t0 = performance.now();
const text = await r.metrics();
console.log(`one scrape of these metrics: ${(performance.now() - t0).toFixed(2)} ms, ${text.length} bytes`);

/** CPU an idle process spends over `ms` (the timers and observers a registry may add). */
async function idleCpuMs(ms: number): Promise<number> {
  const c0 = process.cpuUsage();
  await delay(ms);
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
}
const idleMs = 5_000;
const without = await idleCpuMs(idleMs);
processMetrics(new Registry());
await delay(1_000); // its first collection and lazy loading are not idle cost
const withProcess = await idleCpuMs(idleMs);
console.log(
  `idle CPU over ${idleMs / 1000} s: ${without.toFixed(1)} ms without process metrics, ${withProcess.toFixed(1)} ms with them (not scraped)`,
);
