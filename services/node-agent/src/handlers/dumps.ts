import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultFrozenLeaseMs } from '@haul/bus';
import { mayResumeSource, errorCodes } from '@haul/domain';
import type { CtArgs, DumpArgs, DumpResult, HostResult } from '@haul/schemas';
import { readDumpStats } from '../adapters/criu-stats.ts';
import { dirBytes, replaceFile } from '../adapters/files.ts';
import { asToolTime } from '../adapters/tool-time.ts';
import { allEnded } from '../adapters/tools.ts';
import { argsOf, etcVz, initPidFile, StepError, type Handler, type HandlerContext } from '../context.ts';
import { readCtVars } from '../adapters/vz-config.ts';
import {
  bindMountMaps,
  blockDevNumber,
  cgroupMountMaps,
  cgroupPropsFile,
  managedByVcmmd,
  secondaryDisks,
  vzCgroupRoots,
  vzFreeze,
  vzPostDumpFiles,
  writeVzSideFiles,
  type VzDump,
} from '../adapters/vz-checkpoint.ts';
import { criuEnd, holdScript } from '../held-dumps.ts';
import { restorePreparedDisks } from './shared-disk.ts';

function rootPid(ctx: HandlerContext, ctid: string): number {
  const f = initPidFile(ctx.cfg, ctid);
  if (!existsSync(f))
    throw new StepError(errorCodes.ctNotRunning, `CT ${ctid} is not running on ${ctx.cfg.node} (no ${f})`);
  return Number(readFileSync(f, 'utf8').trim());
}

/**
 * One pre-dump iteration into img/<n> with parent ../<n-1>. In doubt after a crash the CT's dirty tracking may
 * already have been reset by the lost run, so an incremental re-run could miss pages: the reconciled run is a full
 * one (no parent) into a cleared folder, which is always correct.
 */
export const preDump: Handler = async (cmd, ctx) => {
  const a = argsOf<DumpArgs>(cmd);
  const pid = rootPid(ctx, a.ctid);
  rmSync(a.imageDir, { recursive: true, force: true });
  mkdirSync(a.imageDir, { recursive: true });
  mkdirSync(a.workDir, { recursive: true });
  const prev = ctx.reconciled ? undefined : a.prevImageDir;
  // Not part of the dump's time (its speed feeds the iteration model): the devices are made before it.
  await dumpDevicesOf(ctx, a.ctid, a.workDir, pid);
  const t0 = performance.now();
  await ctx.tools.criuPreDump(
    pid,
    a.imageDir,
    a.workDir,
    prev,
    vzFreeze(ctx.cfg.hostRoot, etcVz(ctx.cfg), a.ctid),
  );
  const s = readDumpStats(join(a.workDir, 'stats-dump'));
  const r: DumpResult = {
    pagesWritten: s.pagesWritten,
    pagesSkipped: s.pagesSkipped,
    frozenUs: s.frozenUs,
    memdumpUs: s.memdumpUs,
    bytes: dirBytes(a.imageDir),
    durationMs: performance.now() - t0,
  };
  return r;
};

/**
 * Pages the dump wrote: every `pages-<n>.img` of the folder (criu/image-desc.c names them by the pagemap's pages_id;
 * one per page-pipe of a process tree, and shared memory has its own), 4096 bytes a page.
 */
export const pagesIn = (dir: string): number =>
  existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => /^pages-\d+\.img$/.test(f))
        .reduce((n, f) => n + statSync(join(dir, f)).size / 4096, 0)
    : 0;

/**
 * The final dump, held open at post-dump: the result is reported as soon as the CT is frozen, while criu waits
 * for the decision (releaseSource commits, resumeSource aborts, the lease may abort). After a crash an existing
 * held dump is adopted rather than started again. criu writes stats-dump only when it ends, so the frozen time,
 * memdump time and skipped pages are not known yet: the result leaves them out (releaseSource reports the frozen
 * time).
 */
export const finalDump: Handler = async (cmd, ctx) => {
  const a = argsOf<DumpArgs>(cmd);
  const t0 = performance.now();
  if (ctx.held.underWay(cmd.migrationId)) {
    // Started by an agent that died, before the freeze: adopted, and none of the work before the freeze done again
    // (it was done; a failure of it now would not be in doubt while this criu goes on to freeze the CT).
    await asToolTime(() => ctx.held.adopt(cmd.migrationId, cmd.timeoutMs));
  } else if (!ctx.held.isHeld(cmd.migrationId)) {
    const o = ctx.held.outcome(cmd.migrationId);
    if (o.rc !== undefined)
      throw new StepError(
        errorCodes.dumpEnded,
        `the held dump already ended (criu exit ${o.rc}, decision ${o.decision ?? 'none'})`,
      );
    const pid = rootPid(ctx, a.ctid);
    mkdirSync(a.imageDir, { recursive: true });
    mkdirSync(a.workDir, { recursive: true });
    const vzArgs = await vzDumpOf(ctx, a.ctid, a.workDir, pid);
    // The values vz-rst gives back to the restored CT (its clocks above all) and its memory limits, read while it
    // still runs (vz-cpt; vz-cpt-action at pre-dump, where a missing limit fails the dump).
    try {
      writeVzSideFiles(ctx.cfg.hostRoot, a.ctid, a.imageDir);
    } catch (e) {
      throw new StepError(
        errorCodes.ctNotRunning,
        `CT ${a.ctid} on ${ctx.cfg.node}: ${(e as Error).message}`,
      );
    }
    // criu counts as a host tool until the CT is frozen and the dump held (the step's toolMs).
    await asToolTime(() =>
      ctx.held.start(
        {
          migrationId: cmd.migrationId,
          ctid: a.ctid,
          commandId: cmd.commandId,
          leaseMs: a.leaseMs ?? Math.min(defaultFrozenLeaseMs, ctx.cfg.maxLeaseMs),
          frozenAt: new Date().toISOString(),
          dumpTimeoutMs: cmd.timeoutMs,
          workDir: a.workDir,
        },
        ctx.tools.criuDumpArgs(pid, a.imageDir, a.workDir, a.prevImageDir, holdScript, vzArgs),
      ),
    );
  }
  try {
    await saveVeSysctls(ctx, a);
    const r: DumpResult = {
      pagesWritten: pagesIn(a.imageDir),
      bytes: dirBytes(a.imageDir),
      durationMs: performance.now() - t0,
    };
    return r;
  } catch (err) {
    // The CT is frozen and its dump held: the failure says so, and the rollback resumes it (resumeSource).
    throw new StepError(
      errorCodes.dumpFailedFrozen,
      `CT ${a.ctid} frozen on ${ctx.cfg.node}, then: ${(err as Error).message}`,
      undefined,
      { cause: err },
    );
  }
};

/**
 * The CT is frozen at post-dump: its own sysctls beside the images, as vz-cpt-action saves them there (also for a
 * held dump adopted after a restart that had not saved them all yet). A failure fails the step, as it fails VZ's.
 * vz-cpt-action runs one cgexec per file (vz-cpt-action.in 115–124); one cat of the same files in the same ve
 * cgroup reads the same values, with one process instead of four in the frozen window. cat prints the files one
 * after the other, and each /proc/sys file is one line ending in a newline (a sysctl's value holds none): line i
 * is file i, written with its newline as `cat … > vz_<…>.img` writes it. A file cat cannot read makes it exit 1;
 * output that is not one line per file fails the step too.
 */
async function saveVeSysctls(ctx: HandlerContext, a: DumpArgs): Promise<void> {
  const missing = vzPostDumpFiles(ctx.cfg.hostRoot).filter((f) => !existsSync(join(a.imageDir, f.image)));
  if (missing.length === 0) return;
  const procs = missing.map((f) => f.veProc);
  const out = await asToolTime(() => ctx.tools.cgexecCatAll(a.ctid, procs));
  // The runner (execa) drops the output's final newline: the rest holds one newline between two files.
  const values = out.stdout.split('\n');
  if (values.length !== missing.length)
    throw new StepError(
      errorCodes.agentError,
      `CT ${a.ctid} on ${ctx.cfg.node}: cgexec -g ve:${a.ctid} cat ${procs.join(' ')} printed ${JSON.stringify(out.stdout)}, not one line per file`,
    );
  missing.forEach((f, i) => writeFileSync(join(a.imageDir, f.image), `${values[i]}\n`));
}

/**
 * What VZ's own checkpoint gives criu for this CT (adapters/vz-checkpoint.ts). The host-tool part — the CT's
 * `/dev/<uuid>` links and its disks' device numbers — was made before the first pre-dump when there was one
 * (prepareDumpDevices); a final dump without pre-dumps makes it here, before the freeze.
 */
async function vzDumpOf(ctx: HandlerContext, ctid: string, workDir: string, pid: number): Promise<VzDump> {
  const vars = readCtVars(etcVz(ctx.cfg), ctid);
  const root = vars?.['VE_ROOT'];
  if (!vars || !root)
    throw new StepError(errorCodes.ctNotRunning, `CT ${ctid} has no VE_ROOT on ${ctx.cfg.node}`);
  const externals = await dumpDevicesOf(ctx, ctid, workDir, pid);
  const props = cgroupPropsFile(ctx.cfg.hostRoot);
  return {
    ...vzFreeze(ctx.cfg.hostRoot, etcVz(ctx.cfg), ctid),
    root,
    extMountMaps: [...cgroupMountMaps(ctx.cfg.hostRoot), ...bindMountMaps(vars)],
    externals,
    cgroupRoots: vzCgroupRoots(ctid),
    ...(props ? { cgroupPropsFile: props } : {}),
  };
}

/** Where prepareDumpDevices keeps the disks' `--external` devices for the migration's final dump. */
const dumpDevicesFile = (workDir: string) => join(workDir, 'dump-devices.json');

/** What the work dir keeps: the devices, and the boot and CT init they were read for. */
type DumpDevices = { bootId: string; initPid: number; externals: string[] };

/**
 * The CT's dump devices: those kept in the work dir when they were read in this boot for this very CT init (a CT
 * restarted since, or a rebooted host, may have other devices and has lost its devmap links), else made now. A
 * file that is not what prepareDumpDevices writes (a torn write) is made again as well.
 */
export async function dumpDevicesOf(
  ctx: HandlerContext,
  ctid: string,
  workDir: string,
  pid: number,
): Promise<string[]> {
  const kept = readDumpDevices(workDir);
  if (kept && kept.bootId === ctx.cfg.bootId && kept.initPid === pid) return kept.externals;
  return prepareDumpDevices(ctx, ctid, workDir, pid);
}

function readDumpDevices(workDir: string): DumpDevices | undefined {
  let d: Partial<DumpDevices>;
  try {
    d = JSON.parse(readFileSync(dumpDevicesFile(workDir), 'utf8')) as Partial<DumpDevices>;
  } catch {
    return undefined; // none yet, or unreadable: made again
  }
  const ok =
    typeof d.bootId === 'string' &&
    typeof d.initPid === 'number' &&
    Array.isArray(d.externals) &&
    d.externals.every((x) => typeof x === 'string' && /^dev\[\d+\/\d+\]:\S+$/.test(x));
  return ok ? (d as DumpDevices) : undefined;
}

/**
 * Before the migration's first dump, while the CT runs: its `/dev/<uuid>` links, which criu needs to dump the CT's
 * ploop mounts, and its secondary disks' device numbers (criu's `--external dev[<major>/<minor>]:<uuid>`), kept in
 * the work dir for the final dump. vzmigrate makes the devmap once, before P.Haul's first dump (vzmigrate
 * bin/migsrcremote.cpp prePhaulMigration 1668–1672 → VEObj::createDevmap, bin/veentry.cpp 761–767: `vzctl suspend
 * --create-devmap`); libvzctl makes it again before each of its own dumps (lib/cr_criu.c dump 176), which the
 * devices of a CT whose disks stay mounted do not change. Both reads are independent: asked at once.
 */
async function prepareDumpDevices(
  ctx: HandlerContext,
  ctid: string,
  workDir: string,
  initPid: number,
): Promise<string[]> {
  const vars = readCtVars(etcVz(ctx.cfg), ctid);
  if (!vars) throw new StepError(errorCodes.ctNotRunning, `CT ${ctid} has no config on ${ctx.cfg.node}`);
  const disks = secondaryDisks(vars);
  const [, infos] = await allEnded([
    ctx.tools.vzctlCreateDevmap(ctid),
    allEnded(disks.map((d) => ctx.tools.ploopDevice(d.dd))),
  ]);
  const devices = disks.map((d, i) => ({ d, dev: infos[i]! }));
  const externals: string[] = [];
  for (const { d, dev } of devices) {
    if (!dev.partition) continue;
    const { major, minor } = blockDevNumber(ctx.cfg.hostRoot, dev.partition);
    externals.push(`dev[${major}/${minor}]:${d.uuid}`);
  }
  mkdirSync(workDir, { recursive: true });
  replaceFile(
    dumpDevicesFile(workDir),
    JSON.stringify({ bootId: ctx.cfg.bootId, initPid, externals } satisfies DumpDevices),
    0o600,
  );
  return externals;
}

/**
 * The commit: criu finishes the dump and kills the frozen source tasks. Idempotent. A criu that ends otherwise after
 * the commit decision (killed by the OOM killer or an operator, or failing after post-dump) lets the tasks go, and
 * they run again (criu/seize.c: held by ptrace alone; the kernel lets traced tasks run when their tracer dies) while
 * the target runs the CT on the same shared disks: the source's CT is then stopped (vzctl stop --fast), as the
 * frozen lease stops it when its criu ended after the target restore started (leases.ts).
 */
export const releaseSource: Handler = async (cmd, ctx) => {
  const a = argsOf<CtArgs>(cmd);
  const r: HostResult = { actions: [] };
  if (ctx.held.isHeld(cmd.migrationId)) {
    const workDir = ctx.held.meta(cmd.migrationId)?.workDir;
    const rc = await asToolTime(() => ctx.held.decide(cmd.migrationId, 'commit'));
    if (rc !== 0)
      await stopLetGo(ctx, a.ctid, `criu dump ended with ${criuEnd(rc)} after the commit decision`, r);
    else r.actions.push('dump committed: source tasks killed');
    await forgetOnSource(ctx, a.ctid, r, true);
    // criu writes stats-dump last, after post-dump: its frozen_time covers the whole held window.
    const stats = workDir ? join(workDir, 'stats-dump') : undefined;
    if (rc === 0 && stats && existsSync(stats)) r.frozenUs = readDumpStats(stats).frozenUs;
    return r;
  }
  const o = ctx.held.outcome(cmd.migrationId);
  if (o.decision === 'abort')
    throw new StepError(errorCodes.fenced, 'the held dump was aborted: the CT resumed on the source');
  const st = await ctx.tools.vzctlStatus(a.ctid);
  // A CT running after a commit that criu ended well (0: it killed the tasks) was started since by someone else.
  const letGo = o.decision === 'commit' && o.rc !== 0;
  if (st.running && !letGo)
    throw new StepError(errorCodes.notHeld, `CT ${a.ctid} runs on ${ctx.cfg.node} and no dump is held`);
  if (st.running)
    // A release tried again after the one that decided the commit failed (its criu let the tasks go).
    await stopLetGo(ctx, a.ctid, `criu dump ended with ${criuEnd(o.rc)} after the commit decision`, r);
  else r.actions.push('already released');
  // A release retried after the agent died between the commit and the end of forgetOnSource.
  await forgetOnSource(ctx, a.ctid, r, o.decision === 'commit');
  return r;
};

/**
 * What the source forgets of the CT once it is released: vcmmd's registration (libvzctl's post-dump step), and after a
 * commit its init pid (lib/cr_criu.c chkpnt, clear_init_pid): a pid file left would name a pid that another process
 * will get, and a heartbeat would then report the CT running here as well as on the target.
 */
async function forgetOnSource(
  ctx: HandlerContext,
  ctid: string,
  r: HostResult,
  committed: boolean,
): Promise<void> {
  await vcmmUnregister(ctx, ctid, r);
  if (committed) rmSync(initPidFile(ctx.cfg, ctid), { force: true });
}

/** After the commit decision, the source's CT stopped if its criu let it go; throws while it still runs. */
async function stopLetGo(ctx: HandlerContext, ctid: string, why: string, r: HostResult): Promise<void> {
  if (!(await ctx.tools.vzctlStatus(ctid)).running) {
    r.actions.push(`${why}: the CT does not run on the source`);
    return;
  }
  ctx.log.error({ ctid, why }, 'the committed dump let the source tasks go: stopping the CT on the source');
  await asToolTime(() => ctx.tools.vzctlStopFast(ctid));
  if ((await ctx.tools.vzctlStatus(ctid)).running)
    throw new StepError(
      errorCodes.releaseFailed,
      `${why}, and CT ${ctid} still runs on ${ctx.cfg.node} after vzctl stop --fast`,
    );
  r.actions.push(`${why}: the CT it let go on the source stopped (vzctl stop --fast)`);
}

/**
 * libvzctl's post-dump step (lib/cr_criu.c chkpnt 254–256, before clear_init_pid): vcmmd forgets the CT, where the
 * host has vcmmd (lib/vcmm.c is_managed_by_vcmmd 196–203; an unregistered CT is no error, vcmm.c 213). libvzctl
 * ignores the result; haul never fails the step on it either, and reports it among the actions.
 */
async function vcmmUnregister(ctx: HandlerContext, ctid: string, r: HostResult): Promise<void> {
  if (!managedByVcmmd(ctx.cfg.hostRoot)) return;
  try {
    await asToolTime(() => ctx.tools.vcmmdctlUnregister(ctid));
    r.actions.push('vcmmd: CT unregistered');
  } catch (e) {
    ctx.log.warn({ ctid, err: (e as Error).message }, 'vcmmd unregister failed (ignored, as libvzctl does)');
    r.actions.push('vcmmd: unregister failed (ignored)');
  }
}

/**
 * Resume the CT on the source, for a rollback or when its frozen lease expired; one function for both. In order:
 * 1. win the fence: ResumedOnSource appended with compare-and-set while the log shows no restore started (or the
 *    target CT known stopped) — the record of this action (appended once; a retry after a crash finds it);
 * 2. restore every shared disk whose preparation started: the descriptor back, the copy's snapshot merged, so the
 *    CT never runs writing a delta its descriptor does not name (a CT restart would lose those writes);
 * 3. only then abort the held dump: the thaw. A disk that cannot be restored throws before it: the CT stays frozen.
 * Every part is idempotent, so a repeated resume (a redelivery, the lease after an agent restart) finishes the job.
 */
export async function resumeOnSource(
  ctx: HandlerContext,
  migrationId: string,
  ctid: string,
  reason: 'rollback' | 'lease-expired',
  commandId?: string,
): Promise<HostResult> {
  const ev = ctx.event(
    'ResumedOnSource',
    commandId ? { reason, commandId } : { reason },
    `${migrationId}:resumed-on-source`,
  );
  const v = await ctx.fencedAppend(ev, mayResumeSource);
  if (!v.ok) throw new StepError(v.code, v.reason);
  // A dump an agent that died started may still be on its way to the freeze: it is aborted once it holds the CT.
  await ctx.held.settled(migrationId);
  const r: HostResult = { actions: await restorePreparedDisks(ctx, (await ctx.readLog()).events) };
  const aborted = ctx.held.isHeld(migrationId);
  if (aborted) {
    const rc = await asToolTime(() => ctx.held.decide(migrationId, 'abort'));
    r.actions.push(`dump aborted (criu exit ${criuEnd(rc)})`);
  } else ctx.held.abandon(migrationId);
  const st = await ctx.tools.vzctlStatus(ctid);
  if (!st.running)
    throw new StepError(
      errorCodes.ctNotRunning,
      aborted
        ? `CT ${ctid} does not run on ${ctx.cfg.node} after its held dump was aborted`
        : `CT ${ctid} is neither held frozen nor running on ${ctx.cfg.node}`,
    );
  // Paused but not held: frozen by someone else (vzctl pause, or a criu that died holding it, or was killed while
  // it aborted and left the freezer frozen). Not resumed by haul: the failure says so.
  if (st.paused)
    throw new StepError(
      errorCodes.ctPaused,
      `CT ${ctid} runs on ${ctx.cfg.node} but is paused (its freezer cgroup is frozen) and no dump of haul holds it`,
    );
  r.actions.push(aborted ? 'CT resumed' : 'CT already running on the source');
  return r;
}

export const resumeSource: Handler = (cmd, ctx) =>
  resumeOnSource(ctx, cmd.migrationId, argsOf<CtArgs>(cmd).ctid, 'rollback', cmd.commandId);
