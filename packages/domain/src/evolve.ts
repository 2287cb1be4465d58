import type { MigrationEvent, PreflightResult } from '@haul/schemas';
import { errorCodes } from './errors.ts';
import { commitSteps } from './steps.ts';
import { imageDirName } from './ids.ts';
import { stepKey, type MigrationState, type StepRecord } from './state.ts';

/** The subject part of a command id: `<migrationId>:<step>:<subject>:<attempt>`. */
export function subjectOf(commandId: string): string {
  const parts = commandId.split(':');
  return parts[parts.length - 2] ?? '-';
}

/**
 * Fold one event into the state. Total: it never throws and ignores what it does not know, so any log (also one
 * written by a newer version) can be replayed.
 */
export function evolve(state: MigrationState, event: MigrationEvent): MigrationState {
  // The coordinator's attestation of the log it follows (packages/bus/src/trust/seal.ts), not a fact of the migration.
  if (event.type === 'MigrationSealed') return state;
  const s: MigrationState = { ...state, log: [...state.log, event], lastTime: event.time };
  switch (event.type) {
    case 'MigrationRequested':
      s.migrationId = event.migrationId;
      s.request = event.data.request;
      s.imageDirs = {
        source: `${event.data.imageRoots.source}/${imageDirName(event.migrationId)}`,
        target: `${event.data.imageRoots.target}/${imageDirName(event.migrationId)}`,
      };
      s.requestedAt = event.time;
      if (event.data.requestedBy !== undefined) s.requestedBy = event.data.requestedBy;
      return s;
    case 'StepIntended': {
      const cmd = event.data;
      const key = stepKey(cmd.step, subjectOf(cmd.commandId));
      const rec: StepRecord = {
        key,
        step: cmd.step,
        subject: subjectOf(cmd.commandId),
        command: cmd,
        status: 'intended',
        intendedAt: event.time,
        order: s.log.length - 1,
      };
      s.steps = { ...s.steps, [key]: rec };
      s.byCommand = { ...s.byCommand, [cmd.commandId]: key };
      return s;
    }
    case 'StepSucceeded':
    case 'StepFailed': {
      const key = s.byCommand[event.data.commandId];
      const rec = key ? s.steps[key] : undefined;
      if (!key || !rec) return s;
      // A late result of an older attempt counts only if it is a success the current attempt has not seen.
      const current = rec.command.commandId === event.data.commandId;
      if (!current && (event.type === 'StepFailed' || rec.status === 'succeeded')) return s;
      if (current && rec.status !== 'intended' && event.type === 'StepFailed') return s;
      const next: StepRecord = { ...rec, finishedAt: event.time };
      if (event.type === 'StepSucceeded') {
        next.status = 'succeeded';
        next.result = event.data.result;
        delete next.error;
      } else {
        next.status = 'failed';
        next.error = event.data.error;
      }
      if (event.data.reconciled) next.reconciled = true;
      s.steps = { ...s.steps, [key]: next };
      // A late success of the stuck action (an attempt the coordinator had given up on) lifts the stall.
      if (next.status === 'succeeded' && s.stuck?.action === key) delete s.stuck;
      if (event.type === 'StepSucceeded') {
        if (rec.step === 'preflightSource')
          s.preflight = { ...s.preflight, source: event.data.result as PreflightResult };
        if (rec.step === 'preflightTarget')
          s.preflight = { ...s.preflight, target: event.data.result as PreflightResult };
        if (commitSteps.includes(rec.step) && !s.rollback) s.committed = true;
      }
      return s;
    }
    case 'IterationDecided':
      s.decisions = [...s.decisions, event.data];
      return s;
    case 'RestoreStarted':
      s.restoreStarted = true;
      return s;
    case 'ResumedOnSource':
      s.resumedOnSource = true;
      return s;
    case 'CancelRequested':
      s.cancelRequested = event.data.reason;
      return s;
    case 'RollbackStarted':
      s.rollback = event.data.cause
        ? { reason: event.data.reason, cause: event.data.cause }
        : { reason: event.data.reason };
      return s;
    case 'MigrationCompleted':
      s.terminal = 'completed';
      return s;
    case 'MigrationRolledBack':
      s.terminal = 'rolled-back';
      return s;
    case 'StreamProgress':
      // Older logs only: progress is reported in the progress bucket now, never in the log.
      return s;
    case 'MigrationStuck': {
      const d = event.data;
      s.stuck = {
        action: d.action,
        step: d.step,
        plan: d.plan,
        attempts: d.attempts,
        reason: d.reason,
        since: event.time,
      };
      if (d.lastError) s.stuck.lastError = d.lastError;
      return s;
    }
    case 'RetryRequested': {
      const rec = s.steps[event.data.action];
      s.retriedFrom = { ...s.retriedFrom, [event.data.action]: rec?.command.attempt ?? 0 };
      delete s.stuck;
      return s;
    }
    case 'ActionResolved': {
      const rec = s.steps[event.data.action];
      delete s.stuck;
      if (!rec) return s;
      const done: StepRecord = {
        ...rec,
        status: 'succeeded',
        result: { actions: [`done by an operator: ${event.data.reason}`] },
        resolvedBy: event.data.reason,
        finishedAt: event.time,
      };
      delete done.error;
      s.steps = { ...s.steps, [rec.key]: done };
      return s;
    }
    case 'CommandRejected':
      return rejected(s, event);
  }
}

/**
 * An executor refused a command (not a valid command, a path outside its roots, a lease above its cap, a handler
 * that threw): parked, never run again, and the same arguments would be refused again. For the current attempt of
 * a step that is its outcome — failed, not retryable unless the rejection says so — instead of a wait for the
 * step's timeout. A rejection by another node's or executor's consumer (HAUL_WRONG_EXECUTOR: a misdelivered
 * command) says nothing about the command, whose addressee may still run it, and is ignored.
 */
function rejected(
  s: MigrationState,
  e: Extract<MigrationEvent, { type: 'CommandRejected' }>,
): MigrationState {
  const cid = e.data.commandId;
  const key = cid === undefined ? undefined : s.byCommand[cid];
  const rec = key ? s.steps[key] : undefined;
  if (!rec || rec.command.commandId !== cid || rec.status !== 'intended') return s;
  if (e.actor.node !== rec.command.node || e.data.error.code === errorCodes.wrongExecutor) return s;
  const error = { ...e.data.error, retryable: e.data.error.retryable ?? false };
  const next: StepRecord = { ...rec, status: 'failed', error, rejected: true, finishedAt: e.time };
  s.steps = { ...s.steps, [rec.key]: next };
  return s;
}

/** Replay a whole log. */
export function fold(events: readonly MigrationEvent[], from: MigrationState): MigrationState {
  return events.reduce(evolve, from);
}
