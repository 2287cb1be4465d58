import {
  closeSync,
  constants,
  copyFileSync,
  existsSync,
  fsync,
  openSync,
  renameSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
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
import {
  backupOf,
  hasGuid,
  readDescriptorView,
  topFile,
  type DescriptorView,
} from '../adapters/descriptor.ts';
import { DescriptorLockedError, withDescriptorLock } from '../adapters/descriptor-lock.ts';
import { deviceDeltas, openedDeltas } from '../adapters/device-chain.ts';
import {
  cutShortSnapshot,
  deltaPattern,
  readStoreTmp,
  removeIfSame,
  renameIfSame,
  settleCutShort,
  sweepOrphanDeltas,
  type DeviceTop,
} from '../adapters/orphan-deltas.ts';
import { entryAt, realPathOr } from '../adapters/files.ts';
import { asToolTime } from '../adapters/tool-time.ts';
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

/**
 * fsync a file (never through a link), on libuv's pool (a sync waits for the shared storage; other migrations'
 * steps need not), counted as the step's host time, as a tool's run is: it is the storage's work, not the control
 * plane's.
 */
function syncToDisk(path: string): Promise<void> {
  return asToolTime(async () => {
    const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      await new Promise<void>((resolve, reject) => fsync(fd, (err) => (err ? reject(err) : resolve())));
    } finally {
      closeSync(fd);
    }
  });
}

/**
 * The backup is on disk before the origin's snapshot changes the descriptor: the copy is synced before it is named
 * `.copy`, as ploop stores a descriptor (lib/xml.c store_diskdescriptor writes `<dd>.tmp`, fsyncs it and renames it
 * over, at d5c202b). A host that lost power after the snapshot rolls back to the whole descriptor it had, not to an
 * empty or torn copy the page cache never wrote. The folder is not synced here, as ploop does not sync it: the
 * snapshot's own store (an fsync on the same file system, after this rename) commits ext4's journal with the rename in
 * it, and an NFS server commits a rename before it answers. The copy's sync is in the frozen window: 2.2-4.0 ms of
 * the demo's (three runs, this VM's ext4).
 */
export const backupDescriptor: Handler = async (cmd, ctx) => {
  requireFrozen(cmd, ctx);
  const { ddxml } = argsOf<DescriptorArgs>(cmd);
  const copy = backupOf(ddxml);
  const r: HostResult = { actions: [], path: copy };
  if (existsSync(copy)) r.actions.push('backup already present');
  else {
    // Never written through a symlink: a left-over .tmp goes first, and COPYFILE_EXCL opens it O_CREAT|O_EXCL.
    rmSync(`${copy}.tmp`, { force: true });
    copyFileSync(ddxml, `${copy}.tmp`, constants.COPYFILE_EXCL);
    await syncToDisk(`${copy}.tmp`);
    renameSync(`${copy}.tmp`, copy);
    r.actions.push('DiskDescriptor.xml copied to DiskDescriptor.xml.copy');
  }
  return r;
};

export const snapshotOrigin: Handler = async (cmd, ctx) => {
  requireFrozen(cmd, ctx);
  const { ddxml, guid } = argsOf<SnapshotArgs>(cmd);
  const r: HostResult = { actions: [] };
  // An earlier run of this step cut short (its ploop killed before its rename) is settled first.
  await settleIfCutShort(ctx, originSnapshot(ddxml, guid), r.actions);
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
  const r: HostResult = { actions: [] };
  // An earlier run of this step cut short: finished if the device writes its delta (then done below), else undone.
  await settleIfCutShort(ctx, copySnapshot(ddxml, guid), r.actions);
  const done = hasGuid(readDescriptorView(copy), guid);
  if (!done) requireOriginSnapshot(cmd, ddxml);
  if (!isLink(link)) symlinkSync(basename(copy), link);
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
const sweepOrphans = (ctx: Pick<HandlerContext, 'cfg'>, ddxml: string, actions: string[]): Promise<void> =>
  locked(ddxml, () => sweepOrphanDeltas(ddxml, actions, { opened: () => openedDeltas(ctx.cfg.hostRoot) }));

/** `fn` under the descriptor's lock; a lock not had in time is the step's failure (HAUL_DESCRIPTOR_LOCKED). */
async function locked<T>(ddxml: string, fn: () => T): Promise<T> {
  try {
    return await withDescriptorLock(ddxml, fn);
  } catch (err) {
    if (err instanceof DescriptorLockedError) throw new StepError(errorCodes.descriptorLocked, err.message);
    throw err;
  }
}

/** A snapshot of the dance: the origin's (G1 of the descriptor, offline) or the copy's (G2 of the copy, online). */
type MigrationSnapshot = { descriptor: string; guid: string; online: boolean };
const originSnapshot = (ddxml: string, g1: string): MigrationSnapshot => ({
  descriptor: ddxml,
  guid: g1,
  online: false,
});
const copySnapshot = (ddxml: string, g2: string): MigrationSnapshot => ({
  descriptor: backupOf(ddxml),
  guid: g2,
  online: true,
});

/**
 * A snapshot of this migration (`guid`, of `descriptor`) cut short between storing `<descriptor>.tmp` and renaming it
 * — its ploop killed on its timeout, or its host crashed — settled as ploop would have ended it
 * (adapters/orphan-deltas.ts cutShortSnapshot, settleCutShort): finished when the device was switched to its delta
 * (online) and writes it, undone otherwise; left as it is, and the step failed (HAUL_SNAPSHOT_IN_DOUBT), when the
 * host does not show which deltas the device opens. The caller holds the descriptor's lock; each migration's steps run
 * one at a time, so no ploop of this migration runs meanwhile. By the rollback before it restores the disk, and by the
 * snapshot steps before they run again.
 */
async function settleCutShortStore(
  ctx: Pick<HandlerContext, 'tools' | 'cfg'>,
  { descriptor, guid, online }: MigrationSnapshot,
  actions: string[],
): Promise<void> {
  const dd = realPathOr(descriptor);
  const tmp = readStoreTmp(`${dd}.tmp`);
  if (tmp.kind !== 'whole') return;
  const before = readDescriptorView(dd);
  const made = cutShortSnapshot(before, tmp.view, guid);
  if (!made) return;
  const madeExists = existsSync(made);
  const deviceTop = online && madeExists ? await deviceTopOf(ctx, before) : 'no device';
  const name = basename(`${dd}.tmp`);
  switch (settleCutShort({ online, made, madeExists, deviceTop })) {
    case 'finish':
      if (renameIfSame(`${dd}.tmp`, dd, tmp.id))
        actions.push(`finished the snapshot ${guid} cut short: its device writes ${basename(made)}`);
      return;
    case 'undo':
      if (!removeIfSame(`${dd}.tmp`, tmp.id)) return;
      actions.push(`removed ${name} of the snapshot ${guid}, cut short`);
      // Only a file named and placed as ploop makes a delta, beside the base image.
      if (isDeltaOf(before, made)) rm(made, actions, `its delta ${basename(made)}`);
      return;
    case 'unknown':
      throw new StepError(
        errorCodes.snapshotInDoubt,
        `the snapshot ${guid} of ${dd} was cut short after it made ${made}, and this host does not show whether its ` +
          `device writes it (no /sys/block/<device>/pdelta): ${name} and the delta are left for an operator`,
      );
  }
}

/** Whether `file` is named and placed as ploop makes a delta of this disk: `<base>.{GUID}` beside its base image. */
function isDeltaOf(disk: DescriptorView, file: string): boolean {
  const base = disk.images[0]?.file;
  return (
    base !== undefined &&
    realPathOr(dirname(file)) === realPathOr(dirname(base)) &&
    deltaPattern(base).test(basename(file))
  );
}

/** settleCutShortStore under `descriptor`'s own lock, when it has a `.tmp` (none: nothing to settle, no lock taken). */
async function settleIfCutShort(
  ctx: Pick<HandlerContext, 'tools' | 'cfg'>,
  snap: MigrationSnapshot,
  actions: string[],
): Promise<void> {
  if (!existsSync(`${realPathOr(snap.descriptor)}.tmp`)) return;
  await locked(snap.descriptor, () => settleCutShortStore(ctx, snap, actions));
}

/** The top delta of the device that opens this disk here (`ploop list` finds it by its base delta). */
async function deviceTopOf(
  ctx: Pick<HandlerContext, 'tools' | 'cfg'>,
  disk: DescriptorView,
): Promise<DeviceTop> {
  const base = disk.images[0]?.file;
  const dev = base && (await ctx.tools.ploopList()).find((d) => realPathOr(d.base) === realPathOr(base));
  if (!dev) return 'no device';
  const top = deviceDeltas(ctx.cfg.hostRoot, dev.device)?.at(-1);
  return top === undefined ? 'not shown' : { file: top };
}

/**
 * Rollback of a shared disk, whatever state the preparation reached: rename the copy back over the descriptor,
 * merge the copy's snapshot G2 (the source device's writes since then go into the base), and remove what P.Haul
 * leaks: the origin's new delta f1, `.copy.lck`, the `.xml` link (and a backup's `.copy.tmp`). Idempotent by
 * inspection; the actions it took. The rename is made under the descriptor's lock, as ploop changes a descriptor:
 * a ploop operation under way (an operator's) stores its descriptor before it, never over it. The last look, that no
 * migration snapshot is left, reads the descriptor after everything else.
 */
async function restoreDisk(
  ctx: Pick<HandlerContext, 'tools' | 'cfg'>,
  args: SharedDiskArgs,
): Promise<string[]> {
  const { ddxml, originGuid, copyGuid } = args;
  const actions: string[] = [];
  // The copy's snapshot G2 is online: settled under the copy's own lock, the one its ploop took.
  if (existsSync(backupOf(ddxml))) await settleIfCutShort(ctx, copySnapshot(ddxml, copyGuid), actions);
  const f1 = await locked(ddxml, async () => {
    await settleCutShortStore(ctx, originSnapshot(ddxml, originGuid), actions);
    const orig = readDescriptorView(ddxml);
    if (entryAt(backupOf(ddxml))) putBackupBack(ddxml, hasGuid(orig, originGuid), actions);
    return hasGuid(orig, originGuid) ? topFile(orig) : undefined;
  });
  // A backup interrupted between its copy and its rename (backupDescriptor) left its temporary copy; anything else
  // by that name (a folder) is not this dance's, and stays.
  const tmp = `${backupOf(ddxml)}.tmp`;
  if (isFileOrLink(tmp)) rm(tmp, actions);
  if (hasGuid(readDescriptorView(ddxml), copyGuid)) {
    await ctx.tools.ploopSnapshotDelete(ddxml, copyGuid);
    actions.push(`merged the copy's snapshot ${copyGuid}`);
  }
  if (f1 && !readDescriptorView(ddxml).images.some((i) => i.file === f1))
    rm(f1, actions, `origin delta ${basename(f1)}`);
  await sweepOrphans(ctx, ddxml, actions);
  rm(`${backupOf(ddxml)}.lck`, actions);
  rm(copyXmlOf(ddxml), actions);
  const now = readDescriptorView(ddxml);
  if (hasGuid(now, originGuid) || hasGuid(now, copyGuid))
    throw new StepError(errorCodes.diskNotRestored, `${ddxml} still has a migration snapshot`);
  return actions;
}

/**
 * The backup is renamed back over the descriptor only when it is a regular file that reads as a whole descriptor of a
 * disk (well-formed XML naming an image): a copy a crash of the host left empty or torn (one made before its sync,
 * backupDescriptor), or a link, would replace the descriptor that names the disk's deltas. Such a copy fails the
 * step, both files left as they are for an operator, unless the origin was never snapshotted (`snapshotted`: its G1
 * is not in the descriptor, nor then the copy's, which needs it): the descriptor is then the disk's own, and the copy
 * holds nothing the disk needs; it is removed.
 */
function putBackupBack(ddxml: string, snapshotted: boolean, actions: string[]): void {
  const copy = backupOf(ddxml);
  const why = unusableBackup(copy);
  if (why === undefined) {
    renameSync(copy, ddxml);
    actions.push('renamed DiskDescriptor.xml.copy over DiskDescriptor.xml');
  } else if (!snapshotted)
    rm(copy, actions, `DiskDescriptor.xml.copy (${why}; the origin was never snapshotted)`);
  else
    throw new StepError(
      errorCodes.diskNotRestored,
      `${copy} does not read as a whole descriptor (${why}): it is not put over ${ddxml}, and both are left as ` +
        'they are for an operator',
    );
}

/** Why a backup copy cannot be put back over its descriptor, or undefined when it can. */
function unusableBackup(copy: string): string | undefined {
  if (!entryAt(copy)?.isFile()) return 'it is not a regular file';
  const read = readStoreTmp(copy);
  if (read.kind === 'unreadable') return read.why;
  if (read.kind === 'none') return 'it is gone';
  return read.view.images.length === 0 ? 'it names no image' : undefined;
}

export const restoreSharedDisk: Handler = async (cmd, ctx) =>
  ({ actions: await restoreDisk(ctx, argsOf<SharedDiskArgs>(cmd)) }) satisfies HostResult;

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
    const done = await restoreDisk(ctx, a.args as unknown as SharedDiskArgs);
    actions.push(...done.map((what) => `disk ${a.subject}: ${what}`));
  }
  return actions;
}

/** After the commit, on the source (after it unmounted): the copy, its lock and its delta f2 go. */
export const cleanupSharedDisk: Handler = async (cmd, ctx) => {
  const { ddxml, copyGuid } = argsOf<SharedDiskArgs>(cmd);
  const r: HostResult = { actions: [] };
  if (existsSync(backupOf(ddxml))) {
    const cv = readDescriptorView(backupOf(ddxml));
    const f2 = topFile(cv);
    rm(backupOf(ddxml), r.actions);
    if (f2 && hasGuid(cv, copyGuid) && !readDescriptorView(ddxml).images.some((i) => i.file === f2))
      rm(f2, r.actions, `copy delta ${basename(f2)}`);
  }
  await sweepOrphans(ctx, ddxml, r.actions);
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
  await sweepOrphans(ctx, ddxml, r.actions);
  return r;
};
