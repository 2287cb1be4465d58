import { DeliverPolicy, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { limits, migrationOfEventSubject, streams, subjects } from './conventions.ts';
import { headersOf } from './raw-headers.ts';
import { mayBeSeal } from './replay.ts';
import { retryTransient } from './retry.ts';
import type { EventJudge, RawEvent, SealMessage } from './trust/event-judge.ts';
import type { TrustVerdict } from './trust/trust.ts';
import type { StoredEvent } from './event-log.ts';

/** A log no seal stands for: its migration and the sequence of its last message when the read started. */
type Unsealed = { migrationId: string; lastSeq: number };

export type ReplaySealsDeps = {
  js: JetStreamClient;
  jsm: () => Promise<JetStreamManager>;
  judge: EventJudge;
  /** Read and judge one migration's whole log, up to `lastSeq`. */
  readWhole(migrationId: string, lastSeq: number): Promise<StoredEvent[]>;
  /** Replay the whole stream (EventLog.replay), keeping only these subjects. */
  replayOnly(subjects: ReadonlySet<string>): AsyncIterable<StoredEvent[]>;
};

/**
 * EventLog.replaySeals: the stream read as its last message per subject (one consumer, DeliverPolicy.LastPerSubject,
 * to the end as the server counts it when the consumer is made), then, once, every subject's message count (a
 * message stored since only raises a count: it can make a seal not stand for its log, never the other way). A last
 * message that is a seal is checked on libuv's thread pool while the read goes on (`limits.replaySealsInFlight` at
 * once) and handed on alone when it stands for its log (EventJudge.sealAlone). Every other log is read and judged
 * whole: one by one when they are few (`limits.replaySealsReadEachMax`), else in one replay of the stream that keeps
 * only theirs. A batch holds one migration's events, never none; a migration comes once.
 */
export async function* replaySeals(
  deps: ReplaySealsDeps,
  snapshot: (seal: SealMessage) => boolean,
  signal: AbortSignal | undefined,
): AsyncIterable<StoredEvent[]> {
  const { js, judge } = deps;
  const consumer = await retryTransient(() =>
    js.consumers.get(streams.events, {
      filter_subjects: subjects.eventsAll,
      deliver_policy: DeliverPolicy.LastPerSubject,
    }),
  );
  let remaining = (await consumer.info(true)).num_pending;
  if (remaining === 0) return;
  const counts = await subjectCounts(await deps.jsm());
  const unsealed: Unsealed[] = [];
  const pending: { seal: SealMessage; stored: number; verdict: Promise<TrustVerdict> }[] = [];
  async function* judgedUntil(inFlight: number): AsyncIterable<StoredEvent[]> {
    while (pending.length > inFlight) {
      const { seal, stored, verdict } = pending.shift()!;
      const checked = await verdict;
      if (signal?.aborted) return;
      const alone = judge.sealAlone(seal, stored, snapshot, checked);
      if (alone) yield [alone];
      else unsealed.push({ migrationId: seal.event.migrationId, lastSeq: seal.raw.seq });
    }
  }

  const iter = await consumer.consume({
    expires: limits.pullExpiresMs,
    max_messages: limits.replayPullMessages,
  });
  const stop = () => void iter.close();
  if (signal?.aborted) stop();
  else signal?.addEventListener('abort', stop, { once: true });
  try {
    for await (const msg of iter) {
      const raw: RawEvent = { subject: msg.subject, seq: msg.seq, data: msg.data, headers: headersOf(msg) };
      const event = mayBeSeal(raw.data) ? judge.eventOf({ raw }) : undefined;
      if (event?.type === 'MigrationSealed' && raw.subject === subjects.events(event.migrationId)) {
        const verdict = judge.checkSeal({ raw, event });
        verdict.catch(() => {}); // awaited in its turn; a replay stopped first leaves it unheard, not unhandled
        pending.push({ seal: { raw, event }, stored: counts.get(raw.subject) ?? 0, verdict });
        yield* judgedUntil(limits.replaySealsInFlight);
      } else {
        const migrationId = migrationOfEventSubject(raw.subject);
        // A subject that is no migration's holds no event any reader believes (EventJudge: an event on its own subject).
        if (migrationId) unsealed.push({ migrationId, lastSeq: raw.seq });
      }
      if (--remaining <= 0 || msg.info.pending === 0) break;
    }
  } finally {
    signal?.removeEventListener('abort', stop);
    await iter.close();
  }
  if (signal?.aborted) return;
  yield* judgedUntil(0);
  if (signal?.aborted || unsealed.length === 0) return;
  if (unsealed.length > limits.replaySealsReadEachMax) {
    yield* deps.replayOnly(new Set(unsealed.map((u) => subjects.events(u.migrationId))));
    return;
  }
  for (let i = 0; i < unsealed.length && !signal?.aborted; i += limits.replaySealsReadsAtOnce) {
    const reads = unsealed
      .slice(i, i + limits.replaySealsReadsAtOnce)
      .map((u) => deps.readWhole(u.migrationId, u.lastSeq));
    for (const events of await Promise.all(reads)) if (events.length) yield events;
  }
}

/** How many messages each subject of the event stream holds now (one stream info, paged by nats.js). */
async function subjectCounts(jsm: JetStreamManager): Promise<Map<string, number>> {
  const info = await retryTransient(() =>
    jsm.streams.info(streams.events, { subjects_filter: subjects.eventsAll }),
  );
  return new Map(Object.entries(info.state.subjects ?? {}));
}
