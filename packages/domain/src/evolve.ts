import type { MigrationEvent, PreflightResult } from '@haul/schemas';
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
    case 'CommandRejected':
    case 'StreamProgress':
      return s;
  }
}

/** Replay a whole log. */
export function fold(events: readonly MigrationEvent[], from: MigrationState): MigrationState {
  return events.reduce(evolve, from);
}
