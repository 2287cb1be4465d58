import type { ActionScript, ErrorInfo } from '@haul/schemas';
import { checkDisks, migrationDisksOf, targetDdxmlOf, type Findings } from './disks.ts';
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
  const privateArea = checkLayouts(req, src, tgt) ?? checkActionScripts(req, src, tgt);
  if (privateArea) return privateArea;
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
  return (
    checkDisks(req, src, tgt) ??
    checkBackupsLeft(req, src) ??
    checkLocalDisksLeft(req, src, tgt) ??
    checkRoom(req, src, tgt)
  );
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

/** The same script: its name, its digest and whether it may be executed (one without a digest equals nothing). */
const sameScript = (a: ActionScript, b: ActionScript): boolean =>
  a.name === b.name &&
  a.sha256 !== undefined &&
  a.sha256 === b.sha256 &&
  (a.executable ?? false) === (b.executable ?? false);

/**
 * The CT's action scripts: vzctl runs `$VE_PRIVATE/scripts/{premount,mount,umount,postumount}` on the host around its
 * mount and unmount, and `start`/`stop` in it around its start and stop (libvzctl lib/util.c get_action_script_path
 * and run_action_scripts; lib/env.c). haul moves a CT's disks, not the rest of its private area (vzmigrate copies the
 * whole folder), so the CT would run on the target with the scripts the target has there: none, usually, where the
 * source's did bind mounts or set up its network. So the scripts must be the same on both nodes, byte for byte and
 * mode bit x alike: on a private area on shared storage they are the same files; otherwise an operator puts them in
 * place on the target first (the target's agent makes the rest of the private area around them, and a rollback leaves
 * them there). A script only the target has would run there too, and is refused as well. The node's own scripts
 * (/etc/vz/conf/vps.<action>, run for every CT) are the node's configuration, as vz.conf is, and not compared.
 * Findings that do not list the scripts (from an agent older than the check) are not judged; an empty list is.
 */
export function checkActionScripts(req: FullRequest, src: Findings, tgt: Findings): ErrorInfo | undefined {
  if (src.actionScripts === undefined || tgt.actionScripts === undefined) return undefined;
  const missing = src.actionScripts.filter((a) => !tgt.actionScripts!.some((b) => sameScript(a, b)));
  const extra = tgt.actionScripts.filter((b) => !src.actionScripts!.some((a) => a.name === b.name));
  if (missing.length === 0 && extra.length === 0) return undefined;
  const names = (l: ActionScript[]) => l.map((a) => a.name).join(', ');
  const onTarget = `${tgt.vePrivate ?? '$VE_PRIVATE'}/scripts on ${req.target}`;
  const differ =
    missing.length > 0
      ? `the action script(s) ${names(missing)} of CT ${req.ctid} in ${src.vePrivate ?? '$VE_PRIVATE'}/scripts on ${req.source} are not the same in ${onTarget}`
      : '';
  const more =
    extra.length > 0 ? `${onTarget} has ${names(extra)}, which the CT on ${req.source} has not` : '';
  return {
    code: errorCodes.preflightActionScripts,
    message: `${[differ, more].filter(Boolean).join('; ')}: vzctl runs a CT's action scripts from its private area, and haul moves a CT's disks, not its scripts. Make the two folders the same (copy the scripts to the target, or remove them), then migrate again`,
    field: 'ctid',
  };
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

/**
 * A restart-mode copy of a local disk resumes from what the target holds: a file of the disk's folder there with the
 * source file's name and size counts as copied, so that a transfer tried again goes on from the files an earlier
 * attempt finished. Files there before the migration begins were left by another (a rollback whose removal of the
 * target's copy failed, then was resolved by hand): taken for this copy's, the CT would start on their data. So a
 * restart-mode migration is refused while the target's inspection finds files where a local disk's copy goes (its
 * disk's folder, `bytes`), until an operator removed them. A live migration's first pass trusts nothing the target
 * holds (it sends every byte), and is not refused.
 */
export function checkLocalDisksLeft(req: FullRequest, src: Findings, tgt: Findings): ErrorInfo | undefined {
  if (req.mode !== 'restart') return undefined;
  const there = new Map(tgt.disks.map((d) => [d.ddxml, d]));
  for (const d of migrationDisksOf(src, tgt).local) {
    const at = targetDdxmlOf(d, src.vePrivate, tgt.vePrivate);
    const bytes = there.get(at)?.bytes;
    if (bytes)
      return {
        code: errorCodes.preflightLocalDiskLeft,
        message: `${at.slice(0, at.lastIndexOf('/'))} on ${req.target} already holds ${bytes} bytes of files where CT ${req.ctid}'s local disk ${d.ddxml} is copied to, left by an earlier migration: a restart-mode copy would take a file of the same name and size for its own. Remove them, then migrate again`,
        field: 'target',
      };
  }
  return undefined;
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
