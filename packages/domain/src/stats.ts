import type {
  DumpResult,
  HostResult,
  IterationStats,
  MigrationEvent,
  MigrationStats,
  StreamResult,
} from '@haul/schemas';
import { downtimeWindowOf } from './downtime-window.ts';
import { fold } from './evolve.ts';
import { downtimeSteps, initialState, stepOf, type MigrationState, type StepRecord } from './state.ts';

const ms = (a: string | undefined, b: string | undefined) =>
  a && b ? Math.max(0, Date.parse(b) - Date.parse(a)) : undefined;

/** The numbers P.Haul prints (total, frozen, restore, image sync time, per-iteration pages) and the downtime. */
export function deriveStats(events: readonly MigrationEvent[], now?: string): MigrationStats {
  return deriveStatsOf(fold(events, initialState()), now);
}

/**
 * When the CT stopped running anywhere — the intent of the final dump that freezes it (live) or of its stop
 * (restart) — and, once it runs again, when: restored or started on the target, or back on the source. No `until`
 * while it runs nowhere (the live view's frozen timer); undefined before the freeze.
 */
export function downtimeOf(s: MigrationState): { since: string; until?: string } | undefined {
  const d = downtimeSteps(s);
  const freeze = stepOf(s, d.freeze);
  if (!freeze) return undefined;
  const done = (r: StepRecord | undefined) => (r?.status === 'succeeded' ? r : undefined);
  const landed = done(stepOf(s, d.land));
  const back = s.resumedOnSource ? s.resumedOnSourceAt : done(stepOf(s, d.back))?.finishedAt;
  const until = landed?.finishedAt ?? back;
  return until === undefined ? { since: freeze.intendedAt } : { since: freeze.intendedAt, until };
}

export function deriveStatsOf(s: MigrationState, now?: string): MigrationStats {
  const steps = Object.values(s.steps);
  const done = (r: StepRecord | undefined) => (r?.status === 'succeeded' ? r : undefined);
  const streamOf = (subject: string) => done(stepOf(s, 'streamImages', subject));
  const iterations: IterationStats[] = steps
    .filter((r) => (r.step === 'preDump' || r.step === 'finalDump') && r.status === 'succeeded')
    .sort((a, b) => a.order - b.order)
    .map((r) => {
      const d = r.result as DumpResult;
      const final = r.step === 'finalDump';
      const it: IterationStats = {
        iteration: final ? (r.command.args as { iteration: number }).iteration : Number(r.subject),
        pagesWritten: d.pagesWritten,
        bytes: d.bytes,
        durationMs: d.durationMs,
      };
      // criu's counters, when it reported them (a held final dump has none until it is released).
      if (d.pagesSkipped !== undefined) it.pagesSkipped = d.pagesSkipped;
      if (d.frozenUs !== undefined) it.frozenUs = d.frozenUs;
      // The final dump's frozen_time is known only once criu ended, after the release (P.Haul reads it then too).
      const released = final ? done(stepOf(s, 'releaseSource')) : undefined;
      if (released && (released.result as HostResult).frozenUs !== undefined)
        it.frozenUs = (released.result as HostResult).frozenUs!;
      const st = streamOf(final ? 'final' : r.subject);
      if (st) it.streamMs = (st.result as StreamResult).durationMs;
      if (final) it.final = true;
      return it;
    });
  const end = now ?? s.lastTime;
  const stats: MigrationStats = { totalMs: ms(s.requestedAt, end) ?? 0, iterations };
  const live = s.request?.mode === 'live';
  const landed = done(stepOf(s, downtimeSteps(s).land));
  const span = downtimeOf(s);
  const downtime = ms(span?.since, span?.until);
  if (downtime !== undefined) stats.downtimeMs = downtime;
  const preFrozenUs = iterations.filter((i) => !i.final).reduce((a, i) => a + (i.frozenUs ?? 0), 0);
  const finalFrozenUs = iterations.find((i) => i.final)?.frozenUs;
  // P.Haul's frozen time: the sum of criu's frozen_time over all dumps (the final one covers the held window);
  // before criu reported it, the downtime stands in for the final dump.
  if (live && (finalFrozenUs || downtime !== undefined))
    stats.frozenMs = preFrozenUs / 1000 + (finalFrozenUs ? finalFrozenUs / 1000 : (downtime ?? 0));
  const restore = landed && live ? (landed.result as HostResult).restoreUs : undefined;
  if (restore !== undefined) stats.restoreMs = restore / 1000;
  const finalStream = streamOf('final');
  if (finalStream) stats.imageSyncMs = (finalStream.result as StreamResult).durationMs;
  const streamed = steps
    .filter((r) => (r.step === 'streamImages' || r.step === 'copyLocalDisk') && r.status === 'succeeded')
    .reduce((a, r) => a + (r.result as StreamResult).bytes, 0);
  stats.bytesStreamed = streamed;
  const window = downtimeWindowOf(s);
  if (window) stats.downtimeWindow = window;
  return stats;
}
