import { DeliverPolicy, type Consumer, type JetStreamClient } from '@nats-io/jetstream';
import type { MigrationEvent } from '@haul/schemas';
import { limits, streams, subjects } from './conventions.ts';
import { headersOf } from './raw-headers.ts';
import { retryTransient } from './retry.ts';
import type { EventJudge, HeldMessage, RawEvent, SealMessage } from './trust/event-judge.ts';
import type { TrustVerdict } from './trust/trust.ts';
import type { ReplayOptions, StoredEvent } from './event-log.ts';

/**
 * What every MigrationSealed's bytes hold (the type's name as a JSON string) within their first `sealMarkWithin`
 * bytes: the coordinator writes `type` third, after the event's and the migration's ids (sealer.ts). Only a message
 * that holds it there is decoded as it arrives, to find the seals; the others wait for their migration's seal
 * undecoded. A message that holds it and is no seal is only decoded early; one that is a seal without holding it there
 * (JSON's escapes, another order of keys: not how the coordinator writes) is taken for an ordinary message, so its log
 * is judged message by message: never more believed, only slower.
 */
const sealMark = Buffer.from(`"${'MigrationSealed' satisfies MigrationEvent['type']}"`);
const sealMarkWithin = 512;
export const mayBeSeal = (data: Uint8Array): boolean =>
  Buffer.from(data.buffer, data.byteOffset, Math.min(data.byteLength, sealMarkWithin)).includes(sealMark);

/** A batch to hand on, if it holds any event (a migration whose every message was refused hands on nothing). */
const nonEmpty = (batch: StoredEvent[]): StoredEvent[][] => (batch.length ? [batch] : []);

/**
 * EventLog.replay: the whole stream through one consumer, to its end as the server counts it when the consumer is
 * made. Each migration's messages are held until its seal (trust/seal.ts) and judged with it: on the seal's one
 * signature when it vouches for exactly them, else one by one. What no seal closes is judged one by one when the
 * read ends, or, oldest migration first, when more than `maxHeld` are held. A batch is never empty. `snapshot`: see
 * EventJudge.sealed (a log whose seal's snapshot it accepts is handed on as its seal alone).
 *
 * A seal's signature is checked on libuv's thread pool while the read goes on (EventJudge.checkSeal), at most
 * `limits.replaySealsInFlight` at once. The logs are judged and handed on in the order their seals came, every
 * pending one before a log judged one by one: a migration's messages are judged, and its batches come, in its log's
 * order.
 */
/**
 * How many messages a read's consumer has to deliver, as the server counted them when it made the consumer: the end
 * of what the read covers. Asked once per read, and retried like every other JetStream call of a read (a timeout here
 * under load failed the whole replay).
 */
export async function pendingAtStart(consumer: Consumer): Promise<number> {
  return (await retryTransient(() => consumer.info(true))).num_pending;
}

export async function* replayLog(
  js: JetStreamClient,
  judge: EventJudge,
  readBack: (mid: string, afterSeq: number) => Promise<void>,
  { signal, maxHeld = limits.replayHeldMessages, snapshot }: ReplayOptions,
  /** Only these subjects' logs (the others' messages are dropped as they come); all when undefined. */
  only?: ReadonlySet<string>,
): AsyncIterable<StoredEvent[]> {
  const consumer = await retryTransient(() =>
    js.consumers.get(streams.events, {
      filter_subjects: subjects.eventsAll,
      deliver_policy: DeliverPolicy.All,
    }),
  );
  let remaining = await pendingAtStart(consumer);
  if (remaining === 0) return;
  const held = new Map<string, HeldMessage[]>();
  let holding = 0;
  const take = (subject: string): HeldMessage[] => {
    const h = held.get(subject) ?? [];
    held.delete(subject);
    holding -= h.length;
    return h;
  };
  const seals = sealQueue<{ messages: HeldMessage[]; seal: SealMessage }>(judge, signal, (l, checked) =>
    nonEmpty(judge.sealed(l.messages, l.seal, snapshot, checked)),
  );
  async function oneByOne(h: readonly HeldMessage[]): Promise<StoredEvent[]> {
    const out: StoredEvent[] = [];
    for (const m of h) {
      const event = judge.eventOf(m);
      const e = event && (await judge.single(m.raw, readBack, event));
      if (e) out.push(e);
    }
    return out;
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
      if (!only || only.has(msg.subject)) {
        const raw: RawEvent = { subject: msg.subject, seq: msg.seq, data: msg.data, headers: headersOf(msg) };
        const m: HeldMessage = { raw };
        const event = mayBeSeal(raw.data) ? judge.eventOf(m) : undefined;
        if (event?.type === 'MigrationSealed' && raw.subject === subjects.events(event.migrationId)) {
          seals.push({ messages: take(raw.subject), seal: { raw, event } });
          yield* seals.judgedUntil(limits.replaySealsInFlight);
        } else {
          const h = held.get(raw.subject);
          if (h) h.push(m);
          else held.set(raw.subject, [m]);
          holding++;
          while (holding > maxHeld) {
            yield* seals.judgedUntil(0);
            yield* nonEmpty(await oneByOne(take(held.keys().next().value!)));
          }
        }
      }
      // Counted on raw messages, so a message that is not an event still counts towards the end.
      if (--remaining <= 0 || msg.info.pending === 0) break;
    }
  } finally {
    signal?.removeEventListener('abort', stop);
    await iter.close();
  }
  if (signal?.aborted) return;
  yield* seals.judgedUntil(0);
  for (const subject of [...held.keys()]) yield* nonEmpty(await oneByOne(take(subject)));
}

/**
 * Seals met whose signature is being checked, in the order they came, each with what its judging needs. Only the
 * checks run at once: each is judged (`judge`, with its verdict) when its turn comes, in order (a seal's log teaches
 * the facts the next log of its migration is judged with), and none once the replay has been stopped.
 */
export function sealQueue<T extends { seal: SealMessage }>(
  judge: EventJudge,
  signal: AbortSignal | undefined,
  judgeOne: (item: T, checked: TrustVerdict) => StoredEvent[][],
) {
  const pending: { item: T; verdict: Promise<TrustVerdict> }[] = [];
  return {
    /** Start checking the item's seal; it is judged in its turn. */
    push(item: T): void {
      const verdict = judge.checkSeal(item.seal);
      verdict.catch(() => {}); // awaited in its turn; a replay stopped first leaves it unheard, not unhandled
      pending.push({ item, verdict });
    },
    /** Judge and hand on the oldest until at most `inFlight` seals are being checked. */
    async *judgedUntil(inFlight: number): AsyncIterable<StoredEvent[]> {
      while (pending.length > inFlight) {
        const { item, verdict } = pending.shift()!;
        const checked = await verdict;
        if (signal?.aborted) return void (pending.length = 0);
        yield* judgeOne(item, checked);
      }
    },
    /** Let go of every item not judged yet, without judging it. */
    drop(): T[] {
      return pending.splice(0).map((p) => p.item);
    },
  };
}
