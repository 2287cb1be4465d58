/**
 * A migration that cannot go on by itself: an action of the rollback, the release or the cleanup failed on every
 * attempt. The core records it once (MigrationStuck) and then waits for an operator, who either fixes the cause and
 * retries the action (RetryRequested: a fresh set of attempts) or does the action by hand and says so
 * (ActionResolved: it counts as done). docs/protocol.md, "Stuck migrations", says what each may do to a host.
 */
import type { MigrationEvent, StepName } from '@haul/schemas';
import type { DecideMeta } from './decide.ts';
import { envelope } from './envelope.ts';
import { CommandRejectedError, errorCodes } from './errors.ts';
import { landMayStillRun, resumeVerdict } from './fencing.ts';
import { downtimeSteps, type MigrationState, type StepRecord, type StuckAction } from './state.ts';
import { stepTable } from './steps.ts';

/** The highest attempt number a command may carry (the schema's bound): retries stop there. */
export const maxAttemptNumber = 1000;

/** `requestedBy`: the verified signer of the operator's request (none when unsigned or insecure). */
export type OperatorInput =
  | { kind: 'Retry'; reason: string; requestedBy?: string; meta: DecideMeta }
  | {
      kind: 'Resolve';
      action: string;
      reason: string;
      requestedBy?: string;
      /** The operator checked that nothing of the migration runs on the target any more (landMayStillRun). */
      targetIdle?: boolean;
      meta: DecideMeta;
    };

/** The `requestedBy` field of a request's event: present only when the request was signed by a known identity. */
export const askedBy = (requestedBy: string | undefined): { requestedBy?: string } =>
  requestedBy === undefined ? {} : { requestedBy };

/** Attempts of this action since it was last started afresh (by the core, or by an operator's retry). */
export const attemptsSinceRetry = (s: MigrationState, rec: StepRecord): number =>
  rec.command.attempt - (s.retriedFrom[rec.key] ?? 0);

/**
 * The action failed on its last allowed attempt, or was refused by its executor (the same arguments would be
 * refused again, so only an operator can help): no more attempts without an operator. An operator's retry comes
 * after the cause was fixed, so the refusal before it no longer counts: the action gets its fresh attempts.
 */
export const exhausted = (s: MigrationState, rec: StepRecord, maxAttempts: number): boolean =>
  rec.status === 'failed' &&
  ((rec.rejected === true && rec.error?.retryable !== true && attemptsSinceRetry(s, rec) > 0) ||
    attemptsSinceRetry(s, rec) >= maxAttempts ||
    rec.command.attempt >= maxAttemptNumber);

/** Only an action that undoes or cleans up may be declared done by hand; a forward step can only be retried. */
export const resolvable = (step: StepName): boolean => stepTable[step].kind !== 'forward';

/** Record the stall once; afterwards nothing happens until an operator acts. */
export function stall(
  s: MigrationState,
  meta: DecideMeta,
  rec: StepRecord,
  plan: StuckAction['plan'],
): MigrationEvent[] {
  if (s.stuck?.action === rec.key) return [];
  const n = attemptsSinceRetry(s, rec);
  const ops = resolvable(rec.step) ? 'haul retry or haul resolve' : 'haul retry';
  const data: Extract<MigrationEvent, { type: 'MigrationStuck' }>['data'] = {
    action: rec.key,
    step: rec.step,
    plan,
    attempts: n,
    reason: `${rec.key} failed ${n} time${n === 1 ? '' : 's'} in a row: the ${plan} waits for an operator (${ops})`,
  };
  if (rec.error) data.lastError = rec.error;
  return [envelope(s, meta, 'MigrationStuck', data, `${rec.command.commandId}:stuck`)];
}

/** The stuck action an operator may act on, or the reason they may not. */
function stuckAction(s: MigrationState): StuckAction {
  if (!s.migrationId)
    throw new CommandRejectedError(errorCodes.unknownMigration, 'no such migration', 'migrationId');
  if (s.terminal)
    throw new CommandRejectedError(errorCodes.migrationFinished, `migration already ${s.terminal}`);
  if (!s.stuck)
    throw new CommandRejectedError(
      errorCodes.notStuck,
      'the migration is not stuck: it goes on by itself (haul status shows what runs)',
    );
  return s.stuck;
}

/** The operator fixed the cause: the stuck action gets a fresh set of attempts, with the same arguments. */
export function retry(input: Extract<OperatorInput, { kind: 'Retry' }>, s: MigrationState): MigrationEvent[] {
  const st = stuckAction(s);
  const rec = s.steps[st.action];
  if (rec && rec.command.attempt >= maxAttemptNumber)
    throw new CommandRejectedError(
      errorCodes.attemptsExhausted,
      resolvable(st.step)
        ? `${st.action} was attempted ${rec.command.attempt} times: do it by hand and resolve it`
        : `${st.action} was attempted ${rec.command.attempt} times, the most a migration's log holds, and as a ` +
            'forward step it cannot be resolved: the migration stays stuck; finish it on the hosts by hand',
    );
  return [
    envelope(s, input.meta, 'RetryRequested', {
      action: st.action,
      reason: input.reason,
      ...askedBy(input.requestedBy),
    }),
  ];
}

/**
 * The operator did the stuck action by hand: it counts as done. Refused for any other action than the stuck one,
 * for forward steps (before the commit point a forward step never waits: its failure rolls back; after it,
 * takeOwnership and releaseSource must be confirmed by their agents), for resuming or starting the CT on the
 * source while the target may run it (the same fence the source agent obeys), and for stopping the CT on the target
 * while the CT's start there was given up and may still run (landMayStillRun), unless the operator says they checked
 * that nothing runs there any more (`targetIdle`: the restore's vzctl has ended, or the host is down).
 */
export function resolve(
  input: Extract<OperatorInput, { kind: 'Resolve' }>,
  s: MigrationState,
): MigrationEvent[] {
  const st = stuckAction(s);
  if (input.action !== st.action)
    throw new CommandRejectedError(
      errorCodes.resolveWrongAction,
      `the migration is stuck on ${st.action}, not ${input.action}`,
      'action',
    );
  if (!resolvable(st.step))
    throw new CommandRejectedError(
      errorCodes.resolveForwardStep,
      `${st.action} is a forward step: fix its cause and use retry (the agent confirms it by inspecting the host)`,
      'action',
    );
  if (st.step === 'resumeSource' || st.step === 'startSource') {
    const v = resumeVerdict(s);
    if (!v.ok) throw new CommandRejectedError(errorCodes.fenced, v.reason, 'action');
  }
  const { land } = downtimeSteps(s);
  if (st.step === 'stopTarget' && landMayStillRun(s) && input.targetIdle !== true)
    throw new CommandRejectedError(
      errorCodes.fenced,
      `the target's ${land} was given up, and its agent has not reported its end: it may still be starting the CT there, ` +
        `which a stopped CT does not show. Retry ${st.action} once the target's agent runs (it stops the CT after the ${land}), ` +
        'or resolve with targetIdle (haul resolve --target-idle) once you have checked that nothing of the migration runs ' +
        'on the target any more (its vzctl has ended, or the host is down)',
      'targetIdle',
    );
  return [
    envelope(s, input.meta, 'ActionResolved', {
      action: st.action,
      step: st.step,
      reason: input.reason,
      ...askedBy(input.requestedBy),
      ...(st.step === 'stopTarget' && input.targetIdle === true ? { targetIdle: true } : {}),
    }),
  ];
}
