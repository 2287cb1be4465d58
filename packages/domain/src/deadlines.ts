import { inFlight, type MigrationState, type StepRecord } from './state.ts';
import { stepTable } from './steps.ts';

/**
 * When the coordinator stops waiting for an in-flight step (ms since the epoch): past `timeoutAt` the step timed
 * out; a transfer is also given up past `stallAt`, when its bytes have not moved for `stallMs` since its intent or
 * its last progress. A Tick given up a step only strictly after these moments.
 */
export function deadlinesOf(r: StepRecord, stallMs: number): { timeoutAt: number; stallAt?: number } {
  const timeoutAt = Date.parse(r.intendedAt) + r.command.timeoutMs;
  if (stepTable[r.step].executor !== 'streamer') return { timeoutAt };
  return { timeoutAt, stallAt: Date.parse(r.progress?.advancedAt ?? r.intendedAt) + stallMs };
}

/**
 * The first moment a Tick can give up a step of this migration (ms since the epoch), or undefined when none is in
 * flight: the coordinator arms a timer for it instead of ticking every migration all the time.
 */
export function nextDeadline(s: MigrationState, stallMs: number): number | undefined {
  if (s.terminal) return undefined;
  let next: number | undefined;
  for (const r of inFlight(s)) {
    const d = deadlinesOf(r, stallMs);
    const at = Math.min(d.timeoutAt, d.stallAt ?? Infinity) + 1;
    if (next === undefined || at < next) next = at;
  }
  return next;
}
