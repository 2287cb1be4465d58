import { fold, initialState, stepTable } from '@haul/domain';
import type { MigrationEvent, StepName } from '@haul/schemas';
import type { ExitName } from './exit-codes.ts';

/** The checks before anything changes, and the CT's lock taken with them (released by the rollback). */
const preflightSteps: ReadonlySet<StepName> = new Set(['preflightSource', 'preflightTarget', 'lockSource']);

/**
 * How a finished migration ended, as an exit outcome: completed; completed with a downtime over the request's
 * budget (overBudget: the CT moved, but not as asked); rejected when it rolled back, not cancelled, before any
 * forward step but the preflight checks (a check failed, or the coordinator refused their results: the CT was
 * never touched, the request was refused later than admission); else rolled back.
 */
export function outcomeOf(events: readonly MigrationEvent[]): ExitName | undefined {
  const s = fold(events, initialState());
  if (s.terminal === 'completed') return overBudget(events) ? 'overBudget' : 'completed';
  if (s.terminal !== 'rolled-back') return undefined;
  const forward = Object.values(s.steps).filter((r) => stepTable[r.step].kind === 'forward');
  const onlyPreflight = forward.every((r) => preflightSteps.has(r.step));
  return onlyPreflight && s.cancelRequested === undefined ? 'rejected' : 'rolledBack';
}

/**
 * The downtime of a completed migration and the budget it exceeded (the request's maxDowntimeMs); undefined when
 * it had no budget, kept it, or has not completed. The budget is in the log's first event, the downtime in its last.
 */
export function overBudget(
  events: readonly MigrationEvent[],
): { downtimeMs: number; budgetMs: number } | undefined {
  const requested = events.find((e) => e.type === 'MigrationRequested');
  const end = events.findLast((e) => e.type === 'MigrationCompleted');
  const budgetMs =
    requested?.type === 'MigrationRequested' ? requested.data.request.maxDowntimeMs : undefined;
  const downtimeMs = end?.type === 'MigrationCompleted' ? end.data.stats.downtimeMs : undefined;
  if (budgetMs === undefined || downtimeMs === undefined || downtimeMs <= budgetMs) return undefined;
  return { downtimeMs, budgetMs };
}

/** "downtime 24.50 s exceeded the budget of 0.50 s (--max-downtime-ms 500) by 24.00 s": the words of every command. */
export function overBudgetWords(over: { downtimeMs: number; budgetMs: number }): string {
  return `downtime ${seconds(over.downtimeMs)} exceeded the budget of ${seconds(over.budgetMs)} (--max-downtime-ms ${over.budgetMs}) by ${seconds(over.downtimeMs - over.budgetMs)}`;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
