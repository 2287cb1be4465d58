import { existsSync, lstatSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { mayStartRestore, errorCodes } from '@haul/domain';
import type { CtArgs, HostResult, RemoveFilesArgs, RestoreArgs } from '@haul/schemas';
import { readRestoreTimeUs } from '../adapters/criu-stats.ts';
import { writeNew } from '../adapters/files.ts';
import { ensurePloopLayout, removeBarePrivateArea } from '../adapters/private-area.ts';
import { vzctlEnvRun } from '../adapters/tools.ts';
import { readCtDisks } from '../adapters/vz-config.ts';
import { argsOf, etcVz, StepError, type Handler, type HandlerContext } from '../context.ts';

/**
 * `vzctl restore` on the target, after winning the fence: RestoreStarted is appended with compare-and-set only
 * while nobody resumed the source and the target has not rebooted since its preflight. After a crash, a running CT means the restore happened.
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
  const v = await ctx.fencedAppend(started, (events) => mayStartRestore(events, { bootId: ctx.cfg.bootId }));
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
      r.actions.push('CT already running on the target');
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
  return r;
};

/**
 * The CT's private area on a target made a ploop one where it is not (adapters/private-area.ts): its copied disks are
 * all it holds, and vzctl would mount it as a simfs CT's. Without a config (or a VE_PRIVATE in it) nothing is made,
 * and vzctl says what is wrong. Never on a source.
 */
function privateAreaReady(ctx: HandlerContext, ctid: string): string[] {
  const vePrivate = readCtDisks(etcVz(ctx.cfg), ctid)?.vePrivate;
  return vePrivate ? ensurePloopLayout(vePrivate) : [];
}

/**
 * `vzctl start`: startTarget in restart mode, its private area made ready first, and startSource in a rollback, the
 * source's private area left as it is (a CT without the layout link is no ploop CT, and must stay what it is).
 */
export const start: Handler = async (cmd, ctx) => {
  const { ctid } = argsOf<CtArgs>(cmd);
  const actions = cmd.step === 'startTarget' ? privateAreaReady(ctx, ctid) : [];
  const res = await ctx.tools.vzctlStart(ctid);
  return {
    actions: [...actions, res.exitCode === vzctlEnvRun ? 'already running' : 'started'],
  } satisfies HostResult;
};

export const umountSource: Handler = async (cmd, ctx) => {
  const { ctid } = argsOf<CtArgs>(cmd);
  if ((await ctx.tools.vzctlStatus(ctid)).running)
    throw new StepError(
      errorCodes.ctRunning,
      `CT ${ctid} still runs on ${ctx.cfg.node}: refusing to unmount`,
    );
  const res = await ctx.tools.vzctlUmount(ctid);
  return { actions: [res.exitCode === 40 ? 'already unmounted' : 'unmounted'] } satisfies HostResult;
};

/**
 * Remove the migration's image folder or a local disk folder. Which paths may be removed at all is decided before
 * the handler runs (confinement.ts: `removable`); a symlink is removed itself, never followed (rmSync unlinks links,
 * at the top and inside folders). A local disk's folder lies in the CT's private area: when what is left of that is
 * only the layout the target's restore made (its link and empty folders, nothing of a CT), it goes too.
 */
export const removeFiles: Handler = (cmd) => {
  const { paths } = argsOf<RemoveFilesArgs>(cmd);
  const r: HostResult = { actions: [] };
  for (const p of paths) {
    if (present(p)) {
      rmSync(p, { recursive: true, force: true });
      r.actions.push(`removed ${p}`);
    }
    if (removeBarePrivateArea(dirname(p))) r.actions.push(`removed ${dirname(p)}, a private area left bare`);
  }
  return Promise.resolve(r);
};

/** There, as a link too (existsSync follows a link and misses a dangling one). */
function present(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}
