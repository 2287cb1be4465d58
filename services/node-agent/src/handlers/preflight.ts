import { existsSync, mkdirSync, readFileSync, statfsSync } from 'node:fs';
import type { PreflightArgs, PreflightResult } from '@haul/schemas';
import { locateDisk } from '../adapters/disk-location.ts';
import { readCtDisks } from '../adapters/vz-config.ts';
import { argsOf, etcVz, initPidFile, type Handler } from '../context.ts';
import { cpuFlags } from '../capabilities.ts';

/**
 * Checks before anything changes (P.Haul's init_src/init_dst and start_migration): CT config, state, root pid,
 * every disk of the CT as this node's config names it with where it lives (shared storage, the private area,
 * elsewhere) and, for a shared one, the digest of its descriptor, criu version and memory tracking, CPU flags, free
 * space. The agent judges nothing against the request: the core compares both nodes' findings with each other and
 * with the declared shared disks (checkPreflight). Its one effect is the migration's image folder (removed again
 * by rollback and cleanup). Safe to repeat.
 */
export const preflight: Handler = async (cmd, ctx) => {
  const a = argsOf<PreflightArgs>(cmd);
  const disks = readCtDisks(etcVz(ctx.cfg), a.ctid);
  const status = await ctx.tools.vzctlStatus(a.ctid);
  mkdirSync(`${a.imageDir}/work`, { recursive: true });
  const result: PreflightResult = {
    configPresent: disks !== undefined,
    running: status.running,
    mounted: status.mounted,
    criuVersion: await ctx.tools.criuVersion(),
    memTrack: await ctx.tools.criuMemTrack(),
    cpuFlags: cpuFlags(),
    imageDir: a.imageDir,
    disks: (disks?.disks ?? []).map((dd) => locateDisk(dd, disks?.vePrivate ?? '', ctx.cfg.sharedRoots)),
    freeBytes: Number(statfsSync(ctx.cfg.imageRoot).bavail) * Number(statfsSync(ctx.cfg.imageRoot).bsize),
    bootId: ctx.cfg.bootId,
  };
  if (disks) result.vePrivate = disks.vePrivate;
  const pidFile = initPidFile(ctx.cfg, a.ctid);
  if (status.running && existsSync(pidFile)) result.rootPid = Number(readFileSync(pidFile, 'utf8').trim());
  return result;
};
