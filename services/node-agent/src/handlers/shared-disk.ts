import { constants, copyFileSync, existsSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { errorCodes, originGuid, planRollback, subjectOf } from '@haul/domain';
import type {
  DescriptorArgs,
  HostResult,
  MigrationEvent,
  SharedDiskArgs,
  SnapshotArgs,
  StepCommand,
} from '@haul/schemas';
import type { Tools } from '../adapters/tools.ts';
import {
  backupOf,
  hasGuid,
  readDescriptorView,
  topFile,
  type DescriptorView,
} from '../adapters/descriptor.ts';
import { DescriptorLockedError, withDescriptorLock } from '../adapters/descriptor-lock.ts';
import {
  cutShortSnapshot,
  readStoreTmp,
  removeIfSame,
  sweepOrphanDeltas,
} from '../adapters/orphan-deltas.ts';
import { entryAt, realPathOr } from '../adapters/files.ts';
import { argsOf, StepError, type Handler, type HandlerContext } from '../context.ts';

/**
 * The shared-ploop dance of P.Haul (fs_haul_ploop.py), each step idempotent by inspection. The CLI only takes
 * names ending in .xml, so the backup copy is addressed through `DiskDescriptor.copy.xml → DiskDescriptor.xml.copy`
 * (same folder, so relative image paths and the `.copy.lck` lock stay right).
 */
const copyXmlOf = (dd: string) => join(dirname(dd), 'DiskDescriptor.copy.xml');
const isLink = (p: string) => entryAt(p)?.isSymbolicLink() ?? false;
/** A regular file or a symlink (never a folder): what a step of this dance may have left and may remove. */
const isFileOrLink = (p: string) => {
  const st = entryAt(p);
  return st !== undefined && (st.isFile() || st.isSymbolicLink());
};
const rm = (p: string, actions: string[], what = basename(p)) => {
  if (existsSync(p) || isLink(p)) {
    rmSync(p, { force: true });
    actions.push(`removed ${what}`);
  }
};

/**
 * The preparation runs only in its migration's frozen window, while the final dump holds the CT. Once the CT resumed
 * (its lease expired, or a rollback), a command still queued must not prepare the running CT's disk again: the
 * resume restored the disks first, and a new copy snapshot would make the CT write a delta its descriptor does not name.
 */
function requireFrozen(cmd: StepCommand, ctx: HandlerContext): void {
  if (!ctx.held.isHeld(cmd.migrationId))
    throw new StepError(
      errorCodes.notHeld,
      `${cmd.step}: no dump of this migration holds the CT frozen on ${ctx.cfg.node} (it was resumed or released)`,
    );
}

export const backupDescriptor: Handler = (cmd, ctx) => {
  requireFrozen(cmd, ctx);
  const { ddxml } = argsOf<DescriptorArgs>(cmd);
  const copy = backupOf(ddxml);
  const r: HostResult = { actions: [], path: copy };
  if (existsSync(copy)) r.actions.push('backup already present');
  else {
    // Never written through a symlink: a left-over .tmp goes first, and COPYFILE_EXCL opens it O_CREAT|O_EXCL.
    rmSync(`${copy}.tmp`, { force: true });
    copyFileSync(ddxml, `${copy}.tmp`, constants.COPYFILE_EXCL);
    renameSync(`${copy}.tmp`, copy);
    r.actions.push('DiskDescriptor.xml copied to DiskDescriptor.xml.copy');
  }
  return Promise.resolve(r);
};

export const snapshotOrigin: Handler = async (cmd, ctx) => {
  requireFrozen(cmd, ctx);
  const { ddxml, guid } = argsOf<SnapshotArgs>(cmd);
  const r: HostResult = { actions: [] };
  if (hasGuid(readDescriptorView(ddxml), guid)) r.actions.push(`snapshot ${guid} already in the descriptor`);
  else {
    if (!existsSync(backupOf(ddxml)))
      throw new StepError(errorCodes.noBackup, `refusing to snapshot ${ddxml} without its backup copy`);
    await ctx.tools.ploopSnapshot(ddxml, guid, true);
    r.actions.push(`offline snapshot ${guid} on the origin`);
  }
  const top = topFile(readDescriptorView(ddxml));
  if (top) r.path = top;
  return r;
};

/**
 * The copy is snapshotted only after the origin (P.Haul's order). A disk's three preparation commands are sent
 * together and run one after the other in the agent's queue, so this one may come after a snapshotOrigin that
 * failed: without the origin's snapshot G1 in the descriptor it refuses, and changes nothing.
 */
function requireOriginSnapshot(cmd: StepCommand, ddxml: string): void {
  const g1 = originGuid(cmd.migrationId, Number(subjectOf(cmd.commandId)));
  if (!hasGuid(readDescriptorView(ddxml), g1))
    throw new StepError(
      errorCodes.noOriginSnapshot,
      `refusing to snapshot the copy of ${ddxml} before the origin's snapshot ${g1}`,
    );
}

export const snapshotCopy: Handler = async (cmd, ctx) => {
  requireFrozen(cmd, ctx);
  const { ddxml, guid } = argsOf<SnapshotArgs>(cmd);
  const copy = backupOf(ddxml);
  const link = copyXmlOf(ddxml);
  if (!existsSync(copy)) throw new StepError(errorCodes.noBackup, `${copy} is missing`);
  const done = hasGuid(readDescriptorView(copy), guid);
  if (!done) requireOriginSnapshot(cmd, ddxml);
  if (!isLink(link)) symlinkSync(basename(copy), link);
  const r: HostResult = { actions: [] };
  if (done) r.actions.push(`snapshot ${guid} already in the copy`);
  else {
    await ctx.tools.ploopSnapshot(link, guid, false);
    r.actions.push(`online snapshot ${guid} on the copy: the source device now writes its new top delta`);
  }
  const top = topFile(readDescriptorView(copy));
  if (top) r.path = top;
  return r;
};

/**
 * Remove the disk's orphan deltas (adapters/orphan-deltas.ts: which deltas are, and why a snapshot under way keeps
 * its own), under the descriptor's lock: ploop 7 holds it from creating a delta to storing the descriptor that names
 * it, and from storing one without a delta to unlinking it.
 */
const sweepOrphans = (ddxml: string, actions: string[]): Promise<void> =>
  locked(ddxml, () => sweepOrphanDeltas(ddxml, actions));

/** `fn` under the descriptor's lock; a lock not had in time is the step's failure (HAUL_DESCRIPTOR_LOCKED). */
async function locked<T>(ddxml: string, fn: () => T): Promise<T> {
  try {
    return await withDescriptorLock(ddxml, fn);
  } catch (err) {
    if (err instanceof DescriptorLockedError) throw new StepError(errorCodes.descriptorLocked, err.message);
    throw err;
  }
}

/**
 * This migration's origin snapshot G1 cut short between storing `DiskDescriptor.xml.tmp` and renaming it (its ploop
 * killed on its timeout, or its host crashed: adapters/orphan-deltas.ts cutShortSnapshot) is undone: the .tmp and the
 * delta it made, which nothing else names, are removed. It is an offline snapshot: no device was switched to that
 * delta. Under the descriptor's lock, before the copy is renamed over the descriptor.
 */
function undoOriginCutShort(ddxml: string, orig: DescriptorView, g1: string, actions: string[]): void {
  const path = `${realPathOr(ddxml)}.tmp`;
  const tmp = readStoreTmp(path);
  const made = tmp.kind === 'whole' ? cutShortSnapshot(orig, tmp.view, g1) : undefined;
  if (!made || tmp.kind !== 'whole' || !removeIfSame(path, tmp.id)) return;
  actions.push(`removed DiskDescriptor.xml.tmp of the origin's snapshot ${g1}, cut short`);
  rm(made, actions, `its delta ${basename(made)}`);
}

/**
 * This migration's snapshot G2 of the copy cut short before its rename: an online snapshot, so the source's device
 * may have been switched to its delta and written to it since. Once the delta exists the snapshot is finished (its
 * `.tmp` renamed over the copy, as ploop would have): the rollback then merges G2, taking those writes into the base
 * — and if the device was never switched, that merge is refused and the disk is not restored, so the CT is not thawed
 * on a descriptor that misses what it wrote. A `.tmp` whose delta was not made yet is removed. Under the lock.
 */
function finishCopyCutShort(ddxml: string, g2: string, actions: string[]): void {
  const copy = realPathOr(backupOf(ddxml));
  const tmp = readStoreTmp(`${copy}.tmp`);
  const made = tmp.kind === 'whole' ? cutShortSnapshot(readDescriptorView(copy), tmp.view, g2) : undefined;
  if (!made || tmp.kind !== 'whole') return;
  if (!existsSync(made)) {
    if (removeIfSame(`${copy}.tmp`, tmp.id))
      actions.push(
        `removed DiskDescriptor.xml.copy.tmp of the copy's snapshot ${g2}, cut short before its delta`,
      );
    return;
  }
  renameSync(`${copy}.tmp`, copy);
  actions.push(
    `finished the copy's snapshot ${g2}, cut short after it made ${basename(made)} (the source's device may write it)`,
  );
}

/**
 * Rollback of a shared disk, whatever state the preparation reached: rename the copy back over the descriptor,
 * merge the copy's snapshot G2 (the source device's writes since then go into the base), and remove what P.Haul
 * leaks: the origin's new delta f1, `.copy.lck`, the `.xml` link (and a backup's `.copy.tmp`). Idempotent by
 * inspection; the actions it took. The rename is made under the descriptor's lock, as ploop changes a descriptor:
 * a ploop operation under way (an operator's) stores its descriptor before it, never over it. The last look, that no
 * migration snapshot is left, reads the descriptor after everything else.
 */
async function restoreDisk(tools: Tools, args: SharedDiskArgs): Promise<string[]> {
  const { ddxml, originGuid, copyGuid } = args;
  const actions: string[] = [];
  const f1 = await locked(ddxml, () => {
    const orig = readDescriptorView(ddxml);
    undoOriginCutShort(ddxml, orig, originGuid, actions);
    if (existsSync(backupOf(ddxml))) {
      finishCopyCutShort(ddxml, copyGuid, actions);
      renameSync(backupOf(ddxml), ddxml);
      actions.push('renamed DiskDescriptor.xml.copy over DiskDescriptor.xml');
    }
    return hasGuid(orig, originGuid) ? topFile(orig) : undefined;
  });
  // A backup interrupted between its copy and its rename (backupDescriptor) left its temporary copy; anything else
  // by that name (a folder) is not this dance's, and stays.
  const tmp = `${backupOf(ddxml)}.tmp`;
  if (isFileOrLink(tmp)) rm(tmp, actions);
  if (hasGuid(readDescriptorView(ddxml), copyGuid)) {
    await tools.ploopSnapshotDelete(ddxml, copyGuid);
    actions.push(`merged the copy's snapshot ${copyGuid}`);
  }
  if (f1 && !readDescriptorView(ddxml).images.some((i) => i.file === f1))
    rm(f1, actions, `origin delta ${basename(f1)}`);
  await sweepOrphans(ddxml, actions);
  rm(`${backupOf(ddxml)}.lck`, actions);
  rm(copyXmlOf(ddxml), actions);
  const now = readDescriptorView(ddxml);
  if (hasGuid(now, originGuid) || hasGuid(now, copyGuid))
    throw new StepError(errorCodes.diskNotRestored, `${ddxml} still has a migration snapshot`);
  return actions;
}

export const restoreSharedDisk: Handler = async (cmd, ctx) =>
  ({ actions: await restoreDisk(ctx.tools, argsOf<SharedDiskArgs>(cmd)) }) satisfies HostResult;

/**
 * Before a frozen CT may run again on the source: restore every shared disk whose preparation started in this
 * migration and is not restored yet — the restoreSharedDisk actions the rollback plan holds for this log — one after
 * the other. A disk that cannot be restored throws, and the caller must not thaw. The rollback's own
 * restoreSharedDisk steps later find these disks restored (by inspection) and do nothing.
 */
export async function restorePreparedDisks(
  ctx: HandlerContext,
  events: readonly MigrationEvent[],
): Promise<string[]> {
  const actions: string[] = [];
  for (const a of planRollback(events)) {
    if (a.step !== 'restoreSharedDisk') continue;
    const done = await restoreDisk(ctx.tools, a.args as unknown as SharedDiskArgs);
    actions.push(...done.map((what) => `disk ${a.subject}: ${what}`));
  }
  return actions;
}

/** After the commit, on the source (after it unmounted): the copy, its lock and its delta f2 go. */
export const cleanupSharedDisk: Handler = async (cmd) => {
  const { ddxml, copyGuid } = argsOf<SharedDiskArgs>(cmd);
  const r: HostResult = { actions: [] };
  if (existsSync(backupOf(ddxml))) {
    const cv = readDescriptorView(backupOf(ddxml));
    const f2 = topFile(cv);
    rm(backupOf(ddxml), r.actions);
    if (f2 && hasGuid(cv, copyGuid) && !readDescriptorView(ddxml).images.some((i) => i.file === f2))
      rm(f2, r.actions, `copy delta ${basename(f2)}`);
  }
  await sweepOrphans(ddxml, r.actions);
  rm(`${backupOf(ddxml)}.lck`, r.actions);
  rm(copyXmlOf(ddxml), r.actions);
  return r;
};

/**
 * On the target, once the source no longer has the base open: merge G1 (f1 into the base) online. ploop removes f1
 * after it stored the descriptor: a merge cut short in between (its host crashed, or its timeout) left f1, named by
 * nothing, which the sweep removes (cleanupSharedDisk's sweep runs before this step).
 */
export const mergeOrigin: Handler = async (cmd, ctx) => {
  const { ddxml, originGuid } = argsOf<SharedDiskArgs>(cmd);
  const r: HostResult = { actions: [] };
  if (hasGuid(readDescriptorView(ddxml), originGuid)) {
    await ctx.tools.ploopSnapshotDelete(ddxml, originGuid);
    r.actions.push(`merged origin snapshot ${originGuid}`);
  } else r.actions.push('origin snapshot already merged');
  await sweepOrphans(ddxml, r.actions);
  return r;
};
