import {
  ConcurrencyConflictError,
  type EventLog,
  type Logger,
  type StoredEvent,
  type Trust,
} from '@haul/bus';
import { statusSnapshot } from '@haul/domain';
import type { MigrationEvent, MigrationStatus } from '@haul/schemas';

const sealedAfter: ReadonlySet<MigrationEvent['type']> = new Set([
  'MigrationCompleted',
  'MigrationRolledBack',
]);

/**
 * The coordinator's seals (packages/bus/src/trust/seal.ts): when a migration's terminal event comes back through the
 * consumer, and the chain of what this coordinator believed of its log ends there, MigrationSealed is appended right
 * after it (compare-and-set on the terminal event's sequence: never after a later message, never twice).
 *
 * A seal is a saving for the log's readers, not a fact of the migration: one that is not written (another message
 * came first, a chain broken by a redelivery, the bus unavailable, a crash before it) is logged and forgotten; the
 * readers then check each message's signature, as they would without seals.
 *
 * A seal carries the migration's terminal status as this coordinator projected it (`terminalStatus`: the process
 * manager's, when it folded the same number of events up to that same terminal event), so that a reader of many
 * finished migrations takes their statuses from the seals instead of decoding and folding their events. Without one (this process did
 * not project it: it restarted, or another coordinator ended the migration), the seal carries no status.
 */
export function createSealer(
  eventLog: EventLog,
  trust: Trust,
  node: string,
  log: Logger,
  terminalStatus: (mid: string, seq: number, events: number) => MigrationStatus | undefined,
) {
  return async function seal(terminal: StoredEvent): Promise<void> {
    const { event } = terminal;
    if (!trust.secure || !sealedAfter.has(event.type)) return;
    const mid = event.migrationId;
    const data = eventLog.sealOf(mid);
    if (data?.upToSeq !== terminal.seq) {
      log.debug(
        { migrationId: mid, chainEnd: data?.upToSeq },
        'not sealed: what this coordinator believed in order does not end at the terminal event',
      );
      return;
    }
    const status = terminalStatus(mid, terminal.seq, data.events);
    const sealEvent: MigrationEvent = {
      eventId: `${mid}:sealed`,
      migrationId: mid,
      type: 'MigrationSealed',
      actor: { service: 'coordinator', node },
      time: new Date().toISOString(),
      causationId: event.eventId,
      schemaVersion: 1,
      data: status ? { ...data, ...statusSnapshot(status) } : data,
    };
    try {
      await eventLog.append(sealEvent, { expectedLastSeq: terminal.seq });
    } catch (err) {
      if (err instanceof ConcurrencyConflictError)
        return log.debug({ migrationId: mid }, 'not sealed: a message follows the terminal event');
      log.warn({ err, migrationId: mid }, 'not sealed: readers will check each message of this log');
    }
  };
}
