import type { NatsConnection } from '@nats-io/transport-node';
import { DeliverPolicy, jetstream } from '@nats-io/jetstream';
import {
  createEventLog,
  extendChain,
  newChain,
  sealDataOf,
  streams,
  subjects,
  type EventLog,
  type RawEvent,
  type SealData,
  type StoredEvent,
  type Trust,
} from '@haul/bus';
import { createValidators, type MigrationEvent } from '@haul/schemas';

/** How a finished migration's log is sealed (packages/bus/src/trust/seal.ts), as a test checks it. */
export type SealCheck = {
  /** What the coordinator's MigrationSealed says. */
  seal: SealData;
  /** The seal computed over the messages before it that `reader` believes. */
  believed: SealData;
  /** The seal computed over every message before it, believed or not. */
  all: SealData;
  /** Signature checks a fresh reader's replay of the whole log made for this migration's messages. */
  replayChecks: number;
  /** That replay's events of this migration, and a read's (each message checked), the seal included. */
  replayed: StoredEvent[];
  read: StoredEvent[];
};

/**
 * Wait for the coordinator's seal of `migrationId` (following its log; `timeoutMs` turns a missing seal into a
 * failure), then check it against the raw messages of its subject and replay the whole log with a fresh reader of
 * `reader`'s registry, counting the signatures that reader checks for this migration.
 */
export async function checkSeal(
  nc: NatsConnection,
  eventLog: EventLog,
  reader: Trust,
  migrationId: string,
  timeoutMs = 60_000,
): Promise<SealCheck> {
  const seal = await awaitSeal(eventLog, migrationId, timeoutMs);
  const raws = await rawMessages(nc, migrationId, seal.event.data.upToSeq);
  const read = (await eventLog.read(migrationId)).events;
  const believedSeqs = new Set(read.map((e) => e.seq));
  const chainOf = (rs: RawEvent[]) => {
    const c = newChain();
    for (const r of rs) extendChain(c, r.seq, r.headers, r.data);
    return sealDataOf(c);
  };

  const subject = subjects.events(migrationId);
  let replayChecks = 0;
  const counting: Trust = Object.create(reader) as Trust;
  Object.defineProperty(counting, 'verify', {
    value: (...a: Parameters<Trust['verify']>) => {
      if (a[0] === subject) replayChecks++;
      return reader.verify(...a);
    },
  });
  const replayed: StoredEvent[] = [];
  for await (const batch of createEventLog(nc, createValidators(), counting).replay())
    replayed.push(...batch.filter((e) => e.event.migrationId === migrationId));
  return {
    seal: seal.event.data,
    believed: chainOf(raws.filter((r) => believedSeqs.has(r.seq))),
    all: chainOf(raws),
    replayChecks,
    replayed,
    read,
  };
}

/** The coordinator's seal of a migration's log, once it is in the log (following it; a failure after `timeoutMs`). */
export async function awaitSeal(
  eventLog: EventLog,
  migrationId: string,
  timeoutMs = 60_000,
): Promise<StoredEvent & { event: Extract<MigrationEvent, { type: 'MigrationSealed' }> }> {
  for await (const s of eventLog.follow({ migrationId, signal: AbortSignal.timeout(timeoutMs) }))
    if (s.event.type === 'MigrationSealed') return { seq: s.seq, event: s.event };
  throw new Error(`${migrationId}: no seal within ${timeoutMs} ms`);
}

/** The raw messages of one migration's subject up to `lastSeq`, with their headers, through one ordered consumer. */
async function rawMessages(nc: NatsConnection, migrationId: string, lastSeq: number): Promise<RawEvent[]> {
  const consumer = await jetstream(nc).consumers.get(streams.events, {
    filter_subjects: subjects.events(migrationId),
    deliver_policy: DeliverPolicy.All,
  });
  const iter = await consumer.consume();
  const out: RawEvent[] = [];
  try {
    for await (const m of iter) {
      if (m.seq > lastSeq) break;
      out.push({ subject: m.subject, seq: m.seq, data: m.data, headers: m.headers });
      if (m.seq === lastSeq) break;
    }
  } finally {
    await iter.close();
  }
  return out;
}
