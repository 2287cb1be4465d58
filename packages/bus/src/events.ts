import { isTerminalEvent, type Actor, type MigrationEvent } from '@haul/schemas';

export type EventData<T extends MigrationEvent['type']> = Extract<MigrationEvent, { type: T }>['data'];

/** Envelopes for the events one service appends: actor, time and schema version filled in. */
export function eventFactory(actor: Actor) {
  return <T extends MigrationEvent['type']>(
    migrationId: string,
    type: T,
    data: EventData<T>,
    eventId: string,
  ): MigrationEvent =>
    ({
      eventId,
      migrationId,
      type,
      actor,
      time: new Date().toISOString(),
      schemaVersion: 1,
      data,
    }) as MigrationEvent;
}

/** Is the outcome of this command already in the log (a duplicate delivery)? */
export const hasOutcome = (events: readonly MigrationEvent[], commandId: string): boolean =>
  events.some(
    (e) => (e.type === 'StepSucceeded' || e.type === 'StepFailed') && e.data.commandId === commandId,
  );

/**
 * What a migration's log says of one of its commands: its outcome is in it (`done`: a copy delivered again is a
 * duplicate, to skip), the migration ended without it (`ended`: it must not run any more), or neither (`open`).
 */
export function commandFate(events: readonly MigrationEvent[], commandId: string): 'done' | 'ended' | 'open' {
  if (hasOutcome(events, commandId)) return 'done';
  return events.some(isTerminalEvent) ? 'ended' : 'open';
}
