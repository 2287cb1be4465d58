import type { NatsConnection } from '@nats-io/transport-node';
import {
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
} from '@nats-io/jetstream';
import type { MigrationEvent, Validators } from '@haul/schemas';
import { limits, streams, subjects } from './conventions.ts';
import { BusError, BusUnavailableError, ConcurrencyConflictError, isWrongLastSequence } from './errors.ts';
import { retryTransient } from './retry.ts';

/** An event as stored in the log, with its stream sequence (the value compare-and-set appends expect). */
export type StoredEvent = { seq: number; event: MigrationEvent };

export type AppendOptions = {
  /** Compare-and-set: the append succeeds only if the migration's last event has this stream sequence (0 = none). */
  expectedLastSeq?: number;
  /** Deduplication id; defaults to the event id. A retried append with the same id is not stored twice. */
  msgId?: string;
};

export type EventLog = {
  append(event: MigrationEvent, opts?: AppendOptions): Promise<{ seq: number; duplicate: boolean }>;
  /**
   * All events of one migration, in order, and the stream sequence of the last one (0 if none). With `afterSeq`,
   * only those after it: the tail a reader that has folded the log up to that sequence is missing (a message get
   * alone when there is none).
   */
  read(migrationId: string, opts?: ReadOptions): Promise<{ events: StoredEvent[]; lastSeq: number }>;
  /** Follow the log: all migrations (or one), from a stream sequence or a time, live. */
  follow(opts: FollowOptions): AsyncIterable<StoredEvent>;
};

export type ReadOptions = { afterSeq?: number };

export type FollowOptions = {
  migrationId?: string;
  fromSeq?: number;
  since?: Date;
  signal?: AbortSignal;
  /** Stop at the end of the log as it is when the read starts, instead of following it live. */
  toEnd?: boolean;
};

const enc = new TextEncoder();
const msgIdOf = (event: MigrationEvent, opts: AppendOptions): string => opts.msgId ?? event.eventId;
const dec = new TextDecoder();

export function createEventLog(
  nc: NatsConnection,
  validators: Validators,
  onInvalid: (seq: number, message: string) => void = () => {},
): EventLog {
  const js: JetStreamClient = jetstream(nc);
  let jsmP: Promise<JetStreamManager> | undefined;
  // Created on first use, through the election retries (it asks the JetStream API for account info); a failed
  // attempt is not cached, so the next read tries again.
  const jsm = () =>
    (jsmP ??= retryTransient(() => jetstreamManager(nc)).catch((err: unknown) => {
      jsmP = undefined;
      throw err;
    }));

  const decode = (seq: number, data: Uint8Array): StoredEvent | undefined => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(dec.decode(data));
    } catch {
      onInvalid(seq, 'not JSON');
      return undefined;
    }
    const v = validators.validate<MigrationEvent>('event', parsed);
    if (!v.ok) {
      onInvalid(seq, v.error.message);
      return undefined;
    }
    return { seq, event: v.value };
  };

  async function readUpTo(subject: string, lastSeq: number, afterSeq: number): Promise<StoredEvent[]> {
    const events: StoredEvent[] = [];
    const consumer = await js.consumers.get(
      streams.events,
      afterSeq > 0
        ? {
            filter_subjects: subject,
            deliver_policy: DeliverPolicy.StartSequence,
            opt_start_seq: afterSeq + 1,
          }
        : { filter_subjects: subject, deliver_policy: DeliverPolicy.All },
    );
    const iter = await consumer.consume({ expires: limits.pullExpiresMs });
    let idle = false;
    let watchdog = setTimeout(() => ((idle = true), void iter.close()), limits.readIdleMs);
    try {
      for await (const msg of iter) {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => ((idle = true), void iter.close()), limits.readIdleMs);
        const e = decode(msg.seq, msg.data);
        if (e) events.push(e);
        if (msg.seq >= lastSeq) return events;
      }
    } finally {
      clearTimeout(watchdog);
      await iter.close();
    }
    throw new BusUnavailableError(
      `${subject}: ${idle ? `no message for ${limits.readIdleMs} ms` : 'the read ended'} before sequence ${lastSeq}`,
    );
  }

  return {
    async append(event, opts = {}) {
      const v = validators.validate<MigrationEvent>('event', event);
      if (!v.ok) throw new BusError('HAUL_INVALID_EVENT', v.error.message, false);
      const subject = subjects.events(event.migrationId);
      const pubOpts: Parameters<JetStreamClient['publish']>[2] = {
        msgID: msgIdOf(event, opts),
        timeout: limits.publishTimeoutMs,
      };
      if (opts.expectedLastSeq !== undefined) pubOpts.expect = { lastSubjectSequence: opts.expectedLastSeq };
      try {
        const ack = await retryTransient(async () => {
          const a = await js.publish(subject, enc.encode(JSON.stringify(event)), pubOpts);
          // A clustered 2.9 server answers a retry whose first publish is still being proposed (or was dropped at
          // a leader change) as a duplicate with sequence 0: not stored yet, so not an append. Ask again.
          if (a.duplicate && a.seq === 0)
            throw new BusUnavailableError(`${subject}: ${msgIdOf(event, opts)} is not stored yet`);
          return a;
        });
        return { seq: ack.seq, duplicate: ack.duplicate };
      } catch (err) {
        if (isWrongLastSequence(err))
          throw new ConcurrencyConflictError(subject, opts.expectedLastSeq ?? -1, { cause: err });
        throw err;
      }
    },

    async read(migrationId, opts = {}) {
      const subject = subjects.events(migrationId);
      const m = await jsm();
      // null when the subject has no message (the client maps the API's "no message found" to null); any other
      // failure, a missing stream included, is an error and never an empty log.
      const last = await retryTransient(() =>
        m.streams.getMessage(streams.events, { last_by_subj: subject }),
      );
      if (!last) return { events: [], lastSeq: 0 };
      const afterSeq = opts.afterSeq ?? 0;
      if (last.seq <= afterSeq) return { events: [], lastSeq: last.seq };
      // An ordered consumer up to the last sequence. A read that stops receiving (a server of the cluster died
      // under it) is given up after readIdleMs and tried again, never left hanging with its migration behind it.
      const events = await retryTransient(() => readUpTo(subject, last.seq, afterSeq));
      return { events, lastSeq: last.seq };
    },

    async *follow(opts) {
      const filter = opts.migrationId ? subjects.events(opts.migrationId) : subjects.eventsAll;
      const consumerOpts: Parameters<JetStreamClient['consumers']['get']>[1] = { filter_subjects: filter };
      if (opts.fromSeq !== undefined) {
        consumerOpts.deliver_policy = DeliverPolicy.StartSequence;
        consumerOpts.opt_start_seq = opts.fromSeq;
      } else if (opts.since) {
        consumerOpts.deliver_policy = DeliverPolicy.StartTime;
        consumerOpts.opt_start_time = opts.since.toISOString();
      } else {
        consumerOpts.deliver_policy = DeliverPolicy.All;
      }
      const consumer = await retryTransient(() => js.consumers.get(streams.events, consumerOpts));
      // The server counts what the consumer has to deliver when it is made: the end of the log at that moment.
      let remaining = opts.toEnd ? (await consumer.info(true)).num_pending : Infinity;
      if (remaining === 0) return;
      const iter = await consumer.consume({ expires: limits.pullExpiresMs });
      const stop = () => void iter.close();
      opts.signal?.addEventListener('abort', stop, { once: true });
      try {
        for await (const msg of iter) {
          const e = decode(msg.seq, msg.data);
          if (e) yield e;
          // Counted on raw messages, so a message that is not an event still counts towards the end.
          if (--remaining <= 0 || (opts.toEnd && msg.info.pending === 0)) return;
        }
      } finally {
        opts.signal?.removeEventListener('abort', stop);
        await iter.close();
      }
    },
  };
}
