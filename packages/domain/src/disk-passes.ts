import type { StreamResult } from '@haul/schemas';
import type { MigrationState, StepRecord } from './state.ts';

/**
 * The passes of a live local-disk copy, as `ploop copy` makes them (ploop lib/ploop-copy.c, tools/ploop-copy.c):
 * a full pass while the CT runs, with the host tracking the writes to the disk from its start; then passes of the
 * extents written since the pass before, while the CT runs; then, in the frozen window, one last pass after a sync
 * of the file system. Each pass is a `copyLocalDisk` step of its own, so a crash at any point leaves a log the
 * rollback reads: the target's copy is removed (one action for all the passes of a disk), the source only read.
 */

/**
 * Passes while the CT runs: the full one and at most three of written extents — `ploop copy` iterates three times
 * (tools/ploop-copy.c: `niter = 3`) before it freezes.
 */
export const maxLivePasses = 4;
/** A pass that moved at most this much has converged: what is written meanwhile is left to the frozen pass. */
export const smallPassBytes = 4 * 1024 * 1024;

/** Step subject of live pass `k` of local disk `disk` (the frozen pass is the disk's index alone). */
export const livePassSubject = (disk: number, k: number): string => `${disk}.${k}`;
/** The local disk a copyLocalDisk subject names (`<disk>` or `<disk>.<pass>`). */
export const diskOfSubject = (subject: string): number => Number(subject.split('.')[0]);

/** The live passes of one local disk so far, in pass order. */
export function livePassesOf(s: MigrationState, disk: number): StepRecord[] {
  return Object.values(s.steps)
    .filter((r) => r.step === 'copyLocalDisk' && r.subject.startsWith(`${disk}.`))
    .sort((a, b) => passOf(a) - passOf(b));
}

const passOf = (r: StepRecord): number => Number(r.subject.split('.')[1]);

/**
 * What a local disk's live copy needs next: pass `k` to be sent, a pass in flight (or failed: the rollback
 * decides) to wait for, or nothing more before the freeze (`ready`, with the index of the frozen pass).
 */
export function nextLivePass(
  s: MigrationState,
  disk: number,
): { send: number } | { wait: true } | { ready: number } {
  const passes = livePassesOf(s, disk);
  const last = passes.at(-1);
  if (!last) return { send: 0 };
  if (last.status !== 'succeeded') return { wait: true };
  const k = passOf(last);
  const moved = (last.result as StreamResult).bytes;
  if (k + 1 >= maxLivePasses || (k > 0 && moved <= smallPassBytes)) return { ready: k + 1 };
  return { send: k + 1 };
}
