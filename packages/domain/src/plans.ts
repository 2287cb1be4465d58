import type { DumpArgs, MigrationEvent, StepName } from '@haul/schemas';
import { migrationDisks } from './disks.ts';
import { diskOfSubject } from './disk-passes.ts';
import { errorCodes, givenUpCodes } from './errors.ts';
import { copyGuid, originGuid } from './ids.ts';
import { initialState, once, stepKey, type MigrationState, type StepRecord } from './state.ts';
import { fold } from './evolve.ts';
import { stepTable } from './steps.ts';

/** One host action of a rollback or cleanup plan. `key` identifies it in the log (`<step>:<subject>`). */
export type PlannedAction = {
  key: string;
  step: StepName;
  subject: string;
  role: 'source' | 'target';
  args: Record<string, unknown>;
  /** The effect is in doubt (intended or timed out, no result): the agent decides by inspecting the host. */
  reconcile: boolean;
  /** The step keys this action undoes or cleans up. */
  covers: string[];
};

const dirOf = (p: string) => p.slice(0, p.lastIndexOf('/')) || '/';

type Effect = { rec: StepRecord; inDoubt: boolean };

/** The name, subject and key of a planned action (`once`: a step that runs once per migration). */
const planned = (step: StepName, subject: string = once) => ({ key: stepKey(step, subject), step, subject });

/**
 * A forward step that failed may have left an effect: its kind may (failureMayLeaveEffect), the coordinator gave it
 * up (timed out, stalled: it may still be running), or its failure says so (the step's inDoubtCodes).
 */
function failedInDoubt(rec: StepRecord): boolean {
  const spec = stepTable[rec.step];
  const code = rec.error?.code;
  if (spec.failureMayLeaveEffect) return true;
  return code !== undefined && (givenUpCodes.includes(code) || (spec.inDoubtCodes?.includes(code) ?? false));
}

/** Which forward steps left (or may have left) an effect on a host. */
function effects(s: MigrationState): Effect[] {
  const out: Effect[] = [];
  for (const rec of Object.values(s.steps)) {
    const spec = stepTable[rec.step];
    if (spec.kind !== 'forward') continue;
    if (rec.status === 'succeeded') out.push({ rec, inDoubt: false });
    else if (rec.status === 'intended') out.push({ rec, inDoubt: true });
    else if (rec.rejected) {
      // Refused before it ran (invalid, confined, bounded): no effect. A handler that threw may have done anything.
      if (rec.error?.code === errorCodes.commandUnhandled) out.push({ rec, inDoubt: true });
    } else if (failedInDoubt(rec)) {
      // A step the coordinator gave up on (timed out, stalled) is in doubt whatever it is: it may still be running.
      // vzctl restore runs only after the target won the fence; without RestoreStarted nothing ran.
      if (rec.step === 'restore' && !s.restoreStarted) continue;
      out.push({ rec, inDoubt: true });
    }
  }
  return out.sort((a, b) => a.rec.order - b.rec.order);
}

/** The compensation of one effect, or undefined when another action covers it (image folders). */
function compensationOf(
  s: MigrationState,
  e: Effect,
): Omit<PlannedAction, 'covers' | 'reconcile'> | undefined {
  const r = e.rec;
  const ctid = s.request?.ctid ?? '';
  const mid = s.migrationId ?? '';
  switch (r.step) {
    case 'preflightSource':
    case 'preflightTarget': {
      const role = r.step === 'preflightSource' ? 'source' : 'target';
      const dir = s.imageDirs?.[role];
      if (!dir) return undefined;
      return {
        ...planned('removeFiles', `${role}-images`),
        role,
        args: { paths: [dir] },
      };
    }
    case 'finalDump':
      // Also after the lease resumed it: ResumedOnSource is recorded when the fence is won, before the shared disks
      // are restored and the CT thawed. resumeSource (idempotent) confirms the CT runs again on the source, so the
      // rollback never ends while the thaw is unfinished, and a CT that did not come back is reported.
      return { ...planned('resumeSource'), role: 'source', args: { ctid } };
    case 'backupDescriptor':
    case 'snapshotOrigin':
    case 'snapshotCopy': {
      const disk = Number(r.subject);
      const ddxml = (r.command.args as { ddxml: string }).ddxml;
      return {
        ...planned('restoreSharedDisk', String(disk)),
        role: 'source',
        args: { ddxml, originGuid: originGuid(mid, disk), copyGuid: copyGuid(mid, disk) },
      };
    }
    case 'copyLocalDisk': {
      // Every pass of a disk wrote into the same folder: one removal undoes them all.
      const target = (r.command.args as { targetDir: string }).targetDir;
      const disk = diskOfSubject(r.subject);
      return {
        ...planned('removeFiles', `target-disk${disk}`),
        role: 'target',
        args: { paths: [target] },
      };
    }
    case 'restore':
    case 'startTarget':
      return { ...planned('stopTarget'), role: 'target', args: { ctid } };
    case 'stopSource':
      return { ...planned('startSource'), role: 'source', args: { ctid } };
    case 'lockSource':
      // Released by inspection: only a lock this migration's holder took (a lock in doubt may be someone else's).
      return { ...planned('unlockSource'), role: 'source', args: { ctid } };
    case 'preDump':
    case 'streamImages':
    case 'releaseSource':
    case 'takeOwnership':
      // image dirs go with the image folder; releaseSource and takeOwnership come after the commit point and have no
      // undo: a rollback never finds the target owning the CT, since ownership moves only once the CT runs there.
      return undefined;
    case 'resumeSource':
    case 'restoreSharedDisk':
    case 'stopTarget':
    case 'removeFiles':
    case 'startSource':
    case 'umountSource':
    case 'cleanupSharedDisk':
    case 'mergeOrigin':
    case 'unlockSource':
    case 'releaseOwnership':
      return undefined;
  }
}

const done = (s: MigrationState, key: string) => s.steps[key]?.status === 'succeeded';

/** The image folder's removal on the target takes what the memory images' transfers wrote there too. */
const targetImages = stepKey('removeFiles', 'target-images');

/**
 * The compensation `key` undid the effect `e` for good: it succeeded, and was intended after every success of what it
 * removes (`e`'s step, and for the target's image folder every memory-image transfer). A transfer the coordinator
 * gave up (stalled, timed out) is compensated at once, while it may still run (mayCompensateNow waits for steps in
 * flight only): its success after the removal was intended says it may have written its files again after the
 * removal, and the removal is planned again. Before, the removal counted as done, and the files were left behind a
 * rolled-back migration. An operator's resolve counts from where it is in the log.
 */
function undone(s: MigrationState, key: string, e: Effect): boolean {
  const c = s.steps[key];
  if (c?.status !== 'succeeded') return false;
  const writes = key === targetImages ? Object.values(s.steps).filter((r) => r.step === 'streamImages') : [];
  const after = Math.max(...[e.rec, ...writes].map((r) => r.succeededOrder ?? -Infinity));
  // An older attempt's success was intended before this record's: where, the record does not say.
  if (c.resolvedBy === undefined && c.succeededByOlderAttempt) return after === -Infinity;
  const since = c.resolvedBy !== undefined ? (c.succeededOrder ?? c.order) : c.order;
  return since > after;
}

/**
 * The order of a rollback: the source's CT first, the target's leftovers after. The target CT stops first (the
 * fence lets the source resume only once a restored target is known stopped), then the shared disks are restored
 * (a thawed CT must never write a delta its descriptor does not name), then the source resumes or starts — as
 * soon as it is safe, not after the copies on the target are removed —, then everything else.
 */
const rollbackRank: Partial<Record<StepName, number>> = {
  stopTarget: 0,
  restoreSharedDisk: 1,
  resumeSource: 2,
  startSource: 2,
  // The CT lock goes last, once nothing of the migration is left to undo (vzmigrate unlocks at its very end).
  unlockSource: 4,
};
export const rankOf = (step: StepName): number => rollbackRank[step] ?? 3;
/** The rollback actions that bring the source's CT back: its shared disks restored, then the CT resumed or started. */
export const bringsSourceBack = (step: StepName): boolean => rankOf(step) === 1 || rankOf(step) === 2;

/**
 * Rollback plan: the compensation of every effect that happened and is not compensated yet, plus a reconcile action
 * for every effect in doubt, in the order of `rollbackRank` and, within a rank, latest effect first. Several effects
 * with one compensation (the three shared-disk steps of one disk) are undone by one action, placed at the latest of
 * them; it restores the disk in P.Haul's order (rename the copy back, merge the copy's snapshot) and also removes
 * what P.Haul leaks (f1, copy.lck).
 */
export function planRollback(events: readonly MigrationEvent[]): PlannedAction[] {
  return planRollbackOf(fold(events, initialState()));
}

export function planRollbackOf(s: MigrationState): PlannedAction[] {
  const byKey = new Map<string, PlannedAction & { at: number }>();
  for (const e of effects(s)) {
    const c = compensationOf(s, e);
    if (!c || undone(s, c.key, e)) continue;
    const prev = byKey.get(c.key);
    byKey.set(c.key, {
      ...c,
      reconcile: (prev?.reconcile ?? false) || e.inDoubt,
      covers: [...(prev?.covers ?? []), e.rec.key],
      at: e.rec.order,
    });
  }
  return [...byKey.values()]
    .sort((a, b) => rankOf(a.step) - rankOf(b.step) || b.at - a.at)
    .map(({ at: _at, ...a }) => a);
}

/**
 * Cleanup plan after the commit point, in order: unmount on the source, unregister the CT there, then per shared disk
 * remove the copy, its lock and the copy's top delta f2 (which P.Haul leaks) on the source, then merge the origin
 * snapshot G1 on the target (only after the source unmounted, so the base is never written while the source has it
 * open), then the source's stale local disks and both image folders, and last the source's CT lock. Actions already
 * done are left out.
 */
export function planCleanup(events: readonly MigrationEvent[]): PlannedAction[] {
  return planCleanupOf(fold(events, initialState()));
}

export function planCleanupOf(s: MigrationState): PlannedAction[] {
  if (!s.committed || !s.request) return [];
  const mid = s.migrationId ?? '';
  const ctid = s.request.ctid;
  const live = s.request.mode === 'live';
  const { shared, local } = migrationDisks(s);
  const actions: PlannedAction[] = [];
  const add = (a: Omit<PlannedAction, 'key' | 'reconcile' | 'covers'>) =>
    actions.push({ ...a, key: stepKey(a.step, a.subject), reconcile: false, covers: [] });
  if (live) add({ step: 'umountSource', subject: once, role: 'source', args: { ctid } });
  // The source lets go of the CT only now, after the target took it over (forwardAfterCommit): it unregisters it.
  add({ step: 'releaseOwnership', subject: once, role: 'source', args: { ctid } });
  if (live) {
    for (const d of shared) {
      const args = { ddxml: d.ddxml, originGuid: originGuid(mid, d.index), copyGuid: copyGuid(mid, d.index) };
      add({ step: 'cleanupSharedDisk', subject: String(d.index), role: 'source', args });
    }
    for (const d of shared) {
      const args = { ddxml: d.ddxml, originGuid: originGuid(mid, d.index), copyGuid: copyGuid(mid, d.index) };
      add({ step: 'mergeOrigin', subject: String(d.index), role: 'target', args });
    }
  }
  if (local.length > 0)
    add({
      step: 'removeFiles',
      subject: 'source-disks',
      role: 'source',
      args: { paths: local.map((d) => dirOf(d.ddxml)) },
    });
  const srcImg = s.imageDirs?.source;
  const tgtImg = s.imageDirs?.target;
  if (srcImg)
    add({ step: 'removeFiles', subject: 'source-images', role: 'source', args: { paths: [srcImg] } });
  if (tgtImg)
    add({ step: 'removeFiles', subject: 'target-images', role: 'target', args: { paths: [tgtImg] } });
  add({ step: 'unlockSource', subject: once, role: 'source', args: { ctid } });
  return actions.filter((a) => !done(s, a.key));
}

/** The image dir of a dump step, for stats and streaming. */
export const dumpImageDir = (rec: StepRecord): string => (rec.command.args as DumpArgs).imageDir;
