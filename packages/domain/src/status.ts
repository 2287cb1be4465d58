import type { MigrationStatus } from '@haul/schemas';
import { resolvable } from './operator.ts';
import { deriveStatsOf } from './stats.ts';
import { inFlight, type MigrationState } from './state.ts';

/** The current-status projection of one migration (what `haul status` and the KV bucket show). */
export function projectStatus(s: MigrationState, lastSeq: number): MigrationStatus | undefined {
  if (!s.migrationId || !s.request) return undefined;
  const steps = s.steps;
  const phase = phaseOf(s);
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
  if (s.requestedBy !== undefined) st.requestedBy = s.requestedBy;
  if (s.request.reason !== undefined) st.requestReason = s.request.reason;
  if (s.operatorActions.length) st.operatorActions = [...s.operatorActions];
  if (s.lastEvent) st.lastEvent = s.lastEvent;
  if (s.rollback) st.reason = s.rollback.reason;
  if (s.stuck && !s.terminal) {
    const { reason, ...stuck } = s.stuck;
    st.stuck = { ...stuck, resolvable: resolvable(stuck.step) };
    st.reason = reason;
  }
  if (s.terminal) st.stats = deriveStatsOf(s);
  return st;
}

/** Where the migration is: terminal, waiting for an operator, rolling back, or how far forward it got. */
function phaseOf(s: MigrationState): MigrationStatus['phase'] {
  const steps = s.steps;
  if (s.terminal === 'completed') return 'completed';
  if (s.terminal === 'rolled-back') return 'rolled-back';
  if (s.stuck) return 'stuck';
  if (s.rollback) return 'rollback';
  if (s.committed)
    return steps['releaseSource:-']?.status === 'succeeded' || (s.request?.mode ?? 'live') === 'restart'
      ? 'cleanup'
      : 'committed';
  if (steps['restore:-'] || steps['startTarget:-']) return 'restoring';
  if (steps['finalDump:-']?.status === 'succeeded' || steps['stopSource:-']?.status === 'succeeded')
    return 'frozen';
  return Object.keys(steps).some((k) => k.startsWith('preDump:')) ? 'iterating' : 'preflight';
}
