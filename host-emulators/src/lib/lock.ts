import { mkdirSync, openSync, closeSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crypto } from './lazy.ts';
import { processRunning } from './process.ts';

const sleeper = new Int32Array(new SharedArrayBuffer(4));
const pause = (ms: number) => Atomics.wait(sleeper, 0, 0, ms);

/**
 * A lock's marker file: its name percent-encoded after a `=` (one name, one file: no `/`, never `.` or `..`) while that
 * fits in 240 bytes, else `#` and the name's SHA-1, which no encoded name begins with. ploop locks every descriptor it
 * works on, flock its file: a digest of every name loaded node:crypto into each of those calls (lib/lazy.ts).
 */
export function markerName(name: string): string {
  const plain = `=${encodeURIComponent(name)}`;
  return plain.length <= 240 ? plain : `#${crypto().createHash('sha1').update(name).digest('hex')}`;
}

/**
 * An exclusive lock named by a path, held by this process: the emulator's stand-in for flock(2), which Node lacks.
 * The holder's pid is recorded so a lock left by a killed process is taken over. Markers live in the cluster's lock
 * folder, so nothing but the real `.lck` files appears next to the images.
 */
export function acquireLock(lockDir: string, name: string, timeoutMs: number): (() => void) | undefined {
  mkdirSync(lockDir, { recursive: true });
  const marker = join(lockDir, markerName(name));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fd = openSync(marker, 'wx');
      writeSync(fd, `${process.pid} ${name}\n`);
      closeSync(fd);
      return () => {
        try {
          unlinkSync(marker);
        } catch {
          /* already gone */
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let holder = 0;
    try {
      holder = Number.parseInt(readFileSync(marker, 'utf8'), 10);
    } catch {
      continue; // released between our attempts
    }
    if (holder && !processRunning(holder) && takeOver(marker, holder)) continue;
    if (Date.now() >= deadline) return undefined;
    pause(5);
  }
}

/** A `.break` file this old was left by a waiter that died while it took a lock over (that takes microseconds). */
const staleBreakMs = 1000;

/**
 * Remove the marker of a holder that died, unless another waiter took the lock over first. Two waiters that both
 * read the dead pid must not both remove a marker: the second would remove the one the first had just made, and both
 * would hold the lock. So the removal is under a lock of its own (`<marker>.break`, made with O_EXCL), and the marker
 * is read again under it and removed only while it still names the dead holder. False when another waiter is at it:
 * this one waits as for a live holder.
 */
function takeOver(marker: string, dead: number): boolean {
  const breaker = `${marker}.break`;
  let fd: number;
  try {
    fd = openSync(breaker, 'wx');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    try {
      if (Date.now() - statSync(breaker).mtimeMs > staleBreakMs) unlinkSync(breaker);
    } catch {
      /* gone meanwhile */
    }
    return false;
  }
  closeSync(fd);
  try {
    if (Number.parseInt(readFileSync(marker, 'utf8'), 10) === dead) unlinkSync(marker);
  } catch {
    /* released or taken over meanwhile */
  } finally {
    try {
      unlinkSync(breaker);
    } catch {
      /* already gone */
    }
  }
  return true;
}
