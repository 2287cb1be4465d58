import type { MigrationEvent, PreflightResult } from '@haul/schemas';
import { byAddressee } from './addressing.ts';
import { foldResumeFence } from './fencing.ts';
import { commitSteps } from './steps.ts';
import { imageDirName } from './ids.ts';
import { once, operatorActionOf, stepKey, type MigrationState, type StepRecord } from './state.ts';
import { withRequestDefaults } from './request.ts';

/** The subject part of a command id: `<migrationId>:<step>:<subject>:<attempt>`. */
export function subjectOf(commandId: string): string {
  const parts = commandId.split(':');
  return parts[parts.length - 2] ?? once;
}

/**
 * Fold one event into the state. Total: it never throws and ignores what it does not know, so any log (also one
 * written by a newer version) can be replayed.
 */
export function evolve(state: MigrationState, event: MigrationEvent): MigrationState {
  return fold([event], state);
}

/**
 * Fold events into a state, in order; `from` is left as it was. The collections an event changes (the steps, the
 * commands, the decisions, the retries, the operators' actions) are copied once per fold, on the first change, and
 * changed in place after: folding a log event by event copied them at each event, O(n²) in the events of a
 * migration, and was the largest cost of rebuilding statuses from the log (bench:control's replay).
 */
export function fold(events: readonly MigrationEvent[], from: MigrationState): MigrationState {
  const d = draftOf(from);
  for (const e of events) apply(d, e);
  return d.s;
}

/** The collections a fold copies before it changes them, each with its bit in Draft.owned. */
const collections = { steps: 1, byCommand: 2, decisions: 4, retriedFrom: 8, operatorActions: 16 } as const;
type Collection = keyof typeof collections;

/** A state being folded, and which of its collections are already its own copies (a bit each). */
type Draft = { s: MigrationState; owned: number };

const draftOf = (from: MigrationState): Draft => ({ s: { ...from }, owned: 0 });

/** The draft's own copy of one of its collections (made on first use). */
function own<K extends Collection>(d: Draft, k: K): MigrationState[K] {
  if (!(d.owned & collections[k])) {
    const v = d.s[k];
    d.s[k] = (Array.isArray(v) ? [...v] : { ...v }) as MigrationState[K];
    d.owned |= collections[k];
  }
  return d.s[k];
}

const setStep = (d: Draft, rec: StepRecord): void => {
  own(d, 'steps')[rec.key] = rec;
};

function apply(d: Draft, event: MigrationEvent): void {
  // The coordinator's attestation of the log it follows (packages/bus/src/trust/seal.ts), not a fact of the migration.
  if (event.type === 'MigrationSealed') return;
  const s = d.s;
  s.events++;
  s.lastEvent = event.type;
  s.lastTime = event.time;
  const fence = foldResumeFence(s, event);
  s.restoreStarted = fence.restoreStarted;
  s.targetStoppedSinceRestore = fence.targetStoppedSinceRestore;
  const asked = operatorActionOf(event);
  if (asked.length) own(d, 'operatorActions').push(...asked);
  switch (event.type) {
    case 'MigrationRequested':
      s.migrationId = event.migrationId;
      s.request = withRequestDefaults(event.data.request);
      s.imageRoots = event.data.imageRoots;
      s.imageDirs = {
        source: `${event.data.imageRoots.source}/${imageDirName(event.migrationId)}`,
        target: `${event.data.imageRoots.target}/${imageDirName(event.migrationId)}`,
      };
      s.requestedAt = event.time;
      if (event.data.requestedBy !== undefined) s.requestedBy = event.data.requestedBy;
      return;
    case 'StepIntended': {
      const cmd = event.data;
      const key = stepKey(cmd.step, subjectOf(cmd.commandId));
      setStep(d, {
        key,
        step: cmd.step,
        subject: subjectOf(cmd.commandId),
        command: cmd,
        status: 'intended',
        intendedAt: event.time,
        order: s.events - 1,
      });
      own(d, 'byCommand')[cmd.commandId] = key;
      return;
    }
    case 'StepSucceeded':
    case 'StepFailed':
      return outcome(d, event);
    case 'IterationDecided':
      own(d, 'decisions').push(event.data);
      return;
    case 'RestoreStarted':
      return; // the resume fence, above
    case 'ResumedOnSource':
      s.resumedOnSource = true;
      s.resumedOnSourceAt ??= event.time;
      return;
    case 'CancelRequested':
      s.cancelRequested = event.data.reason;
      return;
    case 'RollbackStarted':
      s.rollback = event.data.cause
        ? { reason: event.data.reason, cause: event.data.cause }
        : { reason: event.data.reason };
      return;
    case 'MigrationCompleted':
      s.terminal = 'completed';
      return;
    case 'MigrationRolledBack':
      s.terminal = 'rolled-back';
      return;
    case 'StreamProgress':
      // Older logs only: progress is reported in the progress bucket now, never in the log.
      return;
    case 'MigrationStuck': {
      const e = event.data;
      s.stuck = {
        action: e.action,
        step: e.step,
        plan: e.plan,
        attempts: e.attempts,
        reason: e.reason,
        since: event.time,
      };
      if (e.lastError) s.stuck.lastError = e.lastError;
      return;
    }
    case 'RetryRequested': {
      const rec = s.steps[event.data.action];
      own(d, 'retriedFrom')[event.data.action] = rec?.command.attempt ?? 0;
      delete s.stuck;
      return;
    }
    case 'ActionResolved': {
      const rec = s.steps[event.data.action];
      delete s.stuck;
      if (!rec) return;
      const done: StepRecord = {
        ...rec,
        status: 'succeeded',
        result: { actions: [`done by an operator: ${event.data.reason}`] },
        resolvedBy: event.data.reason,
        finishedAt: event.time,
        succeededOrder: s.events - 1,
      };
      delete done.error;
      setStep(d, done);
      return;
    }
    case 'CommandRejected':
      return rejected(d, event);
  }
}

/** A step's outcome, for its current attempt or a late one of an earlier attempt. */
function outcome(d: Draft, event: Extract<MigrationEvent, { type: 'StepSucceeded' | 'StepFailed' }>): void {
  const s = d.s;
  const key = s.byCommand[event.data.commandId];
  const rec = key ? s.steps[key] : undefined;
  if (!key || !rec) return;
  const current = rec.command.commandId === event.data.commandId;
  // Where this attempt's command first got an outcome, whatever the state makes of it (downtime-window.ts), and
  // whether its executor has said that its run ended (the coordinator's give-up does not).
  const first = {
    ...(current && rec.outcomeOrder === undefined
      ? { outcomeOrder: s.events - 1, outcomeAt: event.time }
      : {}),
    ...(current && event.actor.service !== 'coordinator' ? { executorEnded: true as const } : {}),
  };
  // A late result of an older attempt counts only if it is a success the current attempt has not seen.
  const ignored =
    (!current && (event.type === 'StepFailed' || rec.status === 'succeeded')) ||
    (current && rec.status !== 'intended' && event.type === 'StepFailed');
  if (ignored) {
    if (Object.keys(first).length > 0) setStep(d, { ...rec, ...first });
    return;
  }
  const next: StepRecord = { ...rec, ...first, finishedAt: event.time };
  if (event.type === 'StepSucceeded') {
    next.status = 'succeeded';
    next.result = event.data.result;
    next.succeededOrder = s.events - 1;
    if (current) delete next.succeededByOlderAttempt;
    else next.succeededByOlderAttempt = true;
    delete next.error;
  } else {
    next.status = 'failed';
    next.error = event.data.error;
  }
  if (event.data.reconciled) next.reconciled = true;
  setStep(d, next);
  // A late success of the stuck action (an attempt the coordinator had given up on) lifts the stall.
  if (next.status === 'succeeded' && s.stuck?.action === key) delete s.stuck;
  if (event.type === 'StepSucceeded') {
    if (rec.step === 'preflightSource')
      s.preflight = { ...s.preflight, source: event.data.result as PreflightResult };
    if (rec.step === 'preflightTarget')
      s.preflight = { ...s.preflight, target: event.data.result as PreflightResult };
    if (commitSteps.includes(rec.step) && !s.rollback) s.committed = true;
  }
}

/**
 * An executor refused a command (not a valid command, a path outside its roots, a lease above its cap, a handler
 * that threw, a step it has no handler for): parked, never run again, and the same arguments would be refused again.
 * For the current attempt of a step that is its outcome — failed, not retryable unless the rejection says so —
 * instead of a wait for the step's timeout. A rejection by anyone but the command's addressee (another node, or the
 * other executor of its node: a misdelivered command) says nothing about the command, whose addressee may still run
 * it, and is ignored.
 */
function rejected(d: Draft, e: Extract<MigrationEvent, { type: 'CommandRejected' }>): void {
  const s = d.s;
  const cid = e.data.commandId;
  const key = cid === undefined ? undefined : s.byCommand[cid];
  const rec = key ? s.steps[key] : undefined;
  if (!rec || rec.command.commandId !== cid || rec.status !== 'intended') return;
  if (!byAddressee(e, rec.command)) return;
  const error = { ...e.data.error, retryable: e.data.error.retryable ?? false };
  setStep(d, { ...rec, status: 'failed', error, rejected: true, finishedAt: e.time });
}
