import { closeSync, existsSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { EmuEnv } from '../lib/emu-env.ts';
import { appendRecords, BLOCK, RECORD } from './delta.ts';
import { readRegistry, type Device } from './devices.ts';
import { noteWritten } from './tracking.ts';

/**
 * The emulated page cache of a mounted disk: what the CT wrote and the kernel has not yet written back to the
 * device's top delta. It is node memory (a file below the node's root, never next to the images), keyed by the
 * device. A copy of the image files made without syncing the file system first misses it: that is the data an
 * unsafe copy loses. It reaches the top delta by writeback (the CT's timer, every HAUL_EMU_WRITEBACK_MS, as the
 * kernel's flusher does after dirty_expire_centisecs), by syncfs (`haul-ploop-track sync`), by an online snapshot
 * (ploop syncs the file system first) and by umount. Records are `[u32 LE block][4096 bytes]`, the last one wins.
 * Every function here runs under the device's I/O lock (withDeviceIo), like the CT's writes.
 */

export const cacheFileOf = (env: EmuEnv, dev: string): string =>
  join(env.root, 'var', 'lib', 'haul-emu', 'pagecache', basename(dev));

/** A block the CT wrote: into the cache, not the delta. */
export function cacheWrite(env: EmuEnv, dev: string, block: number, data: Buffer): void {
  const rec = Buffer.alloc(RECORD);
  rec.writeUInt32LE(block, 0);
  data.copy(rec, 4, 0, Math.min(BLOCK, data.length));
  const file = cacheFileOf(env, dev);
  mkdirSync(join(file, '..'), { recursive: true });
  const fd = openSync(file, 'a');
  try {
    writeSync(fd, rec);
  } finally {
    closeSync(fd);
  }
}

function cacheRecords(env: EmuEnv, dev: string): Buffer {
  const file = cacheFileOf(env, dev);
  if (!existsSync(file)) return Buffer.alloc(0);
  const b = readFileSync(file);
  return b.subarray(0, b.length - (b.length % RECORD));
}

/** Block → content of what is cached for a device (the CT's view on top of its chain). */
export function cachedBlocks(env: EmuEnv, dev: string): Map<number, Buffer> {
  const recs = cacheRecords(env, dev);
  const out = new Map<number, Buffer>();
  for (let at = 0; at < recs.length; at += RECORD)
    out.set(recs.readUInt32LE(at), Buffer.from(recs.subarray(at + 4, at + RECORD)));
  return out;
}

/**
 * Write the cache back into the device's top delta (appended, synced) and empty it; the written extent goes to the
 * device's write tracker, if one runs. Returns the bytes written. The device is read from the registry again: an
 * online snapshot may have changed its top.
 */
export function flushCache(env: EmuEnv, dev: string): number {
  const recs = cacheRecords(env, dev);
  const file = cacheFileOf(env, dev);
  if (recs.length === 0) {
    if (existsSync(file)) unlinkSync(file);
    return 0;
  }
  const d = readRegistry(env.clusterDir).devices.find((x) => x.dev === dev);
  if (d && !d.readonly) {
    const top = d.deltas.at(-1)!;
    const { start, end } = appendRecords(top, recs);
    noteWritten(env, dev, top, start, end);
  }
  unlinkSync(file);
  return recs.length;
}

/** The devices of this node whose chain has `base` at the bottom (one at most). */
export const deviceOnNode = (env: EmuEnv, base: string): Device | undefined =>
  readRegistry(env.clusterDir).devices.find((d) => d.node === env.node && d.deltas[0] === base);
