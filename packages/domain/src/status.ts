import type { MigrationStatus } from '@haul/schemas';
import { deriveStatsOf } from './stats.ts';
import { inFlight, type MigrationState } from './state.ts';

/** The current-status projection of one migration (what `haul status` and the KV bucket show). */
export function projectStatus(s: MigrationState, lastSeq: number): MigrationStatus | undefined {
  if (!s.migrationId || !s.request) return undefined;
  const steps = s.steps;
  const phase: MigrationStatus['phase'] =
    s.terminal === 'completed'
      ? 'completed'
      : s.terminal === 'rolled-back'
        ? 'rolled-back'
        : s.rollback
          ? 'rollback'
          : s.committed
            ? steps['releaseSource:-']?.status === 'succeeded' || (s.request.mode ?? 'live') === 'restart'
              ? 'cleanup'
              : 'committed'
            : steps['restore:-'] || steps['startTarget:-']
              ? 'restoring'
              : steps['finalDump:-']?.status === 'succeeded' || steps['stopSource:-']?.status === 'succeeded'
                ? 'frozen'
                : Object.keys(steps).some((k) => k.startsWith('preDump:'))
                  ? 'iterating'
                  : 'preflight';
  const st: MigrationStatus = {
    migrationId: s.migrationId,
    ctid: s.request.ctid,
    source: s.request.source,
    target: s.request.target,
    mode: s.request.mode ?? 'live',
    phase,
    iteration: Object.keys(steps).filter((k) => k.startsWith('preDump:')).length,
    runningSteps: inFlight(s).map((r) => r.key),
    updatedAt: s.lastTime ?? s.requestedAt ?? '1970-01-01T00:00:00.000Z',
    lastSeq,
  };
  const last = s.log.at(-1);
  if (last) st.lastEvent = last.type;
  if (s.rollback) st.reason = s.rollback.reason;
  if (s.terminal) st.stats = deriveStatsOf(s);
  return st;
}
