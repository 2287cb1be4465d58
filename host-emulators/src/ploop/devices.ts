import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../lib/atomic.ts';
import { acquireLock } from '../lib/lock.ts';
import { paths } from '../lib/emu-env.ts';

/**
 * Emulated kernel state of ploop devices across the cluster. A device belongs to the node that attached it; its
 * delta stack runs base first, and only its top delta is open read-write (unless the device is read-only).
 */
export type Device = {
  dev: string;
  node: string;
  ddxml: string;
  deltas: string[];
  readonly: boolean;
  mountpoint?: string;
};
export type Registry = { next: number; devices: Device[] };

export const rwFile = (d: Device): string | undefined => (d.readonly ? undefined : d.deltas.at(-1));

/** Run `fn` on the registry under the cluster-wide registry lock; what it returns is stored. */
export function withRegistry<T>(clusterDir: string, fn: (reg: Registry) => T): T {
  mkdirSync(clusterDir, { recursive: true });
  const release = acquireLock(paths.locks(clusterDir), 'ploop-devices', 30_000);
  if (!release) throw new Error('device registry lock timed out');
  try {
    const file = paths.devices(clusterDir);
    const reg: Registry = existsSync(file)
      ? (JSON.parse(readFileSync(file, 'utf8')) as Registry)
      : { next: 0, devices: [] };
    const out = fn(reg);
    writeFileAtomic(file, JSON.stringify(reg, null, 1));
    return out;
  } finally {
    release();
  }
}

export function readRegistry(clusterDir: string): Registry {
  const file = paths.devices(clusterDir);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Registry) : { next: 0, devices: [] };
}

/**
 * The rule a cluster file system cannot enforce and real ploop does not check across hosts: a delta open
 * read-write by one device must not be open by any other device. Returns the violation, if any.
 */
export function conflictOf(reg: Registry, candidate: Device): string | undefined {
  for (const d of reg.devices) {
    if (d.dev === candidate.dev) continue;
    const mine = rwFile(candidate);
    const theirs = rwFile(d);
    if (mine && d.deltas.includes(mine))
      return `${mine} would be written by ${candidate.node} while ${d.node} has it open (${d.dev})`;
    if (theirs && candidate.deltas.includes(theirs))
      return `${theirs} is written by ${d.node} (${d.dev}) and would be opened by ${candidate.node}`;
  }
  return undefined;
}

/** Record a refused double attach: tests assert this log stays empty. */
export function recordCorruption(clusterDir: string, node: string, what: string): void {
  appendFileSync(
    paths.corruption(clusterDir),
    JSON.stringify({ time: new Date().toISOString(), node, what }) + '\n',
  );
}
