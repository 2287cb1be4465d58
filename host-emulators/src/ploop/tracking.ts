import { existsSync, mkdirSync, readFileSync, unlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { EmuEnv } from '../lib/emu-env.ts';
import { writeFileAtomic } from '../lib/atomic.ts';

/**
 * The emulated write tracker of a ploop device: which byte ranges of its top delta were written since the copy
 * last took them. It stands in for the kernel's tracker that `ploop copy` drives (ploop ≤ 7: the PLOOP_IOC_TRACK_INIT,
 * _READ, _SETPOS, _STOP ioctls; ploop ≥ 8: the dm-ploop `tracking_start`, `tracking_get_next`, `tracking_clear`,
 * `tracking_stop` messages), kept in node memory (a file below the node's root) until the device goes away.
 * `inflight` holds what a copy took and has not acknowledged: taken again after a crash, so nothing is lost.
 * Every function runs under the device's I/O lock.
 */
export type Extent = [start: number, end: number];
export type Tracker = { file: string; dirty: Extent[]; inflight: Extent[] };

export const trackerFileOf = (env: EmuEnv, dev: string): string =>
  join(env.root, 'var', 'lib', 'haul-emu', 'tracking', `${basename(dev)}.json`);

export function readTracker(env: EmuEnv, dev: string): Tracker | undefined {
  const f = trackerFileOf(env, dev);
  return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as Tracker) : undefined;
}

export function writeTracker(env: EmuEnv, dev: string, t: Tracker): void {
  const f = trackerFileOf(env, dev);
  mkdirSync(join(f, '..'), { recursive: true });
  writeFileAtomic(f, JSON.stringify(t));
}

export function dropTracker(env: EmuEnv, dev: string): void {
  const f = trackerFileOf(env, dev);
  if (existsSync(f)) unlinkSync(f);
}

/** Sorted, with overlapping and touching extents joined. */
export function mergeExtents(list: Extent[]): Extent[] {
  const out: Extent[] = [];
  for (const [s, e] of [...list].sort((a, b) => a[0] - b[0])) {
    const last = out.at(-1);
    if (last && s <= last[1]) last[1] = Math.max(last[1], e);
    else out.push([s, e]);
  }
  return out;
}

/** A write reached the device's top delta `file`: recorded when a tracker runs on that very file. */
export function noteWritten(env: EmuEnv, dev: string, file: string, start: number, end: number): void {
  const t = readTracker(env, dev);
  if (!t || t.file !== file) return;
  writeTracker(env, dev, { ...t, dirty: mergeExtents([...t.dirty, [start, end]]) });
}
