import type { ErrorInfo } from '@haul/schemas';
import { checkDisks, migrationDisksOf, type Findings } from './disks.ts';
import { errorCodes } from './errors.ts';
import type { FullRequest } from './request.ts';

/** Compare dotted versions numerically ("3.17" > "3.9.2"). */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  const pb = b.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** P.Haul's checks before anything changes: config on both sides, CT state, CRIU versions, CPU flags, disks. */
export function checkPreflight(req: FullRequest, src: Findings, tgt: Findings): ErrorInfo | undefined {
  const live = req.mode === 'live';
  if (!src.configPresent)
    return {
      code: errorCodes.preflightNoConfig,
      message: `CT ${req.ctid} has no config on the source ${req.source}`,
      field: 'ctid',
    };
  if (!tgt.configPresent)
    return {
      code: errorCodes.preflightNoConfig,
      message: `CT config missing on destination ${req.target}`,
      field: 'target',
    };
  const layout = checkLayouts(req, src, tgt);
  if (layout) return layout;
  if (live && !src.running)
    return {
      code: errorCodes.preflightNotRunning,
      message: `CT ${req.ctid} is not running on ${req.source}`,
      field: 'ctid',
    };
  if (tgt.running)
    return {
      code: errorCodes.preflightTargetRunning,
      message: `CT ${req.ctid} is already running on ${req.target}`,
      field: 'target',
    };
  if (live && compareVersions(tgt.criuVersion, src.criuVersion) < 0) {
    return {
      code: errorCodes.preflightCriuVersion,
      message: `criu on the target (${tgt.criuVersion}) is older than on the source (${src.criuVersion})`,
      field: 'target',
    };
  }
  if (live && !req.skipCpuCheck) {
    const missing = src.cpuFlags.filter((f) => !tgt.cpuFlags.includes(f));
    if (missing.length > 0)
      return {
        code: errorCodes.preflightCpu,
        message: `the target lacks CPU flags ${missing.join(' ')}`,
        field: 'target',
      };
  }
  return checkDisks(req, src, tgt) ?? checkBackupsLeft(req, src) ?? checkRoom(req, src, tgt);
}

/** The layout of a ploop CT's private area ($VE_PRIVATE/.ve.layout), the only kind haul migrates. */
export const ploopLayout = 5;

/** A finding's layout for a `.ve.layout` that is no link, or whose link holds no number (the schemas' -1). */
export const unreadableLayout = -1;

const layoutSaid = (layout: number) =>
  layout === unreadableLayout ? 'a .ve.layout that is no layout link' : `layout ${layout} (.ve.layout)`;

/**
 * Only a ploop CT moves: its private area's layout is 5 on the source (libvzctl mounts one below 5 as a simfs or VZFS
 * CT's, whose files haul does not copy), and the target has none of another layout where the CT's goes (vzmigrate
 * refuses that too: bin/migratedst.cpp initVEMigration, "private area … with different layout"). The target's
 * private area usually does not exist yet (layout 0); its agent makes it a ploop one before the restore. Findings
 * without a layout (an agent older than the check) are not judged.
 */
export function checkLayouts(req: FullRequest, src: Findings, tgt: Findings): ErrorInfo | undefined {
  if (src.layout !== undefined && src.layout !== ploopLayout)
    return {
      code: errorCodes.preflightNotPloop,
      message: `CT ${req.ctid} is no ploop CT on ${req.source}: its private area ${src.vePrivate ?? ''} has ${layoutSaid(src.layout)}, not layout ${ploopLayout}`,
      field: 'ctid',
    };
  if (tgt.layout !== undefined && tgt.layout !== 0 && tgt.layout !== ploopLayout)
    return {
      code: errorCodes.preflightNotPloop,
      message: `the private area ${tgt.vePrivate ?? ''} of CT ${req.ctid} on ${req.target} has ${layoutSaid(tgt.layout)}, not layout ${ploopLayout}: a ploop CT's cannot go there`,
      field: 'target',
    };
  return undefined;
}

/**
 * A live migration's preparation of a shared disk backs its descriptor up to DiskDescriptor.xml.copy, takes a copy
 * it finds there for its own (a step done once, then redelivered), and its rollback renames the copy back over the
 * descriptor. A copy that is there before the migration begins was left by another (a rollback stopped half-way
 * and resolved by hand): taken for this one's backup, a rollback would put the disk's descriptor back to what it
 * was then, and the deltas written since would be named by nothing. So the disk is refused until an operator has
 * looked (the source's finding; the target sees the same file on the same storage).
 */
export function checkBackupsLeft(req: FullRequest, src: Findings): ErrorInfo | undefined {
  if (req.mode !== 'live') return undefined;
  const left = src.disks.find((d) => d.location === 'shared' && d.backupLeft === true);
  if (!left) return undefined;
  return {
    code: errorCodes.preflightBackupLeft,
    message: `${left.ddxml} of CT ${req.ctid} has a DiskDescriptor.xml.copy beside it on ${req.source} that an earlier migration left: compare it with the descriptor, keep the right one, remove the copy, then migrate again`,
    field: 'sharedDisks',
  };
}

const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;

/**
 * Room on the target for what will certainly land there: the CT's memory images (live mode; a full dump is at most
 * its resident memory, pre-dumps add what it dirties, so this is a lower bound) in the image root, and the copies of
 * its local disks in its private area. Checked only when both nodes reported the numbers (older agents did not).
 */
export function checkRoom(req: FullRequest, src: Findings, tgt: Findings): ErrorInfo | undefined {
  const live = req.mode === 'live';
  const images = live ? src.memoryBytes : 0;
  if (images !== undefined && images > tgt.freeBytes)
    return {
      code: errorCodes.preflightNoRoom,
      message: `${req.target} has ${gib(tgt.freeBytes)} free in its image root, CT ${req.ctid}'s memory takes ${gib(images)}`,
      field: 'target',
    };
  const local = migrationDisksOf(src, tgt).local;
  if (local.some((d) => d.bytes === undefined) || tgt.privateFreeBytes === undefined) return undefined;
  const disks = local.reduce((a, d) => a + d.bytes!, 0);
  if (disks > tgt.privateFreeBytes)
    return {
      code: errorCodes.preflightNoRoom,
      message: `${req.target} has ${gib(tgt.privateFreeBytes)} free for CT ${req.ctid}'s private area, its local disks take ${gib(disks)}`,
      field: 'target',
    };
  return undefined;
}
