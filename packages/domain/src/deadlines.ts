import type { TransferProgress } from '@haul/schemas';
import { queueOf, runsInOrder } from './dispatch-order.ts';
import { givenUpCodes } from './errors.ts';
import { inFlight, type MigrationState, type StepRecord } from './state.ts';
import { stepTable } from './steps.ts';

/**
 * The latest report of each transfer in flight, by command id (the progress bucket, outside the log): the stall
 * rule's evidence that a transfer is alive. A report is the current attempt's only when its command id is.
 */
export type TransferReports = Readonly<Record<string, TransferProgress>>;

/**
 * The last moment a transfer showed life in its report (ms since the epoch): its bytes moved, or it waited on
 * purpose (behind a final-dump transfer, for a transfer slot, for the receiver's sync). A wait counts up to the
 * report that still says it waits, or up to its end: a streamer that dies while it waits stops reporting, and its
 * last report ages like any other. -Infinity without a report.
 */
export function lastSignOfLife(report: TransferProgress | undefined): number {
  if (!report) return -Infinity;
  const moments = [report.movedAt, report.waitedUntil, report.waiting ? report.time : undefined];
  return Math.max(...moments.map((t) => (t === undefined ? -Infinity : Date.parse(t))));
}

/**
 * When this coordinator stored each command in the command stream (ms since the epoch, by command id), where the
 * stream did not hold it already (a duplicate was stored before, by another coordinator or an earlier send). Outside
 * the log, as the transfers' reports are. A step's time counts from the later of its intent and this: its executor
 * could not begin it before. It matters when a coordinator died between an intent and its command, and another sent
 * the command when it took the migration over, up to half a minute later (its reconcile, or the event's redelivery).
 */
export type SentAt = Readonly<Record<string, number>>;

/**
 * Where step `r` of an in-order executor (a node agent: dispatch-order.ts) stands in its queue: behind the earliest
 * step of the migration on that queue intended before it that its agent may not have ended yet (it has not begun),
 * or free since the latest outcome of those before it (ms since the epoch; -Infinity when there were none). A shared
 * disk's three steps are intended at once for every disk, and the source agent runs them one after the other: timed
 * from their intent, the second disk's backup (30 s) waited behind the first's two ploop snapshots in its time, and
 * slow shared storage rolled the migration back for nothing. An outcome's time is its executor's clock, as the
 * executor's own command check reads it (@haul/bus laneEnds).
 *
 * A step its agent may not have ended: one in flight, whose deadline `r` waits for (`headEndsAt` absent); or one the
 * coordinator gave up while `r` was queued behind it (`r` intended before that give-up) and whose executor has not
 * reported an end since, which its agent may still run: `r` was given up with it, or is once its own command may
 * have been checked (`headEndsAt`, the give-up's time). Timed from the give-up instead, a step stored less than
 * commandFreshMs before it waited a whole timeout more behind an agent that may be dead. A step intended after the
 * give-up (a compensation) is timed from it, as before.
 */
export function queuePlace(
  s: MigrationState,
  r: StepRecord,
): { behind: StepRecord; headEndsAt?: number } | { freedAt: number } {
  if (!runsInOrder[r.command.executor]) return { freedAt: -Infinity };
  let freedAt = -Infinity;
  let behind: StepRecord | undefined;
  for (const o of Object.values(s.steps)) {
    if (o.order >= r.order || queueOf(o.command) !== queueOf(r.command)) continue;
    if (o.status === 'intended' || givenUpWhileQueued(o, r)) {
      if (!behind || o.order < behind.order) behind = o;
      continue;
    }
    const ended = o.outcomeAt ?? o.finishedAt;
    if (ended !== undefined) freedAt = Math.max(freedAt, Date.parse(ended));
  }
  if (!behind) return { freedAt };
  return behind.status === 'intended' ? { behind } : { behind, headEndsAt: Date.parse(behind.outcomeAt!) };
}

/** `o` was given up by the coordinator after `r` was intended, and its executor has reported no end of it since. */
const givenUpWhileQueued = (o: StepRecord, r: StepRecord): boolean =>
  o.status === 'failed' &&
  !o.executorEnded &&
  o.outcomeOrder !== undefined &&
  o.outcomeAt !== undefined &&
  r.order < o.outcomeOrder &&
  givenUpCodes.includes(o.error?.code ?? '');

/**
 * When the coordinator stops waiting for an in-flight step (ms since the epoch): past `timeoutAt` the step timed
 * out; a transfer is also given up past `stallAt`, `stallMs` after its intent or its last sign of life, whichever
 * is later. Only time in which it neither moved bytes nor waited on purpose counts. Both count from the intent, from
 * its command's store when that was later (SentAt), or, for a node agent's step, from the end of the steps it runs
 * after (queuePlace). A node agent's step behind one still in flight has not begun: it is given up with that one
 * (`behind`), not on its own clock: its agent skips it then (its outcome is in the log), and the rollback does not
 * wait out each timeout of a dead agent's queue in turn (all of it in one tick); but never sooner than `freshMs`
 * (DecideMeta.commandFreshMs, or half its timeout) after its intent or its store, which its agent's command check relies on (@haul/bus
 * checkedOnFirstRead: a command checked sooner than that after its storage cannot have been given up). A Tick gives up
 * a step only strictly after these moments.
 */
export function deadlinesOf(
  s: MigrationState,
  r: StepRecord,
  times: { stallMs: number; freshMs: number },
  transfers: TransferReports = {},
  sentAt: SentAt = {},
): { timeoutAt: number; stallAt?: number; behind?: StepRecord } {
  const place = queuePlace(s, r);
  const stored = Math.max(Date.parse(r.intendedAt), sentAt[r.command.commandId] ?? -Infinity);
  if ('behind' in place) {
    const head = place.headEndsAt ?? deadlinesOf(s, place.behind, times, transfers, sentAt).timeoutAt;
    const fresh = Math.min(times.freshMs, r.command.timeoutMs / 2);
    return { timeoutAt: Math.max(head, stored + fresh), behind: place.behind };
  }
  const from = Math.max(stored, place.freedAt);
  const timeoutAt = from + r.command.timeoutMs;
  if (stepTable[r.step].executor !== 'streamer') return { timeoutAt };
  const alive = Math.max(from, lastSignOfLife(transfers[r.command.commandId]));
  return { timeoutAt, stallAt: alive + times.stallMs };
}

/**
 * The first moment a Tick can give up a step of this migration (ms since the epoch), or undefined when none is in
 * flight: the coordinator arms a timer for it instead of ticking every migration all the time. With older reports
 * than the Tick will read it is early, never late: a report only ever moves a stall later.
 */
export function nextDeadline(
  s: MigrationState,
  times: { stallMs: number; freshMs: number },
  transfers: TransferReports = {},
  sentAt: SentAt = {},
): number | undefined {
  if (s.terminal) return undefined;
  let next: number | undefined;
  for (const r of inFlight(s)) {
    const d = deadlinesOf(s, r, times, transfers, sentAt);
    const at = Math.min(d.timeoutAt, d.stallAt ?? Infinity) + 1;
    if (next === undefined || at < next) next = at;
  }
  return next;
}
