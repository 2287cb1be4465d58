import { existsSync, lstatSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { mayStartRestore, errorCodes, ploopLayout, unreadableLayout } from '@haul/domain';
import type { CtArgs, HostResult, RemoveFilesArgs, RestoreArgs } from '@haul/schemas';
import { readRestoreTimeUs } from '../adapters/criu-stats.ts';
import { diskOwner } from '../adapters/descriptor.ts';
import { entryAt, realPathOr, writeNew } from '../adapters/files.ts';
import { ensurePloopLayout, layoutVersion, removeBarePrivateArea } from '../adapters/private-area.ts';
import { vzctlEnvRun } from '../adapters/tools.ts';
import { readCtDisks } from '../adapters/vz-config.ts';
import { argsOf, etcVz, StepError, type Handler, type HandlerContext } from '../context.ts';

/**
 * `vzctl restore` on the target, after winning the fence: RestoreStarted is appended with compare-and-set only
 * while nobody resumed the source and the target has not rebooted since its preflight. After a crash, a running CT
 * means the restore happened when vzctl got to its end (requireRestoreFinished).
 * Before it, the CT's private area is made ready (privateAreaReady).
 */
export const restore: Handler = async (cmd, ctx) => {
  const a = argsOf<RestoreArgs>(cmd);
  const r: HostResult = { actions: [] };
  const started = ctx.event(
    'RestoreStarted',
    { commandId: cmd.commandId },
    `${cmd.commandId}:restore-started`,
  );
  const v = await ctx.fencedAppend(started, (events, again) =>
    mayStartRestore(events, { bootId: ctx.cfg.bootId, commandId: cmd.commandId }, again),
  );
  if (!v.ok) throw new StepError(v.code, v.reason);
  r.actions.push(...privateAreaReady(ctx, a.ctid));
  const extra = join(a.imageDir, 'restore-extra-args');
  writeNew(
    extra,
    `VE_WORK_DIR=${a.workDir}\nVE_RESTORE_LOG_PATH=criu_restore.${cmd.attempt}.log\nVE_CRIU_LOGLEVEL=4\n`,
    0o600,
  );
  const t0 = performance.now();
  try {
    // A restore that ran before a crash or a redelivery left the CT running: vzctl refuses to restore a running CT
    // with 32 before it touches anything (libvzctl lib/env.c vzctl_env_restore 1274–1276, VZCTL_E_ENV_RUN), which
    // saves a `vzctl status` inside the frozen window.
    if ((await ctx.tools.vzctlRestore(a.ctid, a.imageDir)).exitCode === vzctlEnvRun) {
      requireRestoreFinished(a.imageDir, ctx.cfg.node, a.ctid);
      r.actions.push('CT already running on the target: an earlier run restored it');
      return r;
    }
  } finally {
    rmSync(extra, { force: true });
  }
  r.durationMs = performance.now() - t0;
  const stats = join(a.workDir, 'stats-restore');
  if (existsSync(stats)) r.restoreUs = readRestoreTimeUs(stats);
  r.actions.push('restored');
  return r;
};

/**
 * A CT found running when the restore runs again is taken for this restore's only if vzctl got to its end: on success
 * it makes `<dump dir>.restore` and moves criu's logs there, after criu's restored tasks resumed (libvzctl
 * lib/cr_criu.c restore_fin 307-335, at ebbfc38). Without it the CT may run from a restore cut short (the agent killed
 * mid-restore, its vzctl killed at the end of its time: the CT's tasks leave the tool's process group and outlive it),
 * and committing would have the source's frozen CT killed for it. The step fails instead: the rollback stops the CT
 * here, and the source, still frozen, resumes.
 */
function requireRestoreFinished(imageDir: string, node: string, ctid: string): void {
  if (entryAt(`${imageDir}.restore`)?.isDirectory()) return;
  throw new StepError(
    errorCodes.restoreInDoubt,
    `CT ${ctid} runs on ${node}, but vzctl never finished restoring it from ${imageDir} (no ${basename(imageDir)}.restore): it may run from a restore cut short`,
  );
}

/** Stop and unmount (idempotent: vzctl stop exits 0 when the CT is not running; umount 40 = not mounted). */
export const stopAndUmount: Handler = async (cmd, ctx) => {
  const { ctid } = argsOf<CtArgs>(cmd);
  const r: HostResult = { actions: [] };
  const st = await ctx.tools.vzctlStatus(ctid);
  if (st.running) {
    await ctx.tools.vzctlStop(ctid);
    r.actions.push('stopped');
  }
  if ((await ctx.tools.vzctlUmount(ctid)).exitCode === 0) r.actions.push('unmounted');
  await requireDetached(ctx, ctid);
  return r;
};

/**
 * stopTarget, the undo of the target's restore or start: stop and unmount, then remove the CT's private area there if
 * it holds nothing of the CT (a CT whose disks are all shared has no copied disk whose removal would).
 */
export const stopTarget: Handler = async (cmd, ctx) => {
  const r = (await stopAndUmount(cmd, ctx)) as HostResult;
  r.actions.push(...bareAreaRemoved(privateAreaOf(ctx, argsOf<CtArgs>(cmd).ctid)));
  return r;
};

/** The CT's VE_PRIVATE on this node, from its config; undefined without one. */
const privateAreaOf = (ctx: HandlerContext, ctid: string): string | undefined =>
  readCtDisks(etcVz(ctx.cfg), ctid)?.vePrivate || undefined;

/**
 * The CT's private area on a target made a ploop one where it is not (adapters/private-area.ts): its copied disks are
 * all it holds, and vzctl would mount it as a simfs CT's. Refused when it is not one after (a `.ve.layout` of another
 * kind, left as it is). Without a config (or a VE_PRIVATE in it) nothing is made, and vzctl says what is wrong. Never
 * on a source.
 */
function privateAreaReady(ctx: HandlerContext, ctid: string): string[] {
  const vePrivate = privateAreaOf(ctx, ctid);
  if (!vePrivate) return [];
  const actions = ensurePloopLayout(vePrivate);
  const layout = layoutVersion(vePrivate);
  if (layout !== ploopLayout)
    throw new StepError(
      errorCodes.preflightNotPloop,
      `the private area ${vePrivate} of CT ${ctid} on ${ctx.cfg.node} is no ploop CT's: its .ve.layout ${layout === unreadableLayout ? 'is no layout link' : `says ${layout}`}; left as it is`,
    );
  return actions;
}

/** The CT's private area removed when it holds nothing of the CT (removeBarePrivateArea); what was done. */
function bareAreaRemoved(vePrivate: string | undefined): string[] {
  return vePrivate && removeBarePrivateArea(vePrivate)
    ? [`removed ${vePrivate}, which held nothing of the CT`]
    : [];
}

/** `vzctl start` (startSource in a rollback: the source's private area is left as it is). */
export const start: Handler = async (cmd, ctx) => {
  const { ctid } = argsOf<CtArgs>(cmd);
  const res = await ctx.tools.vzctlStart(ctid);
  return { actions: [res.exitCode === vzctlEnvRun ? 'already running' : 'started'] } satisfies HostResult;
};

/** startTarget in restart mode: the CT's private area made ready first (privateAreaReady), then `vzctl start`. */
export const startTarget: Handler = async (cmd, ctx) => {
  const actions = privateAreaReady(ctx, argsOf<CtArgs>(cmd).ctid);
  const r = (await start(cmd, ctx)) as HostResult;
  return { ...r, actions: [...actions, ...r.actions] } satisfies HostResult;
};

/** `vzctl umount` on the source, after the commit: every disk of the CT detached there (requireDetached). */
export const umountSource: Handler = async (cmd, ctx) => {
  const { ctid } = argsOf<CtArgs>(cmd);
  if ((await ctx.tools.vzctlStatus(ctid)).running)
    throw new StepError(
      errorCodes.ctRunning,
      `CT ${ctid} still runs on ${ctx.cfg.node}: refusing to unmount`,
    );
  const res = await ctx.tools.vzctlUmount(ctid);
  await requireDetached(ctx, ctid);
  return { actions: [res.exitCode === 40 ? 'already unmounted' : 'unmounted'] } satisfies HostResult;
};

/**
 * After vzctl unmounted the CT here, no ploop device of this node holds a disk of it: the other node mounts or
 * merges those disks next (the target merges the origin snapshot into the shared base after umountSource; starts the
 * CT after a restart's stopSource; the source resumes after a rollback's stopTarget). vzctl alone does not say so: it
 * counts a CT as mounted by its root disk (libvzctl lib/vz.c vzctl2_env_is_mounted 307–330), and with that disk
 * unmounted it exits 40 "Container is not mounted" and leaves any other disk attached (lib/fs.c vzctl2_env_umount
 * 287–292, at ebbfc38): an unmount that failed half way, or a disk someone attached by hand. A device holds a disk
 * when its base delta is an image the disk's descriptor names, or lies in the disk's folder (`ploop list`, which
 * needs no descriptor; diskOwner). Such a disk fails the step (HAUL_DISK_ATTACHED), whose tries cannot detach it: the
 * message says what an operator does.
 */
async function requireDetached(ctx: HandlerContext, ctid: string): Promise<void> {
  const descriptors = readCtDisks(etcVz(ctx.cfg), ctid)?.disks ?? [];
  // No config of the CT here (a target that never got it): no disk of it to ask about, and no ploop call to fail.
  if (descriptors.length === 0) return;
  const ofCt = diskOwner(descriptors);
  const held = (await ctx.tools.ploopList()).filter((d) => ofCt(d.base));
  if (held.length > 0)
    throw new StepError(
      errorCodes.diskAttached,
      `CT ${ctid} is unmounted on ${ctx.cfg.node}, but ${held.map((d) => `${d.device} still holds ${d.base}`).join(', ')}: detach ${held.length > 1 ? 'them' : 'it'} (ploop umount -d /dev/<device>) before another node uses the CT's disks, then retry`,
    );
}

/**
 * Remove the migration's image folder or a local disk folder. Which paths may be removed at all is decided before
 * the handler runs (confinement.ts: `removable`); a symlink is removed itself, never followed (rmSync unlinks links,
 * at the top and inside folders). A local disk's folder in the CT's private area (its VE_PRIVATE on this node, by its
 * config) may leave that holding nothing of the CT (what the target made of it before a restore, or the folder the
 * copy made): then it goes too (removeBarePrivateArea).
 */
export const removeFiles: Handler = async (cmd, ctx) => {
  const { paths } = argsOf<RemoveFilesArgs>(cmd);
  const r: HostResult = { actions: [] };
  for (const p of paths) {
    if (present(p)) {
      rmSync(p, { recursive: true, force: true });
      r.actions.push(`removed ${p}`);
    }
  }
  const vePrivate = await privateAreaOfMigration(ctx);
  // The paths come resolved (confinement.ts); the config's VE_PRIVATE may go through a link (/vz → /data/vz, say).
  if (vePrivate && paths.some((p) => dirname(p) === realPathOr(vePrivate)))
    r.actions.push(...bareAreaRemoved(vePrivate));
  return r;
};

/** The VE_PRIVATE on this node of the CT the migration moves (its MigrationRequested), if it has a config here. */
async function privateAreaOfMigration(ctx: HandlerContext): Promise<string | undefined> {
  const requested = (await ctx.readLog()).events.find((e) => e.type === 'MigrationRequested');
  return requested?.type === 'MigrationRequested'
    ? privateAreaOf(ctx, requested.data.request.ctid)
    : undefined;
}

/** There, as a link too (existsSync follows a link and misses a dangling one). */
function present(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}
