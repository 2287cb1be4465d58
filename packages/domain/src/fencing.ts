import type { MigrationEvent } from '@haul/schemas';
import { errorCodes, givenUpCodes } from './errors.ts';
import { downtimeSteps, stepOf, type MigrationState } from './state.ts';

/**
 * The fencing rules of the commit point (docs/protocol.md). Both are appended with an expected-sequence check on
 * the migration's subject, after the agent has read the log up to that sequence, so exactly one of "restore
 * started" and "resumed on source" can win when both are attempted.
 */

export type FenceVerdict = { ok: true } | { ok: false; code: string; reason: string };

/**
 * A fence judges a migration's whole log, which starts with its MigrationRequested. A log that does not has lost its
 * oldest events: the event stream drops them when full (its byte limit, or a node flooding it: every node may append
 * to any migration's subject), oldest first, so a lost RestoreStarted or ResumedOnSource comes only after the
 * MigrationRequested before it. Both fences refuse then (the CT stays as it is: frozen on the source, or not started
 * on the target), rather than judge what is left.
 */
export function wholeLog(events: readonly MigrationEvent[]): FenceVerdict {
  return events[0]?.type === 'MigrationRequested'
    ? { ok: true }
    : {
        ok: false,
        code: errorCodes.logIncomplete,
        reason:
          "the migration's log does not start with its MigrationRequested: its oldest events were dropped",
      };
}

/** What the target knows about itself when it asks. */
export type TargetNow = {
  bootId?: string;
  /** The restore's own command: refused once it has an outcome (the coordinator gave it up at its timeout). */
  commandId?: string;
};

/**
 * May the target append RestoreStarted (and then run vzctl restore)? Also refused when the target's boot id differs
 * from the one its preflight recorded: image folders are not synced to disk while streaming, so after a reboot
 * they may have lost data with the page cache (docs/protocol.md, "Durability of streamed files").
 */
export function mayStartRestore(
  events: readonly MigrationEvent[],
  now: TargetNow = {},
  again = false,
): FenceVerdict {
  const whole = wholeLog(events);
  if (!whole.ok) return whole;
  const before = preflightBootId(events, (step) => step === 'preflightTarget');
  if (before !== undefined && now.bootId !== undefined && before !== now.bootId)
    return {
      ok: false,
      code: errorCodes.targetRebooted,
      reason: `the target rebooted since its preflight (boot ${before} → ${now.bootId}): streamed images may be incomplete`,
    };
  if (events.some((e) => e.type === 'ResumedOnSource'))
    return { ok: false, code: errorCodes.fenced, reason: 'the CT was already resumed on the source' };
  // The coordinator appends a step's give-up and the RollbackStarted after it in two appends: a restore fenced between
  // them started a CT for a step already failed, which the rollback then stopped again, in the frozen window.
  const cid = now.commandId;
  if (cid !== undefined && events.some((e) => isOutcome(e) && e.data.commandId === cid))
    return {
      ok: false,
      code: errorCodes.fenced,
      reason: 'the coordinator gave this restore up: it has an outcome',
    };
  if (events.some((e) => e.type === 'RollbackStarted'))
    return { ok: false, code: errorCodes.fenced, reason: 'the migration is rolling back' };
  // A cancel accepted before the restore started is honoured: the restore fails, with no effect, and the rollback
  // follows (the coordinator waits for its outcome). Once RestoreStarted is in the log, a cancel is refused instead.
  // Not for a restore judged again (`again`, judgedAgain): a log from before this rule may hold a cancel before the
  // RestoreStarted it let through, and that restore may have run.
  if (!again && events.some((e) => e.type === 'CancelRequested'))
    return { ok: false, code: errorCodes.fenced, reason: 'an operator cancelled the migration' };
  if (events.some((e) => e.type === 'MigrationRolledBack' || e.type === 'MigrationCompleted')) {
    return { ok: false, code: errorCodes.fenced, reason: 'the migration is over' };
  }
  return { ok: true };
}

/**
 * A fence rule's verdict on an event the agent asks to append: on the log before the event when the log holds it
 * already, else on the whole log. Nothing needs appending in the first case, but the step runs again (a redelivery
 * after a crash, or after a reboot of its host), and it is judged as its first run was: on the same log, with its host
 * as it is now. A target that rebooted since it appended RestoreStarted is refused, as it would have been before.
 */
export function judgedAgain(
  events: readonly MigrationEvent[],
  eventId: string,
  rule: (events: readonly MigrationEvent[], again: boolean) => FenceVerdict,
): { inLog: boolean; verdict: FenceVerdict } {
  const at = events.findIndex((e) => e.eventId === eventId);
  return at < 0
    ? { inLog: false, verdict: rule(events, false) }
    : { inLog: true, verdict: rule(events.slice(0, at), true) };
}

/**
 * May the source resume the frozen CT (append ResumedOnSource, abort the dump)? Never once the target restore has
 * started, unless the target CT is known stopped afterwards: a successful stopTarget after RestoreStarted, or an
 * operator's assertion that they stopped it by hand (ActionResolved of stopTarget).
 */
export function mayResumeSource(events: readonly MigrationEvent[]): FenceVerdict {
  const whole = wholeLog(events);
  if (!whole.ok) return whole;
  return resumeVerdict(events.reduce(foldResumeFence, noResumeFence));
}

/** What the resume fence needs of a log, folded event by event (the migration state keeps it: evolve.ts). */
export type ResumeFence = { restoreStarted: boolean; targetStoppedSinceRestore: boolean };

export const noResumeFence: ResumeFence = { restoreStarted: false, targetStoppedSinceRestore: false };

/** The fence after one more event: the first RestoreStarted starts it, the target known stopped after it lifts it. */
export function foldResumeFence(f: ResumeFence, e: MigrationEvent): ResumeFence {
  if (e.type === 'RestoreStarted')
    return f.restoreStarted ? f : { restoreStarted: true, targetStoppedSinceRestore: false };
  const stopped =
    (e.type === 'StepSucceeded' && e.data.step === 'stopTarget') ||
    (e.type === 'ActionResolved' && e.data.step === 'stopTarget');
  return f.restoreStarted && stopped && !f.targetStoppedSinceRestore
    ? { restoreStarted: true, targetStoppedSinceRestore: true }
    : f;
}

/** mayResumeSource's verdict on a folded fence. */
export function resumeVerdict(f: ResumeFence): FenceVerdict {
  if (!f.restoreStarted || f.targetStoppedSinceRestore) return { ok: true };
  return {
    ok: false,
    code: errorCodes.fenced,
    reason: 'the target restore has started and the target CT is not known stopped',
  };
}

/**
 * May the CT's start on the target still be under way, and run the CT when it ends? When the coordinator gave the
 * landing step up (its timeout: the restore in live mode once its RestoreStarted is in the log, the start in restart
 * mode) and that attempt's agent has reported no end of it since (StepRecord.executorEnded): vzctl may still be
 * loading the CT's memory. A `vzctl status` that shows the CT stopped then says nothing of the restore about to run
 * it, so an operator's "stopped by hand" (resolve of stopTarget) does not stand for it unless they say they checked
 * that nothing runs there any more (operator.ts resolve, `targetIdle`).
 */
export function landMayStillRun(s: MigrationState): boolean {
  const { land } = downtimeSteps(s);
  const rec = stepOf(s, land);
  if (!rec || rec.status !== 'failed' || rec.executorEnded) return false;
  if (!givenUpCodes.includes(rec.error?.code ?? '')) return false;
  return land !== 'restore' || s.restoreStarted;
}

const isOutcome = (
  e: MigrationEvent,
): e is Extract<MigrationEvent, { type: 'StepSucceeded' | 'StepFailed' }> =>
  e.type === 'StepSucceeded' || e.type === 'StepFailed';

/** What an agent knows of a command of its own node that it is about to skip (its outcome is in the log). */
export type SkippedHere = {
  node: string;
  /** The host's boot id now. */
  bootId: string;
  /**
   * The agent holds a command marker of it: a run of it began on this host and has not recorded its end. Markers are
   * kept in the agent's state folder: an agent started with another one (or a state folder that did not outlive its
   * container) has lost them, and must not run while the host holds the old folder's runs.
   */
  marked: boolean;
};

/**
 * Did the command never run on this node, though the coordinator gave it up? Then its agent says so (a StepFailed of
 * `errorCodes.notRun`), which the fold takes as the executor's end of it (StepRecord.executorEnded), so that an
 * operator's stop of the target need not vouch for a start that never began (landMayStillRun). True only when:
 * - the command's outcomes in the log are the coordinator's give-ups alone, and no executor's event names it (an
 *   outcome, RestoreStarted, a refusal: it came to the command);
 * - the agent holds no marker of it: a marker is written before any host work of a command, and removed only once
 *   its outcome is in the log or its refusal recorded (node-agent markers.ts);
 * - the host has not rebooted since its node's preflight recorded its boot id: a marker is not synced to disk, so a
 *   crash of the machine may lose one, never a crash of the agent. The preflight precedes every other command of the
 *   migration on its node; a preflight itself is never said not run.
 */
export function neverRanHere(
  events: readonly MigrationEvent[],
  commandId: string,
  here: SkippedHere,
): boolean {
  if (here.marked) return false;
  const about = events.filter((e) => (e.data as { commandId?: unknown }).commandId === commandId);
  // An executor's event naming the command (an outcome, RestoreStarted, a refusal): it came to it.
  if (about.some((e) => e.actor.service !== 'coordinator')) return false;
  const outcomes = about.filter(isOutcome);
  if (outcomes.length === 0) return false;
  const gaveUp = (e: (typeof outcomes)[number]) =>
    e.type === 'StepFailed' &&
    givenUpCodes.includes(e.data.error.code) &&
    e.data.step !== 'preflightSource' &&
    e.data.step !== 'preflightTarget';
  if (!outcomes.every(gaveUp)) return false;
  const bootId = preflightBootId(events, (_step, node) => node === here.node);
  return bootId !== undefined && bootId === here.bootId;
}

/** The boot id the first preflight that `which` takes recorded. */
function preflightBootId(
  events: readonly MigrationEvent[],
  which: (step: 'preflightSource' | 'preflightTarget', node: string) => boolean,
): string | undefined {
  for (const e of events)
    if (
      e.type === 'StepSucceeded' &&
      (e.data.step === 'preflightSource' || e.data.step === 'preflightTarget') &&
      which(e.data.step, e.data.node)
    )
      return e.data.result.bootId;
  return undefined;
}
