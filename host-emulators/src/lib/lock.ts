import { mkdirSync, openSync, closeSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
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
    if (holder && !processRunning(holder)) {
      try {
        unlinkSync(marker);
      } catch {
        /* someone else took it over */
      }
      continue;
    }
    if (Date.now() >= deadline) return undefined;
    pause(5);
  }
}
