import { fold, initialState } from '@haul/domain';
import type { MigrationEvent, StepName } from '@haul/schemas';
import type { ExitName } from './exit-codes.ts';

const preflightSteps: ReadonlySet<StepName> = new Set(['preflightSource', 'preflightTarget']);

/**
 * How a finished migration ended, as an exit outcome: completed; rejected when its rollback was caused by a failed
 * preflight (the CT was never touched: the request was refused, only later than admission); else rolled back.
 */
export function outcomeOf(events: readonly MigrationEvent[]): ExitName | undefined {
  const s = fold(events, initialState());
  if (s.terminal === 'completed') return 'completed';
  if (s.terminal !== 'rolled-back') return undefined;
  const refused = Object.values(s.steps).some((r) => r.status === 'failed' && preflightSteps.has(r.step));
  return refused && !s.cancelRequested ? 'rejected' : 'rolledBack';
}
