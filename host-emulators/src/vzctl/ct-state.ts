import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../lib/atomic.ts';
import { paths, type EmuEnv } from '../lib/emu-env.ts';
import { processRunning, processStart } from '../lib/process.ts';
import { readDescriptor, chainTo, imagePath } from '../ploop/descriptor.ts';
import { readRegistry } from '../ploop/devices.ts';
import type { CtConf } from './config.ts';

/**
 * Emulated kernel state of one CT on one node: its init pid while it runs, with that process's start time (a record
 * a SIGKILLed CT left names a pid that may be used again: the start time tells the two apart).
 */
export type CtState = { pid?: number; start?: string };

export function readCtState(env: EmuEnv, ctid: string): CtState {
  const f = paths.ctState(env, ctid);
  return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as CtState) : {};
}

export function writeCtState(env: EmuEnv, ctid: string, given: CtState): void {
  const s = given.pid && given.start === undefined ? { ...given, start: processStart(given.pid) } : given;
  const f = paths.ctState(env, ctid);
  mkdirSync(dirname(f), { recursive: true });
  writeFileAtomic(f, JSON.stringify(s));
  const pidFile = paths.initPid(env, ctid);
  mkdirSync(dirname(pidFile), { recursive: true });
  if (s.pid) writeFileAtomic(pidFile, `${s.pid}\n`);
  else rmSync(pidFile, { force: true });
}

/** The CT's init runs: its recorded process, not another that got its pid since. */
export const ctRuns = (st: CtState): boolean => processRunning(st.pid, st.start);

export const isRunning = (env: EmuEnv, ctid: string): boolean => ctRuns(readCtState(env, ctid));

/** The base image of each disk (what devices are keyed by). */
export const diskBases = (conf: CtConf): string[] =>
  conf.disks.map((dd) => imagePath(dd, chainTo(readDescriptor(dd))[0]!.file));

/**
 * Disks of the CT that have a device on this node. A disk its config names but this node does not have (a target's
 * VE_PRIVATE before a migration copies it there, named by a relative DISK= image) is not mounted.
 */
export function mountedDisks(env: EmuEnv, conf: CtConf): string[] {
  const reg = readRegistry(env.clusterDir);
  return conf.disks.filter((dd) => {
    if (!existsSync(dd)) return false;
    const base = imagePath(dd, chainTo(readDescriptor(dd))[0]!.file);
    return reg.devices.some((d) => d.node === env.node && d.deltas[0] === base);
  });
}
