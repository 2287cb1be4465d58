import { spawn } from 'node:child_process';
import { readFileSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The CT lock a migration holds for its whole life, as vzmigrate holds it (OpenVZ/vzmigrate bin/veentry.cpp
 * VEObj::lock: vzctl2_env_lock_prvt with the status "migrating", released at its end) — vzctl's file lock
 * LOCKDIR/<ctid>.lck (libvzctl lib/lock.c _lock_file). vzmigrate's own process names the lock; haul's agent restarts
 * crash-only, and a lock naming a dead process is stale (any vzctl removes it), so the lock names a small detached
 * holder instead (bin/haul-hold-ct-lock) that lives until the lock file no longer names it. The holder's command line
 * carries the migration id: that is how the lock is known to be this migration's after an agent restart, with no
 * state of the agent's own. While it holds the lock, haul runs vzctl with --skiplock, as vzmigrate does (VEObj::
 * operateVE).
 */
export const ctLockScript = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'haul-hold-ct-lock');

export const ctLockFile = (lockDir: string, ctid: string): string => join(lockDir, `${ctid}.lck`);

/** The pid a lock file names (vzctl's getlockpid), if it names one. */
export function lockPid(file: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8').split('\n')[0] ?? '', 10);
    return Number.isFinite(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Is the lock held by a live holder of this migration (its command line: the script, the file, the id)? */
export function heldBy(file: string, migrationId: string): boolean {
  const pid = lockPid(file);
  if (pid === undefined) return false;
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return (
      argv.some((a) => a.endsWith('haul-hold-ct-lock')) && argv.includes(file) && argv.includes(migrationId)
    );
  } catch {
    return false;
  }
}

export type TakeLock = { held: true } | { held: false; by?: number };

/** Start a holder for this migration and wait for its answer: it holds the lock, or a live process does. */
export function takeCtLock(file: string, migrationId: string, timeoutMs = 10_000): Promise<TakeLock> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', [ctLockScript, file, migrationId], {
      detached: true,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let out = '';
    const timer = setTimeout(
      () => done(new Error(`the CT lock holder gave no answer in ${timeoutMs} ms`)),
      timeoutMs,
    );
    const done = (r: TakeLock | Error) => {
      clearTimeout(timer);
      child.stdout.destroy();
      child.unref();
      if (r instanceof Error) reject(r);
      else resolve(r);
    };
    child.once('error', (e) => done(e));
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n')[0]!;
      if (!out.includes('\n')) return;
      if (line === 'locked') done({ held: true });
      else {
        const by = Number(line.split(' ')[1]);
        done(Number.isFinite(by) && by > 0 ? { held: false, by } : { held: false });
      }
    });
  });
}

/**
 * Release the lock if this migration holds it: the file goes (its holder sees that and exits; it is told to at once).
 * A lock held by anyone else is left alone. What was done, for the step's result.
 */
export function releaseCtLock(file: string, migrationId: string): string {
  const pid = lockPid(file);
  if (pid === undefined) return 'no CT lock held';
  if (!heldBy(file, migrationId))
    return `the CT lock is held by pid ${pid}, not by this migration: left alone`;
  unlinkSync(file);
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    /* it already went */
  }
  return `CT lock ${file} released`;
}
