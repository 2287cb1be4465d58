import { existsSync, readFileSync } from 'node:fs';
import { paths, type EmuEnv } from '../lib/emu-env.ts';
import { blockDigest, chainDigests, viewChecksum } from '../ploop/delta.ts';
import { chainTo, imagePath, readDescriptor } from '../ploop/descriptor.ts';
import { withDeviceIo } from '../ploop/ops.ts';
import { cachedBlocks, deviceOnNode } from '../ploop/page-cache.ts';
import { ctRequest } from '../container/protocol.ts';
import { readResource, type HaResource } from '../shaman/cli.ts';

/*
 * The emulator-only proof seams (what no real tool shows: a disk's blocks as its CT sees them, a CT's memory
 * checksum, a pause of its workload, the refused double attaches), with the node they are read on named explicitly.
 * `haul-emu` serves them as commands; the tests' invariant checks call them in the test process, as each tool call
 * was a Node start of its own (about a tenth of the e2e tier's CPU went to these checks).
 */

/**
 * A disk as its CT sees it, as each block's SHA-256: the chain's merged view, and the page cache of its device on
 * `env`'s node on top. Digests, not contents: a disk's whole content held in memory cost more to fault in than to read.
 */
export function ctView(dd: string, env: EmuEnv | undefined): Map<number, string> {
  const files = chainTo(readDescriptor(dd)).map((i) => imagePath(dd, i.file));
  const dev = env ? deviceOnNode(env, files[0]!) : undefined;
  if (!env || !dev) return chainDigests(files);
  // Under the device's I/O lock: a writeback between reading the chain and the cache would hide its blocks.
  return withDeviceIo(env, dev.dev, () => {
    const view = chainDigests(files);
    for (const [i, b] of cachedBlocks(env, dev.dev)) view.set(i, blockDigest(b));
    return view;
  });
}

/**
 * Where a disk's device on `env`'s node and its descriptor disagree: the device opens another chain of deltas than
 * the descriptor names (a delta the device writes that no descriptor names, or one it no longer opens). Undefined
 * when they agree or no device opens the disk there. What a restart of the CT from its descriptor would lose.
 */
export function deviceDisagreement(dd: string, env: EmuEnv): string | undefined {
  const files = chainTo(readDescriptor(dd)).map((i) => imagePath(dd, i.file));
  const dev = deviceOnNode(env, files[0]!);
  if (!dev || (dev.deltas.length === files.length && dev.deltas.every((d, i) => d === files[i])))
    return undefined;
  return `${dev.dev} opens ${dev.deltas.join(' → ')}, the descriptor names ${files.join(' → ')}`;
}

/** Block → SHA-256 of that view, in block order: to replay a CT's write journal against. */
export function diskView(dd: string, env: EmuEnv | undefined): Record<string, string> {
  const view = ctView(dd, env);
  const obj: Record<string, string> = {};
  for (const i of [...view.keys()].sort((a, b) => a - b)) obj[i] = view.get(i)!;
  return obj;
}

/** The content checksum of that view (viewChecksum). */
export const diskChecksum = (dd: string, env: EmuEnv | undefined): { sha256: string; blocks: number } =>
  viewChecksum(ctView(dd, env));

/** A running CT's memory checksum (and whether it is frozen); rejects when the CT does not run on `env`'s node. */
export const memoryChecksum = <T>(env: EmuEnv, ctid: string): Promise<T> => askCt<T>(env, ctid, 'checksum');

/** Pause or resume a CT's workload (to read its disks at rest). */
export const pauseWorkload = (env: EmuEnv, ctid: string, op: 'freeze' | 'thaw'): Promise<unknown> =>
  askCt(env, ctid, op);

/** A request to a CT's init; a CT that does not answer (no socket, nobody listening) is said to be not running. */
async function askCt<T>(env: EmuEnv, ctid: string, op: 'checksum' | 'freeze' | 'thaw'): Promise<T> {
  try {
    return await ctRequest<T>(paths.ctSocket(env, ctid), { op });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ECONNREFUSED')
      throw new Error(`CT ${ctid} is not running on ${env.node} (${code})`, { cause: err });
    throw err;
  }
}

/** The refused double read-write attaches recorded in the cluster, as JSON lines ('' when none). */
export const corruptionLog = (clusterDir: string): string =>
  existsSync(paths.corruption(clusterDir)) ? readFileSync(paths.corruption(clusterDir), 'utf8') : '';

/** Where the HA cluster runs a resource (`ct-<ctid>`), if it knows it. */
export const haResource = (clusterDir: string, name: string): HaResource | undefined =>
  readResource(clusterDir, name);
