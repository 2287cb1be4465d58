import type { CheckAnswered, CheckedDisk, ErrorInfo } from '@haul/schemas';
import { migrationDisksOf, notSharedBecause, type Findings } from './disks.ts';
import { predictDowntime } from './downtime-prediction.ts';
import { checkPreflight } from './preflight-check.ts';
import type { MigrationState } from './state.ts';
import type { FullRequest } from './request.ts';

/** What a check knows: the request, what admission would answer now, both nodes' findings, earlier migrations. */
export type CheckInput = {
  request: FullRequest;
  /** Admission's refusal as it would be now (CT busy, a node unknown, down or at its limit); none: it would admit. */
  admission?: ErrorInfo | undefined;
  source?: Findings | undefined;
  target?: Findings | undefined;
  /** Why a node's findings are missing (its agent did not answer the inspection). */
  inspection?: ErrorInfo | undefined;
  /** The CT's latest completed live migration that measured its dirty rate. */
  history?: MigrationState | undefined;
  /** Other completed live migrations from the source, to the target or between the two, newest first: speeds. */
  recent?: readonly MigrationState[] | undefined;
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
  const live = req.mode === 'live';
  if (live && i.source?.memoryBytes !== undefined) copy.memoryBytes = i.source.memoryBytes;
  if (i.target) copy.targetFreeBytes = i.target.freeBytes;
  const out: CheckAnswered = {
    ok: true,
    wouldWork: problem === undefined,
    ctid: req.ctid,
    source: req.source,
    target: req.target,
    mode: req.mode,
    disks: checkedDisks(i.source, i.target),
    copy,
    downtime: predictDowntime({
      request: req,
      source: i.source,
      localDisks: local,
      history: i.history,
      recent: i.recent,
    }),
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
