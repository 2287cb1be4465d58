import type { MigrationEvent } from '@haul/schemas';
import type { EventLog, StoredEvent } from '@haul/bus';

/**
 * Wait until the migration's log holds an event matching `pred` (from the start of the log, then live), or fail
 * after `timeoutMs` with the events seen — tests await events, never sleep.
 */
export async function awaitEvent(
  log: EventLog,
  migrationId: string,
  pred: (e: MigrationEvent) => boolean,
  timeoutMs = 60_000,
): Promise<MigrationEvent> {
  const ac = new AbortController();
  const seen: StoredEvent[] = [];
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  try {
    for await (const s of log.follow({ migrationId, signal: ac.signal })) {
      seen.push(s);
      if (pred(s.event)) return s.event;
    }
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
  throw new Error(
    `no matching event within ${timeoutMs} ms; saw:\n${seen.map((s) => `${s.seq} ${s.event.type} ${JSON.stringify(s.event.data).slice(0, 160)}`).join('\n')}`,
  );
}

export const outcomeOf = (commandId: string) => (e: MigrationEvent) =>
  (e.type === 'StepSucceeded' || e.type === 'StepFailed') && e.data.commandId === commandId;
