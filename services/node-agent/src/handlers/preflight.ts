import { existsSync, mkdirSync, readFileSync, statfsSync } from 'node:fs';
import type { PreflightArgs, PreflightResult } from '@haul/schemas';
import { descriptorPathOf, readCtDisks } from '../adapters/vz-config.ts';
import { argsOf, etcVz, initPidFile, StepError, type Handler } from '../context.ts';
import { cpuFlags } from '../capabilities.ts';

/**
 * Checks before anything changes (P.Haul's init_src/init_dst and start_migration): CT config, state, root pid,
 * disks and which of them are shared, criu version and memory tracking, CPU flags, free space. Its one effect is
 * the migration's image folder (removed again by rollback and cleanup). Safe to repeat.
 */
export const preflight: Handler = async (cmd, ctx) => {
  const a = argsOf<PreflightArgs>(cmd);
  const source = cmd.step === 'preflightSource';
  const disks = readCtDisks(etcVz(ctx.cfg), a.ctid);
  const status = await ctx.tools.vzctlStatus(a.ctid);
  mkdirSync(`${a.imageDir}/work`, { recursive: true });
  const wanted = new Set(a.sharedDisks.map(descriptorPathOf));
  const result: PreflightResult = {
    configPresent: disks !== undefined,
    running: status.running,
    mounted: status.mounted,
    criuVersion: await ctx.tools.criuVersion(),
    memTrack: await ctx.tools.criuMemTrack(),
    cpuFlags: cpuFlags(),
    imageDir: a.imageDir,
    disks: (disks?.disks ?? []).map((ddxml) => ({ ddxml, shared: wanted.has(ddxml) })),
    freeBytes: Number(statfsSync(ctx.cfg.imageRoot).bavail) * Number(statfsSync(ctx.cfg.imageRoot).bsize),
    bootId: ctx.cfg.bootId,
  };
  if (disks) result.vePrivate = disks.vePrivate;
  const pidFile = initPidFile(ctx.cfg, a.ctid);
  if (status.running && existsSync(pidFile)) result.rootPid = Number(readFileSync(pidFile, 'utf8').trim());
  if (source && disks) {
    const missing = [...wanted].filter((d) => !disks.disks.includes(d));
    if (missing.length > 0)
      throw new StepError(
        'HAUL_PREFLIGHT_SHARED_DISK',
        `not a disk of CT ${a.ctid}: ${missing.join(', ')}`,
        'sharedDisks',
      );
  }
  return result;
};
