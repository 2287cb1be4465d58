import type {
  CheckAnswered,
  CheckedDisk,
  DowntimePrediction,
  ErrorInfo,
  MigrateRequest,
} from '@haul/schemas';
import { predictFrozenMs } from './convergence.ts';
import { lastMeasuredConvergence } from './decide.ts';
import { migrationDisksOf, notSharedBecause, type Findings } from './disks.ts';
import { checkPreflight } from './preflight-check.ts';
import type { MigrationState } from './state.ts';

/** What a check knows: the request, what admission would answer now, both nodes' findings, the CT's history. */
export type CheckInput = {
  request: MigrateRequest;
  /** Admission's refusal as it would be now (CT busy, a node unknown, down or at its limit); none: it would admit. */
  admission?: ErrorInfo | undefined;
  source?: Findings | undefined;
  target?: Findings | undefined;
  /** Why a node's findings are missing (its agent did not answer the inspection). */
  inspection?: ErrorInfo | undefined;
  /** The CT's latest completed live migration: its measured numbers predict the downtime. */
  history?: MigrationState | undefined;
};

/**
 * Would this migration work now, and what would it do? Pure. The verdict is the first refusal the real request
 * would meet, in its order: admission, then the preflight's checks (checkPreflight, the same function the decider
 * applies to the two preflights), so a check and the migration that follows it agree.
 */
export function checkMigration(i: CheckInput): CheckAnswered {
  const req = i.request;
  const problem =
    i.admission ??
    i.inspection ??
    (i.source && i.target ? checkPreflight(req, i.source, i.target) : undefined);
  const local = migrationDisksOf(i.source, i.target).local;
  const localDiskBytes = local.reduce((a, d) => a + (d.bytes ?? 0), 0);
  const copy: CheckAnswered['copy'] = { localDiskBytes };
  const live = (req.mode ?? 'live') === 'live';
  if (live && i.source?.memoryBytes !== undefined) copy.memoryBytes = i.source.memoryBytes;
  if (i.target) copy.targetFreeBytes = i.target.freeBytes;
  const out: CheckAnswered = {
    ok: true,
    wouldWork: problem === undefined,
    ctid: req.ctid,
    source: req.source,
    target: req.target,
    mode: req.mode ?? 'live',
    disks: checkedDisks(i.source, i.target),
    copy,
    downtime: predictDowntime(req, i.history, localDiskBytes),
  };
  if (problem) out.problem = problem;
  return out;
}

/** Every disk of the CT as the source found it: shared with the target, copied, or refused (and why). */
export function checkedDisks(src: Findings | undefined, tgt: Findings | undefined): CheckedDisk[] {
  return (src?.disks ?? []).map((d) => {
    const why = notSharedBecause(d, tgt);
    const action: CheckedDisk['action'] =
      why === undefined ? 'shared' : d.location === 'private' ? 'copied' : 'refused';
    const c: CheckedDisk = { ddxml: d.ddxml, action };
    if (d.location !== undefined) c.location = d.location;
    if (d.sharedRoot !== undefined) c.sharedRoot = d.sharedRoot;
    if (why !== undefined && d.location !== 'private') c.why = why;
    if (d.bytes !== undefined) c.bytes = d.bytes;
    return c;
  });
}

/**
 * The frozen time the decider's model (predictFrozenMs) gives for one more pre-dump window with the numbers the CT's
 * last live migration measured — its dirty rate, dump speed and link bandwidth (capped by the request's limit) —
 * plus the local disks, which are copied while the CT is frozen. A CT's dirty rate can only be measured by dumping
 * it (criu's soft-dirty tracking), which a check must not do: without such a migration there is no prediction.
 */
export function predictDowntime(
  req: MigrateRequest,
  history: MigrationState | undefined,
  localDiskBytes: number,
): DowntimePrediction {
  if ((req.mode ?? 'live') === 'restart')
    return { note: 'restart mode: the CT is stopped, its local disks copied, and started on the target' };
  if (req.preDump === 'off')
    return { note: 'no pre-dump: the whole memory is dumped and streamed while the CT is frozen' };
  const m = history ? lastMeasuredConvergence(history) : undefined;
  if (!history?.request || !m?.dirtyPagesPerSec || !m.iterationMs || !m.dumpBytesPerSec)
    return {
      note: `no earlier live migration of CT ${req.ctid} with two or more pre-dumps measured its dirty rate; only a dump can`,
    };
  const limit = req.bandwidthLimitMBps === undefined ? undefined : req.bandwidthLimitMBps * 1e6;
  const measured = m.bandwidthBytesPerSec ?? m.dumpBytesPerSec;
  const bandwidth = limit !== undefined && limit < measured ? limit : measured;
  const frozen = predictFrozenMs({ ...m, bandwidthBytesPerSec: bandwidth })!;
  const disksMs = (localDiskBytes / bandwidth) * 1000;
  const basis: NonNullable<DowntimePrediction['basis']> = {
    migrationId: history.migrationId!,
    source: history.request.source,
    target: history.request.target,
    dirtyPagesPerSec: round(m.dirtyPagesPerSec),
    iterationMs: round(m.iterationMs),
    dumpBytesPerSec: round(m.dumpBytesPerSec),
    bandwidthBytesPerSec: round(bandwidth),
  };
  if (history.lastTime !== undefined) basis.endedAt = history.lastTime;
  if (bandwidth === limit) basis.bandwidthCappedByRequest = true;
  return {
    predictedMs: round(frozen + disksMs),
    basis,
    note: `one more pre-dump window at the dirty rate, dump speed and bandwidth ${history.migrationId} measured (${history.request.source} → ${history.request.target}), plus the local disks copied while frozen`,
  };
}

const round = (n: number) => Math.round(n * 10) / 10;
