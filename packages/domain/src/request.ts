import type { MigrateRequest } from '@haul/schemas';

/** The fields of a migrate request that mean something when left out. */
type DefaultedField = 'mode' | 'preDump' | 'maxIterations' | 'downtimePolicy';

/**
 * What a migrate request means where it leaves a field out. migrate-request.schema.json says the same with its
 * `default`s, for the people and the tools that read the schema; request.unit.test.ts checks that the two agree
 * (the core imports no schema file, only the types made from them).
 */
export const requestDefaults = {
  mode: 'live',
  preDump: 'auto',
  /** P.Haul's bound on pre-dump iterations (iters.py). */
  maxIterations: 9,
  downtimePolicy: 'abort',
} as const satisfies Required<Pick<MigrateRequest, DefaultedField>>;

/**
 * A migrate request as a migration's state holds it: every field that has a default written out. The log keeps the
 * request as the scheduler sent it; the defaults are applied once, where it is folded (evolve) or judged (decide's
 * RequestMigration, a check), so nothing after asks `mode ?? 'live'` again.
 */
export type FullRequest = MigrateRequest & Required<Pick<MigrateRequest, DefaultedField>>;

export function withRequestDefaults(r: MigrateRequest): FullRequest {
  const d = requestDefaults;
  return {
    ...r,
    mode: r.mode ?? d.mode,
    preDump: r.preDump ?? d.preDump,
    maxIterations: r.maxIterations ?? d.maxIterations,
    downtimePolicy: r.downtimePolicy ?? d.downtimePolicy,
  };
}
