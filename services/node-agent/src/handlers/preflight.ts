import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, statfsSync } from 'node:fs';
import { dirname, isAbsolute } from 'node:path';
import type { CtInspection, PreflightArgs, PreflightResult } from '@haul/schemas';
import { locateDisk } from '../adapters/disk-location.ts';
import { actionScripts, layoutVersion } from '../adapters/private-area.ts';
import { readCtDisks } from '../adapters/vz-config.ts';
import type { Tools } from '../adapters/tools.ts';
import { argsOf, etcVz, initPidFile, type AgentConfig, type Handler } from '../context.ts';
import { cpuFlags } from '../capabilities.ts';
import { residentBytes } from './resident-memory.ts';

/**
 * Checks before anything changes (P.Haul's init_src/init_dst and start_migration): what inspectCt finds, plus the
 * migration's image folder, the handler's one effect (removed again by rollback and cleanup). The agent judges
 * nothing against the request: the core compares both nodes' findings with each other and with the declared shared
 * disks (checkPreflight). Safe to repeat.
 */
export const preflight: Handler = async (cmd, ctx) => {
  const a = argsOf<PreflightArgs>(cmd);
  const found = await inspectCt(ctx.cfg, ctx.tools, a.ctid);
  mkdirSync(`${a.imageDir}/work`, { recursive: true });
  const { imageRoot: _root, ...rest } = found;
  const result: PreflightResult = { ...rest, imageDir: a.imageDir };
  return result;
};

/**
 * What this node sees of a CT, reading only (no folder made, no tool that changes anything: `vzctl status`,
 * `criu --version`, `criu check`): CT config, state, root pid and resident memory, its private area's layout and
 * action scripts, every disk of the CT as this node's config names it with where it lives (shared storage, the
 * private area, elsewhere), the digest of a shared one's descriptor and the size of a local one, criu version and
 * memory tracking, CPU flags, free space. A preflight's findings, and a check's (haul.inspect.<node>, outside any
 * migration).
 */
export async function inspectCt(cfg: AgentConfig, tools: Tools, ctid: string): Promise<CtInspection> {
  const disks = readCtDisks(etcVz(cfg), ctid);
  // Three read-only tools at once: a check waits for both nodes' inspections.
  const [status, criuVersion, memTrack] = await Promise.all([
    tools.vzctlStatus(ctid),
    tools.criuVersion(),
    tools.criuMemTrack(),
  ]);
  const located = (disks?.disks ?? []).map((dd) => locateDisk(dd, disks?.vePrivate ?? '', cfg.sharedRoots));
  const result: CtInspection = {
    configPresent: disks !== undefined,
    running: status.running,
    mounted: status.mounted,
    criuVersion,
    memTrack,
    cpuFlags: cpuFlags(),
    // A local disk this node does not have yet (a target's, named by a relative DISK= image) has no size here.
    disks: located.map((d) =>
      d.location === 'private' && existsSync(dirname(d.ddxml)) ? { ...d, bytes: folderBytes(d.ddxml) } : d,
    ),
    freeBytes: freeBytesAt(cfg.imageRoot),
    bootId: cfg.bootId,
    imageRoot: cfg.imageRoot,
  };
  // A config without VE_PRIVATE names no private area: nothing of one is read (a relative path would be this
  // process's).
  if (disks && isAbsolute(disks.vePrivate)) {
    result.vePrivate = disks.vePrivate;
    result.layout = layoutVersion(disks.vePrivate);
    result.actionScripts = actionScripts(disks.vePrivate);
    result.privateFreeBytes = freeBytesAt(disks.vePrivate);
  }
  const pidFile = initPidFile(cfg, ctid);
  if (status.running && existsSync(pidFile)) {
    result.rootPid = Number(readFileSync(pidFile, 'utf8').trim());
    const rss = residentBytes(result.rootPid);
    if (rss !== undefined) result.memoryBytes = rss;
  }
  return result;
}

/** Free bytes of the file system holding `path`, or where it would be made (its nearest existing folder). */
function freeBytesAt(path: string): number {
  let p = path;
  while (!existsSync(p) && p !== dirname(p)) p = dirname(p);
  const fs = statfsSync(p);
  return Number(fs.bavail) * Number(fs.bsize);
}

/** The bytes of the regular files in a disk's folder (its descriptor and deltas): what a copy of it moves. */
function folderBytes(ddxml: string): number {
  const dir = dirname(ddxml);
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true }))
    if (e.isFile()) total += statSync(`${dir}/${e.name}`).size;
  return total;
}
