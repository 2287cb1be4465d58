import { DeliverPolicy, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { limits, migrationOfEventSubject, streams, subjects } from './conventions.ts';
import { headersOf } from './raw-headers.ts';
import { mayBeSeal, pendingAtStart, sealQueue } from './replay.ts';
import { retryTransient } from './retry.ts';
import type { EventJudge, RawEvent, SealMessage } from './trust/event-judge.ts';
import type { StoredEvent } from './event-log.ts';

export type ReplaySealsDeps = {
  js: JetStreamClient;
  jsm: () => Promise<JetStreamManager>;
  judge: EventJudge;
  /** Read and judge one migration's whole log, up to `lastSeq`. */
  readWhole(migrationId: string, lastSeq: number): Promise<StoredEvent[]>;
  /** Replay the whole stream (EventLog.replay), keeping only these subjects. */
  replayOnly(subjects: ReadonlySet<string>): AsyncIterable<StoredEvent[]>;
};

/** The stream as one stream info shows it: each subject's message count, and its first sequence. */
export type StreamNow = { counts: Map<string, number>; firstSeq: number };

/**
 * EventLog.replaySeals: the stream read as its last message per subject (one consumer, DeliverPolicy.LastPerSubject,
 * to the end as the server counts it when the consumer is made), and once, after the consumer is made, every
 * subject's message count and the stream's first sequence. A last message that is a seal is checked on libuv's
 * thread pool while the read goes on (`limits.replaySealsInFlight` at once) and handed on alone when it stands for
 * its log (EventJudge.sealAlone). Every other log is read and judged whole: one by one when they are few
 * (`limits.replaySealsReadEachMax`), else in one replay of the stream that keeps only theirs (which hands a log on as
 * EventLog.replay does: a sealed log with more after its seal in two batches). Each migration's events come in its
 * log's order, and a batch is never empty.
 *
 * An ordered consumer that nats.js makes again (a gap, missed heartbeats) starts after the last message it delivered
 * with every message, not the last of each subject: then every log not handed on yet is replayed whole.
 */
export async function* replaySeals(
  deps: ReplaySealsDeps,
  snapshot: (seal: SealMessage) => boolean,
  signal: AbortSignal | undefined,
): AsyncIterable<StoredEvent[]> {
  const consumer = await retryTransient(() =>
    deps.js.consumers.get(streams.events, {
      filter_subjects: subjects.eventsAll,
      deliver_policy: DeliverPolicy.LastPerSubject,
    }),
  );
  let remaining = await pendingAtStart(consumer);
  if (remaining === 0) return;
  const stream = await streamNow(await deps.jsm());
  /** Subjects met, and the logs to read whole: subject → its last message's sequence. */
  const met = new Set<string>();
  const unread = new Map<string, number>();
  const seals = sealQueue<{ seal: SealMessage; stored: number }>(deps.judge, signal, (s, checked) => {
    const stored = { stored: s.stored, firstSeq: stream.firstSeq };
    const alone = deps.judge.sealAlone(s.seal, stored, snapshot, checked);
    if (alone) return [[alone]];
    unread.set(s.seal.raw.subject, s.seal.raw.seq);
    return [];
  });

  const iter = await consumer.consume({
    expires: limits.pullExpiresMs,
    max_messages: limits.replayPullMessages,
  });
  let remade = false;
  void (async () => {
    for await (const s of iter.status())
      if (s.type === 'reset') {
        remade = true;
        void iter.close();
      }
  })().catch(() => {}); // a status stream that fails leaves the read as it is: its end is checked by count
  const stop = () => void iter.close();
  if (signal?.aborted) stop();
  else signal?.addEventListener('abort', stop, { once: true });
  try {
    for await (const msg of iter) {
      if (remade) break;
      // A subject met again: a message stored since the consumer was made (the read is of the stream as it was).
      if (!met.has(msg.subject)) {
        met.add(msg.subject);
        const raw: RawEvent = { subject: msg.subject, seq: msg.seq, data: msg.data, headers: headersOf(msg) };
        const event = mayBeSeal(raw.data) ? deps.judge.eventOf({ raw }) : undefined;
        if (event?.type === 'MigrationSealed' && raw.subject === subjects.events(event.migrationId)) {
          seals.push({ seal: { raw, event }, stored: stream.counts.get(raw.subject) ?? 0 });
          yield* seals.judgedUntil(limits.replaySealsInFlight);
        } else unread.set(raw.subject, raw.seq);
      }
      if (--remaining <= 0 || msg.info.pending === 0) break;
    }
  } finally {
    signal?.removeEventListener('abort', stop);
    await iter.close();
  }
  if (signal?.aborted) return;
  if (remade) notHandedOn(stream, met, unread, seals.drop());
  else yield* seals.judgedUntil(0);
  yield* readUnread(deps, unread, signal);
}

/**
 * After the consumer was made again: every log not handed on yet is to be read whole (in `unread`, its last sequence
 * not known): those the stream info counted, less those whose seal was taken; the seals not judged yet are let go.
 */
export function notHandedOn(
  stream: StreamNow,
  met: ReadonlySet<string>,
  unread: Map<string, number>,
  dropped: readonly { seal: SealMessage }[],
): void {
  for (const { seal } of dropped) unread.set(seal.raw.subject, Infinity);
  const taken = new Set([...met].filter((s) => !unread.has(s)));
  for (const s of stream.counts.keys()) if (!taken.has(s) && !unread.has(s)) unread.set(s, Infinity);
}

/**
 * The logs no seal stood for, read and judged whole (subject → the sequence of its last message; Infinity: not known,
 * so read in the replay of the stream). A subject that is no migration's holds no event any reader believes
 * (EventJudge: an event on its own subject only), so it is not read.
 */
async function* readUnread(
  deps: ReplaySealsDeps,
  unread: ReadonlyMap<string, number>,
  signal: AbortSignal | undefined,
): AsyncIterable<StoredEvent[]> {
  const logs = [...unread].flatMap(([subject, lastSeq]) => {
    const migrationId = migrationOfEventSubject(subject);
    return migrationId ? [{ subject, migrationId, lastSeq }] : [];
  });
  if (logs.length > limits.replaySealsReadEachMax || logs.some((l) => l.lastSeq === Infinity)) {
    if (logs.length && !signal?.aborted) yield* deps.replayOnly(new Set(logs.map((l) => l.subject)));
    return;
  }
  for (let i = 0; i < logs.length; i += limits.replaySealsReadsAtOnce) {
    const reads = logs
      .slice(i, i + limits.replaySealsReadsAtOnce)
      .map((l) => deps.readWhole(l.migrationId, l.lastSeq));
    for (const events of await Promise.all(reads)) {
      if (signal?.aborted) return;
      if (events.length) yield events;
    }
  }
}

/** Each subject's message count and the stream's first sequence, from one stream info (paged by nats.js). */
async function streamNow(jsm: JetStreamManager): Promise<StreamNow> {
  const info = await retryTransient(() =>
    jsm.streams.info(streams.events, { subjects_filter: subjects.eventsAll }),
  );
  return { counts: new Map(Object.entries(info.state.subjects ?? {})), firstSeq: info.state.first_seq };
}
