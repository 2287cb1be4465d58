import { execFile } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { isAbsolute, relative, sep } from 'node:path';
import { errorCodes } from '@haul/domain';
import type { ErrorInfo, StreamArgs } from '@haul/schemas';
import type { ManifestEntry } from './manifest.ts';
import { isCount } from './wire.ts';

/**
 * The host helper a live local-disk copy drives (docs/host-contract.md): `start` tracking the writes to the mounted
 * disk's top delta, `take --sync` the extents written since (with those taken and never acknowledged) after syncing
 * the file system (syncfs), `ack` them once they are on the target. What `ploop copy` does inside
 * libploop (lib/ploop-copy.c): on a real host it wraps the kernel's tracker; the emulators provide one.
 */
export const trackHelper = 'haul-ploop-track';

export type Extent = [start: number, end: number];

/** The helper failed or no tracker runs any more: the copy cannot know what was written since its last pass. */
export class DiskTrackingError extends Error {
  readonly info: ErrorInfo;
  constructor(message: string) {
    super(message);
    this.name = 'DiskTrackingError';
    this.info = { code: errorCodes.diskTracking, message };
  }
}

type TrackOutput = { file: string; extents?: Extent[] };

function track(cmd: 'start' | 'take --sync' | 'ack', ddxml: string): Promise<TrackOutput> {
  const argv = [...cmd.split(' '), ddxml];
  return new Promise((resolve, reject) => {
    execFile(trackHelper, argv, { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) {
        const why = stderr.trim() || err.message;
        return reject(new DiskTrackingError(`${trackHelper} ${argv.join(' ')}: ${why}`));
      }
      try {
        resolve(trackOutput(stdout, cmd !== 'ack'));
      } catch (e) {
        reject(new DiskTrackingError(`${trackHelper} ${argv.join(' ')}: ${(e as Error).message}`));
      }
    });
  });
}

/**
 * What the helper printed, checked: a JSON object, with `file` (the tracked delta) when `named` (start and take name
 * it; ack prints the device alone), `started` a boolean and each extent [start, end) of whole bytes when there.
 * Anything else (a warning line, nothing at all) fails the pass that asked, not the streamer: thrown here, inside
 * the helper's callback, it would end the process with every transfer of the node.
 */
export function trackOutput(stdout: string, named: boolean): TrackOutput {
  let out: unknown;
  try {
    out = JSON.parse(stdout);
  } catch {
    throw new Error(`printed no JSON: ${JSON.stringify(stdout.slice(0, 200))}`);
  }
  const o = out as Partial<Record<keyof TrackOutput, unknown>> | null;
  if (typeof o !== 'object' || o === null || Array.isArray(o))
    throw new Error(`printed no JSON object: ${JSON.stringify(stdout.slice(0, 200))}`);
  if ((named || o.file !== undefined) && typeof o.file !== 'string')
    throw new Error(`printed no delta file name: ${JSON.stringify(stdout.slice(0, 200))}`);
  const ok = (e: unknown) =>
    Array.isArray(e) && e.length === 2 && isCount(e[0]) && isCount(e[1]) && e[0] <= e[1];
  if (o.extents !== undefined && !(Array.isArray(o.extents) && o.extents.every(ok)))
    throw new Error(
      `printed extents that are not [start, end) byte ranges: ${JSON.stringify(o.extents).slice(0, 200)}`,
    );
  return o as TrackOutput;
}

/**
 * An update pass's manifest: each file with the extents the pass sends of it (none: the target must have it already).
 * The tracked delta must be one of its files, or none of its writes would be sent: the pass fails instead.
 */
export function withExtents(manifest: ManifestEntry[], plan: UpdatePlan): ManifestEntry[] {
  if (!manifest.some((e) => e.kind === 'file' && e.path === plan.top))
    throw new DiskTrackingError(`the tracked delta ${plan.top} is not a file the pass would send`);
  return manifest.map((e) => (e.kind === 'file' ? { ...e, extents: plan.pieces(e) } : e));
}

/**
 * How one pass of a live disk copy runs: the first sends the whole folder (trusting of the target's copy only what
 * its own run sent: app.ts, writtenFrom0); a later one sends, of each file, only `pieces`.
 */
export type PassPlan = { kind: 'full' } | UpdatePlan;
type UpdatePlan = {
  kind: 'update';
  /** The tracked top delta, as a path in the source folder (a manifest entry's path). */
  top: string;
  pieces: (e: ManifestEntry) => Extent[];
  done: () => Promise<unknown>;
};

/**
 * The tracked delta as a path in `sourceDir`. The helper names the delta by the path its device has: the kernel's, so
 * a folder reached through a link (`/vz` → `/data/vz`) is named by where it really is. Compared as they are, such a
 * path is no file of the folder, and each later pass would send none of the delta's writes. A delta outside the
 * folder fails the pass.
 */
export function topDeltaIn(sourceDir: string, file: string): string {
  let top: string;
  try {
    top = relative(realpathSync(sourceDir), realpathSync(file));
  } catch (err) {
    throw new DiskTrackingError(`${trackHelper} named the delta ${file}: ${(err as Error).message}`);
  }
  if (top === '' || top === '..' || top.startsWith(`..${sep}`) || isAbsolute(top))
    throw new DiskTrackingError(`${trackHelper} named the delta ${file}, which is not in ${sourceDir}`);
  return top;
}

/**
 * Prepare a pass (before the manifest is read, so every extent taken lies within the sizes it lists). A later pass
 * syncs the file system first: what the CT wrote and the kernel had not written back is in the delta then.
 * The descriptor is sent whole in every later pass (it names the chain; a few KiB); the other files of the folder
 * are the read-only lower deltas, which no pass after the first changes.
 */
export async function planPass(a: StreamArgs & { pass: NonNullable<StreamArgs['pass']> }): Promise<PassPlan> {
  const ddxml = `${a.sourceDir}/DiskDescriptor.xml`;
  if (a.pass.index === 0) {
    // A tracker already running (an earlier run of this pass, or of another migration's copy) goes on: what it
    // tracked since its start is sent by the later passes. What the target holds is not trusted for it (app.ts,
    // writtenFrom0).
    await track('start', ddxml);
    return { kind: 'full' };
  }
  // Every later pass syncs first, the frozen one too (ploop copy syncs only before its last): the file system's dirty
  // pages reach the delta while the CT runs, so the frozen pass holds only what was written since the pass before,
  // not everything the kernel had not yet written back (up to dirty_expire_centisecs, 30 s, of writes).
  const taken = await track('take --sync', ddxml);
  const top = topDeltaIn(a.sourceDir, taken.file);
  const extents = taken.extents ?? [];
  const pieces = (e: ManifestEntry): Extent[] => {
    const size = e.size ?? 0;
    if (e.path === 'DiskDescriptor.xml') return size > 0 ? [[0, size]] : [];
    if (e.path !== top) return [];
    return extents.flatMap(([s, end]): Extent[] =>
      s < Math.min(end, size) ? [[s, Math.min(end, size)]] : [],
    );
  };
  // The final pass acknowledges nothing: no pass follows it, and should it be run again (a retry, a redelivery) it
  // sends what it took again, which is what an unacknowledged take is for. One host call less in the frozen window.
  return { kind: 'update', top, pieces, done: a.pass.final ? async () => {} : () => track('ack', ddxml) };
}
