import { DeliverPolicy, type JetStreamClient } from '@nats-io/jetstream';
import type { MigrationEvent } from '@haul/schemas';
import { limits, streams, subjects } from './conventions.ts';
import { retryTransient } from './retry.ts';
import type { EventJudge, RawEvent } from './trust/event-judge.ts';
import type { ReplayOptions, StoredEvent } from './event-log.ts';

type Held = { raw: RawEvent; event: MigrationEvent | undefined };

/** A batch to hand on, if it holds any event (a migration whose every message was refused hands on nothing). */
const nonEmpty = (batch: StoredEvent[]): StoredEvent[][] => (batch.length ? [batch] : []);

/**
 * EventLog.replay: the whole stream through one consumer, to its end as the server counts it when the consumer is
 * made. Each migration's messages are held until its seal (trust/seal.ts) and judged with it: on the seal's one
 * signature when it vouches for exactly them, else one by one. What no seal closes is judged one by one when the
 * read ends, or, oldest migration first, when more than `maxHeld` are held. A batch is never empty.
 */
export async function* replayLog(
  js: JetStreamClient,
  judge: EventJudge,
  readBack: (mid: string, afterSeq: number) => Promise<void>,
  { signal, maxHeld = limits.replayHeldMessages }: ReplayOptions,
): AsyncIterable<StoredEvent[]> {
  const consumer = await retryTransient(() =>
    js.consumers.get(streams.events, {
      filter_subjects: subjects.eventsAll,
      deliver_policy: DeliverPolicy.All,
    }),
  );
  let remaining = (await consumer.info(true)).num_pending;
  if (remaining === 0) return;
  const held = new Map<string, Held[]>();
  let holding = 0;
  const take = (subject: string): Held[] => {
    const h = held.get(subject) ?? [];
    held.delete(subject);
    holding -= h.length;
    return h;
  };
  async function oneByOne(h: readonly Held[]): Promise<StoredEvent[]> {
    const out: StoredEvent[] = [];
    for (const { raw, event } of h) {
      const e = event && (await judge.single(raw, readBack, event));
      if (e) out.push(e);
    }
    return out;
  }

  const iter = await consumer.consume({ expires: limits.pullExpiresMs });
  const stop = () => void iter.close();
  if (signal?.aborted) stop();
  else signal?.addEventListener('abort', stop, { once: true });
  try {
    for await (const msg of iter) {
      const raw: RawEvent = { subject: msg.subject, seq: msg.seq, data: msg.data, headers: msg.headers };
      const event = judge.decode(raw);
      if (event?.type === 'MigrationSealed' && raw.subject === subjects.events(event.migrationId)) {
        yield* nonEmpty(judge.sealed(take(raw.subject), { raw, event }));
      } else {
        const h = held.get(raw.subject);
        if (h) h.push({ raw, event });
        else held.set(raw.subject, [{ raw, event }]);
        holding++;
        while (holding > maxHeld) yield* nonEmpty(await oneByOne(take(held.keys().next().value!)));
      }
      // Counted on raw messages, so a message that is not an event still counts towards the end.
      if (--remaining <= 0 || msg.info.pending === 0) break;
    }
  } finally {
    signal?.removeEventListener('abort', stop);
    await iter.close();
  }
  if (signal?.aborted) return;
  for (const subject of [...held.keys()]) yield* nonEmpty(await oneByOne(take(subject)));
}
