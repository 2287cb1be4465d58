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
import { fold, initialState, projectStatus, sealedStatus } from '@haul/domain';
import { createValidators, type MigrationEvent, type MigrationStatus } from '@haul/schemas';

/**
 * The last event of a migration's log besides the coordinator's seal. After the terminal event only the seal may
 * come (it changes nothing of the migration), so for a finished migration this is its terminal event; anything else
 * (a late step outcome, after the seal or not) is a broken log.
 */
export function lastBesidesSeal<T extends { type: string }>(events: readonly T[]): T | undefined {
  return events.filter((e) => e.type !== 'MigrationSealed').at(-1);
}

/** How a finished migration's log is sealed (packages/bus/src/trust/seal.ts), as a test checks it. */
export type SealCheck = {
  /** What the coordinator's MigrationSealed says of the chain. */
  seal: SealData;
  /** The status snapshot it carries, as a reader takes it (undefined: none, or not one this reader can use). */
  snapshot: MigrationStatus | undefined;
  /** The status the believed events before the seal fold to, projected at the seal. */
  folded: MigrationStatus | undefined;
  /** A replay's batches of this migration when it takes statuses from snapshots (EventLog.replay `snapshot`). */
  replayedWithSnapshots: StoredEvent[][];
  /** The same from each log's last message where a seal stands for its log unread (EventLog.replaySeals). */
  replayedFromSeals: StoredEvent[][];
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
  // Every signature check of this migration's messages, on the caller's thread or off it (a replay checks seals off it).
  for (const name of ['verify', 'verifyAsync'] as const)
    Object.defineProperty(counting, name, {
      value: (...a: Parameters<Trust['verify']>) => {
        if (a[0] === subject) replayChecks++;
        return reader[name](...a);
      },
    });
  const replayed: StoredEvent[] = [];
  for await (const batch of createEventLog(nc, createValidators(), counting).replay())
    replayed.push(...batch.filter((e) => e.event.migrationId === migrationId));
  const replayedWithSnapshots: StoredEvent[][] = [];
  const snapshot = ({ raw, event }: { raw: RawEvent; event: typeof seal.event }) =>
    !!sealedStatus(event, raw.seq);
  for await (const batch of createEventLog(nc, createValidators(), reader).replay({ snapshot }))
    if (batch[0]!.event.migrationId === migrationId) replayedWithSnapshots.push(batch);
  const replayedFromSeals: StoredEvent[][] = [];
  for await (const batch of createEventLog(nc, createValidators(), reader).replaySeals({ snapshot }))
    if (batch[0]!.event.migrationId === migrationId) replayedFromSeals.push(batch);
  // What it says of the chain: its data but for the status snapshot.
  const { status: _status, statusVersion: _version, ...chainData } = seal.event.data;
  const before = read.filter((e) => e.seq < seal.seq);
  return {
    seal: chainData,
    snapshot: sealedStatus(seal.event, seal.seq),
    folded: projectStatus(
      fold(
        before.map((e) => e.event),
        initialState(),
      ),
      seal.seq,
    ),
    replayedWithSnapshots,
    replayedFromSeals,
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
