import type { NatsConnection } from '@nats-io/transport-node';
import { createValidators, type MigrationEvent, type TransferProgress, type Validators } from '@haul/schemas';
import { watchProgress, type EventLog, type StoredEvent } from '@haul/bus';

type StepEvent = Extract<MigrationEvent, { type: 'StepIntended' | 'StepSucceeded' | 'StepFailed' }>;

/** A predicate for awaitEvent: the intent or outcome `type` of `step`. */
export const stepEvent =
  (type: StepEvent['type'], step: string) =>
  (e: MigrationEvent): boolean =>
    e.type === type && e.data.step === step;

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

let validators: Validators | undefined;

/**
 * Wait until one of the migration's transfers reports (progress bucket) what `pred` accepts, or fail after
 * `timeoutMs` with the reports seen.
 */
export async function awaitProgress(
  nc: NatsConnection,
  migrationId: string,
  pred: (p: TransferProgress) => boolean,
  timeoutMs = 60_000,
): Promise<TransferProgress> {
  validators ??= createValidators();
  const ac = new AbortController();
  const seen: TransferProgress[] = [];
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  try {
    for await (const p of watchProgress(nc, validators, migrationId, ac.signal)) {
      seen.push(p);
      if (pred(p)) return p;
    }
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
  throw new Error(
    `no matching progress report within ${timeoutMs} ms; saw:\n${seen.map((p) => JSON.stringify(p)).join('\n')}`,
  );
}
