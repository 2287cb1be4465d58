/**
 * npm run bench:side-by-side — two migrations that share their nodes: a small CT migrated from node-a to node-b
 * while a large one goes the same way and is in its iterative phase. A node agent ran one host action at a time for
 * its whole node, so the small CT's frozen-window steps waited behind the large one's pre-dumps; it now runs each
 * migration's commands in order and different migrations' side by side (docs/decisions.md, 28). Every round starts
 * a world of its own and is reported, with the medians. Writes bench/results/side-by-side.json (or --out).
 */
import { availableParallelism, loadavg } from 'node:os';
import { followToEnd } from '@haul/cli';
import { deriveStats } from '@haul/domain';
import type { MigrationEvent, MigrationStats } from '@haul/schemas';
import { awaitEvent, startRunningWorld, type World } from '@haul/test';
import { optionsOrExit } from './lib/bench-args.ts';
import { round } from './lib/control-proc.ts';
import { commitNow, median, writeResults } from './lib/results.ts';
import { parseSideBySideArgs, sideBySideHelp } from './lib/side-by-side-args.ts';

const o = optionsOrExit(parseSideBySideArgs, sideBySideHelp);

type Migrated = {
  end: MigrationEvent['type'];
  frozenMs: number | undefined;
  downtimeMs: number | undefined;
  /** The downtime window's control overhead per step (median), and its critical path's. */
  overheadMedianMs: number | undefined;
  windowOverheadMs: number | undefined;
};

const statsOf = (end: MigrationEvent['type'], s: MigrationStats): Migrated => ({
  end,
  frozenMs: s.frozenMs === undefined ? undefined : round(s.frozenMs),
  downtimeMs: s.downtimeMs,
  overheadMedianMs: s.downtimeWindow?.overheadMedianMs,
  windowOverheadMs: s.downtimeWindow?.criticalPath.overheadMs,
});

async function migrated(w: World, migrationId: string): Promise<Migrated> {
  const end = await followToEnd(w.eventLog, migrationId, () => {});
  return statsOf(end.type, deriveStats(await w.events(migrationId)));
}

/** One round: a world, the large migration, and once its first pre-dump succeeded, the small one. */
async function oneRound(i: number): Promise<{ small: Migrated; large: Migrated }> {
  const w = await startRunningWorld({ memoryMb: o.smallMb, sharedDisks: 1 });
  try {
    const large = await w.anotherCt('202', o.largeMb);
    const rl = await large.migrate(`side-by-side-large-${i}`, { preDump: 'on' });
    if (!rl.ok) throw new Error(`the large migration was refused: ${JSON.stringify(rl.error)}`);
    await awaitEvent(
      w.eventLog,
      rl.migrationId,
      (e) => e.type === 'StepSucceeded' && e.data.step === 'preDump',
      120_000,
    );
    const rs = await w.migrate(`side-by-side-small-${i}`);
    if (!rs.ok) throw new Error(`the small migration was refused: ${JSON.stringify(rs.error)}`);
    const [small, big] = await Promise.all([migrated(w, rs.migrationId), migrated(w, rl.migrationId)]);
    console.error(
      `[side-by-side] round ${i + 1}: small ${small.end} frozen ${small.frozenMs} ms, downtime ${small.downtimeMs} ms; large ${big.end} frozen ${big.frozenMs} ms, downtime ${big.downtimeMs} ms`,
    );
    return { small, large: big };
  } finally {
    await w.stop();
  }
}

const before = loadavg();
const rounds: { small: Migrated; large: Migrated }[] = [];
for (let i = 0; i < o.rounds; i++) rounds.push(await oneRound(i));
const medianOf = (xs: (number | undefined)[]) => {
  const known = xs.filter((x): x is number => x !== undefined);
  return known.length === 0 ? null : round(median(known));
};
const mediansOf = (which: 'small' | 'large') => ({
  frozenMs: medianOf(rounds.map((r) => r[which].frozenMs)),
  downtimeMs: medianOf(rounds.map((r) => r[which].downtimeMs)),
  overheadMedianMs: medianOf(rounds.map((r) => r[which].overheadMedianMs)),
  windowOverheadMs: medianOf(rounds.map((r) => r[which].windowOverheadMs)),
});
writeResults(o.out, {
  date: new Date().toISOString(),
  commit: commitNow(),
  machine: { cpus: availableParallelism(), node: process.version, loadavg: { before, after: loadavg() } },
  smallMb: o.smallMb,
  largeMb: o.largeMb,
  how: 'each round: a world of its own (nats-server, services, two emulated nodes, one shared disk per CT); the large CT migrated node-a → node-b with pre-dumps on; once its first pre-dump succeeded, the small CT the same way; frozen time and downtime from each log (deriveStats)',
  rounds,
  median: { small: mediansOf('small'), large: mediansOf('large') },
});
console.error(`[side-by-side] wrote ${o.out}`);
