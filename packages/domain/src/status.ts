import type { MigrationEvent, MigrationStatus } from '@haul/schemas';
import { resolvable } from './operator.ts';
import { deriveStatsOf } from './stats.ts';
import { inFlight, stepOf, type MigrationState } from './state.ts';

/**
 * The version of projectStatus: a seal's status snapshot (MigrationSealed.data.status) made by another version is not
 * used, the events are folded instead. Raise it whenever a change to this file or to what it reads (the fold, the
 * stats, the downtime window) changes the status of a log that is already written.
 */
export const statusVersion = 1;

type Sealed = Extract<MigrationEvent, { type: 'MigrationSealed' }>;

/** The status snapshot a seal carries, for the coordinator that writes it: its status at the sealed terminal event. */
export const statusSnapshot = (
  status: MigrationStatus,
): Pick<Sealed['data'], 'status' | 'statusVersion'> => ({
  status,
  statusVersion,
});

/**
 * The status of a sealed log read from its seal's snapshot, as a reader that folded its events up to the seal at
 * `sealSeq` would project it (folding the seal changes nothing but the sequence): undefined when there is no
 * snapshot, it was projected by another version, or it is not the status of the log the seal vouches for. The caller
 * must believe the seal and its chain first (EventLog.replay's `snapshot`).
 */
export function sealedStatus(seal: Sealed, sealSeq: number): MigrationStatus | undefined {
  const { status, statusVersion: v, upToSeq } = seal.data;
  if (!status || v !== statusVersion) return undefined;
  if (status.migrationId !== seal.migrationId || status.lastSeq !== upToSeq) return undefined;
  if (status.phase !== 'completed' && status.phase !== 'rolled-back') return undefined;
  return { ...status, lastSeq: sealSeq };
}

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
    mode: s.request.mode,
    phase,
    iteration: Object.values(steps).filter((r) => r.step === 'preDump').length,
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
    return stepOf(s, 'releaseSource')?.status === 'succeeded' || s.request?.mode === 'restart'
      ? 'cleanup'
      : 'committed';
  if (stepOf(s, 'restore') || stepOf(s, 'startTarget')) return 'restoring';
  if (stepOf(s, 'finalDump')?.status === 'succeeded' || stepOf(s, 'stopSource')?.status === 'succeeded')
    return 'frozen';
  return Object.values(steps).some((r) => r.step === 'preDump') ? 'iterating' : 'preflight';
}
