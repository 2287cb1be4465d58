import type { MigrationRecord, Outcome } from './soak-migrations.ts';

export type Spread = { n: number; p50: number; p90: number; max: number };

/** Median, 90th percentile and maximum (nearest rank), rounded to one decimal; undefined for no values. */
export function spread(values: readonly number[]): Spread | undefined {
  if (values.length === 0) return undefined;
  const v = [...values].sort((a, b) => a - b);
  const at = (q: number) => Math.round(v[Math.min(v.length - 1, Math.ceil(q * v.length) - 1)]! * 10) / 10;
  return { n: v.length, p50: at(0.5), p90: at(0.9), max: at(1) };
}

/** Durations by outcome, downtimes of completed live migrations, and outcome counts by mode and by disk layout. */
export function summarize(records: readonly MigrationRecord[]) {
  const durationsS: Partial<Record<Outcome, Spread>> = {};
  for (const outcome of ['completed', 'rolledBack'] as const) {
    const s = spread(
      records.flatMap((r) => (r.outcome === outcome && r.durationS !== undefined ? [r.durationS] : [])),
    );
    if (s) durationsS[outcome] = s;
  }
  const by = (key: (r: MigrationRecord) => string) => {
    const out: Record<string, Record<string, number>> = {};
    for (const r of records) {
      const k = key(r);
      const o = r.outcome ?? 'unfinished';
      out[k] = { ...out[k], [o]: (out[k]?.[o] ?? 0) + 1 };
    }
    return out;
  };
  return {
    durationsS,
    downtimeMs: spread(records.flatMap((r) => (r.downtimeMs !== undefined ? [r.downtimeMs] : []))) ?? null,
    longestQuietS:
      spread(records.flatMap((r) => (r.longestQuietS !== undefined ? [r.longestQuietS] : []))) ?? null,
    byMode: by((r) => r.mode),
    bySharedDisks: by((r) => `${r.sharedDisks} shared`),
    rollbackReasons: records.reduce<Record<string, number>>((acc, r) => {
      if (r.rollbackReason) acc[r.rollbackReason] = (acc[r.rollbackReason] ?? 0) + 1;
      return acc;
    }, {}),
  };
}
