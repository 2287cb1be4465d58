import type { ConvergenceNumbers, DowntimePolicy, IterationDecidedData } from '@haul/schemas';
import type { FullRequest } from './request.ts';

/** P.Haul's constants (iters.py). */
export const minIterPagesCount = 64;
export const maxIterGrowRatePercent = 10;
/** Frozen time the prediction adds for the fixed work of the final dump and the restore. */
export const fixedFrozenOverheadMs = 100;
export const pageSize = 4096;

export type ConvergenceInput = {
  /** 0-based iteration index of the pre-dump that just finished. */
  iteration: number;
  pagesWritten: number;
  prevPagesWritten?: number;
  maxIterations: number;
  /** Pages dirtied per second since the previous pre-dump (measured between dumps). */
  dirtyPagesPerSec?: number;
  /** How long this pre-dump took: the final dump will carry what gets dirtied in a similar window. */
  iterationMs?: number;
  /** Dump speed of this pre-dump and the measured streaming bandwidth, bytes per second. */
  dumpBytesPerSec?: number;
  bandwidthBytesPerSec?: number;
  budget?: { maxDowntimeMs: number; policy: DowntimePolicy };
};

export type ConvergenceDecision = Pick<IterationDecidedData, 'decision' | 'reason' | 'numbers'>;

/**
 * After pre-dump `iteration`: go on, do the final dump, or give up. Without a budget, P.Haul's rules. With a
 * downtime budget, stop as soon as the predicted frozen time fits, and apply the policy when it never will.
 */
export function decideConvergence(i: ConvergenceInput): ConvergenceDecision {
  const numbers: ConvergenceNumbers = { pagesWritten: i.pagesWritten, maxIterations: i.maxIterations };
  let grows = false;
  if (i.prevPagesWritten !== undefined) {
    numbers.prevPagesWritten = i.prevPagesWritten;
    const growth =
      i.prevPagesWritten === 0
        ? i.pagesWritten > 0
          ? Infinity
          : 0
        : ((i.pagesWritten - i.prevPagesWritten) * 100) / i.prevPagesWritten;
    if (Number.isFinite(growth)) numbers.growthPercent = round(growth);
    grows = growth > maxIterGrowRatePercent;
  }
  const last = i.iteration >= i.maxIterations - 1;

  if (!i.budget) {
    if (i.pagesWritten <= minIterPagesCount) return { decision: 'final-dump', reason: 'small-dump', numbers };
    if (grows) return { decision: 'final-dump', reason: 'iteration-grows', numbers };
    if (last) return { decision: 'final-dump', reason: 'too-many-iterations', numbers };
    return { decision: 'continue', reason: 'continue', numbers };
  }

  numbers.maxDowntimeMs = i.budget.maxDowntimeMs;
  const predicted = predictFrozenMs(i);
  if (predicted !== undefined) {
    numbers.predictedFrozenMs = round(predicted);
    if (i.dirtyPagesPerSec !== undefined) numbers.dirtyPagesPerSec = round(i.dirtyPagesPerSec);
    if (i.dumpBytesPerSec !== undefined) numbers.dumpBytesPerSec = round(i.dumpBytesPerSec);
    if (i.bandwidthBytesPerSec !== undefined) numbers.bandwidthBytesPerSec = round(i.bandwidthBytesPerSec);
    if (predicted <= i.budget.maxDowntimeMs)
      return { decision: 'final-dump', reason: 'fits-budget', numbers };
  }
  if (grows || last) {
    return i.budget.policy === 'proceed'
      ? { decision: 'final-dump', reason: 'budget-never-fits', numbers }
      : { decision: 'abort', reason: 'budget-never-fits', numbers };
  }
  return { decision: 'continue', reason: 'continue', numbers };
}

/**
 * Predicted frozen time of the final dump: the pages dirtied during one more window like the last iteration, dumped
 * at the measured dump speed and streamed at the measured bandwidth, plus a fixed overhead. Undefined until the
 * dirty rate and the speeds are known (from the second iteration on).
 */
export function predictFrozenMs(i: ConvergenceInput): number | undefined {
  if (i.dirtyPagesPerSec === undefined || i.iterationMs === undefined || !i.dumpBytesPerSec) return undefined;
  const pages = i.dirtyPagesPerSec * (i.iterationMs / 1000);
  return finalDumpMs(pages * pageSize, i.dumpBytesPerSec, i.bandwidthBytesPerSec ?? i.dumpBytesPerSec);
}

/**
 * The frozen time of a final dump of `bytes`: written at the dump speed, streamed at the link's rate, plus the fixed
 * overhead. The one model of the final dump, for the decider (predictFrozenMs) and a check (predictDowntime).
 */
export function finalDumpMs(bytes: number, dumpBytesPerSec: number, linkBytesPerSec: number): number {
  return fixedFrozenOverheadMs + (bytes / dumpBytesPerSec) * 1000 + (bytes / linkBytesPerSec) * 1000;
}

/**
 * Whether a live migration pre-dumps: asked for (`on`), or `auto` (the default) and the source's criu can track
 * memory changes. Otherwise the final dump writes the whole memory while the CT is frozen.
 */
export const usesPreDump = (req: FullRequest, src: { memTrack: boolean }): boolean =>
  req.preDump === 'on' || (req.preDump === 'auto' && src.memTrack);

const round = (n: number) => Math.round(n * 100) / 100;
