import { closeSync, linkSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { ToolExit } from '../lib/emu-env.ts';
import { err, out } from '../lib/tool.ts';
import { processRunning } from '../lib/process.ts';

/*
 * The CT lock as vzctl takes it without --skiplock: libvzctl lib/lock.c _lock_file (OpenVZ/libvzctl@ebbfc38), called
 * by vzctl2_env_lock_prvt from vzctl's main (OpenVZ/vzctl@42ab7b3 src/vzctl.c, "Cannot lock the Container",
 * VZ_LOCKED). The file LOCKDIR/<ctid>.lck holds "<pid>\n<status>\n" and is created by link(2) of a filled temporary
 * file, so it is never seen half written; a file naming a process that no longer exists is stale and removed. Not
 * emulated: the flock(2) of $VE_PRIVATE/.lck that vzctl2_env_lock_prvt takes first (Node has no flock; a holder of
 * the file lock alone already makes vzctl refuse).
 */

/** VZCTL_E_LOCKED (libvzctl lib/vzerror.h). */
export const VZ_LOCKED = 9;

/** The transition status vzctl writes for an action (vzctl include/vzctl.h ST_*). */
export const lockStatus: Record<string, string> = {
  start: 'starting',
  stop: 'stopping',
  mount: 'mounting',
  umount: 'unmounting',
  suspend: 'suspending',
  restore: 'restoring',
};

export const ctLockFile = (lockDir: string, ctid: string): string => join(lockDir, `${ctid}.lck`);

/** The pid and status a lock file names; pid 0 when unreadable as a number (vzctl's getlockpid). */
export function readCtLock(file: string): { pid: number; status: string } | undefined {
  let body: string;
  try {
    body = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const [pid, status] = body.split('\n');
  const n = Number.parseInt(pid ?? '', 10);
  return { pid: Number.isFinite(n) && n > 0 ? n : 0, status: status ?? '' };
}

const cmdline = (pid: number): string => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
};

/** Take the CT lock for this vzctl process, or exit 9 the way vzctl does; returns the release. */
export function lockCt(lockDir: string, ctid: string, status: string): () => void {
  mkdirSync(lockDir, { recursive: true });
  const file = ctLockFile(lockDir, ctid);
  const tmp = `${file}${process.pid}${Date.now() % 1_000_000}`;
  const fd = openSync(tmp, 'wx', 0o600);
  writeSync(fd, `${process.pid}\n${status}\n`);
  closeSync(fd);
  try {
    for (let retry = 0; retry < 3; retry++) {
      try {
        linkSync(tmp, file);
        return () => unlinkIfOurs(file);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const held = readCtLock(file);
      if (!held) continue;
      if (held.pid === 0) unlinkQuiet(file);
      else if (processRunning(held.pid)) {
        err(`Locked info: pid=${held.pid} cmdline=${cmdline(held.pid)}`);
        throw new ToolExit(VZ_LOCKED, 'Cannot lock the Container');
      } else {
        out(`Removing the stale lock file ${file}`);
        unlinkQuiet(file);
      }
    }
    throw new ToolExit(VZ_LOCKED, 'Cannot lock the Container');
  } finally {
    unlinkQuiet(tmp);
  }
}

function unlinkIfOurs(file: string): void {
  if (readCtLock(file)?.pid === process.pid) unlinkQuiet(file);
}

function unlinkQuiet(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    /* already gone */
  }
}
