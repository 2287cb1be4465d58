import type { MigrationEvent } from '@haul/schemas';
import type { DecideMeta } from './decide.ts';
import type { MigrationState } from './state.ts';

/** An event the core decides, in the common envelope; its id defaults to its position in the log (deterministic). */
export function envelope<T extends MigrationEvent['type']>(
  s: MigrationState,
  meta: DecideMeta,
  type: T,
  data: Extract<MigrationEvent, { type: T }>['data'],
  eventId?: string,
): MigrationEvent {
  const migrationId = s.migrationId ?? '';
  return {
    eventId: eventId ?? `${migrationId}:${s.events}:${type}`,
    migrationId,
    type,
    actor: meta.actor,
    time: meta.now,
    schemaVersion: 1,
    data,
  } as MigrationEvent;
}
