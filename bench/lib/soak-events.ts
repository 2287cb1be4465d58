import { setTimeout as delay } from 'node:timers/promises';
import type { NatsConnection } from '@nats-io/transport-node';
import { DeliverPolicy, jetstream } from '@nats-io/jetstream';
import { retryTransient, streams, subjects } from '@haul/bus';

/** One message of HAUL_EVENTS as the soak saw it: where it is in the stream and which event it is. */
export type Seen = { seq: number; migrationId: string; eventId: string; type: string };

const terminalTypes = new Set(['MigrationCompleted', 'MigrationRolledBack']);
export const isTerminal = (s: Seen): boolean => terminalTypes.has(s.type);

const dec = new TextDecoder();
const eventsPrefix = subjects.eventsAll.slice(0, -1);

/** The identity of a stored message (an undecodable one is still a message that may be lost). */
export function identify(seq: number, subject: string, data: Uint8Array): Seen {
  const migrationId = subject.startsWith(eventsPrefix) ? subject.slice(eventsPrefix.length) : subject;
  try {
    const e = JSON.parse(dec.decode(data)) as { eventId?: unknown; type?: unknown };
    const str = (v: unknown) => (typeof v === 'string' ? v : '?');
    return { seq, migrationId, eventId: str(e.eventId), type: str(e.type) };
  } catch {
    return { seq, migrationId, eventId: `(not JSON at ${seq})`, type: '?' };
  }
}

/**
 * Each pull of the soak's readers lasts this long, so the server's idle heartbeats come every 2.5 s and a consumer
 * lost with a killed server is noticed (two missed heartbeats) and recreated within seconds, instead of the
 * client's default 30 s pulls (which left the follower deaf for over a minute after a nats-server kill).
 */
const pullExpiresMs = 5_000;

/**
 * Heartbeats missed in a row after which the reader drops its consumer and throws, so the caller makes a new one;
 * a reconnection of the client does the same at once. The client resets an ordered consumer only when the server
 * says it is gone; when the server that held it (an ordered consumer is R1, in memory) was killed, its info request
 * times out instead and the client asks again forever, with its heartbeat monitor off after a disconnection: the
 * tap stayed deaf until that server came back (seen in CI, 60 s after a leader's kill -9).
 */
const missedHeartbeatsToGiveUp = 4;

export class ConsumerLostError extends Error {
  constructor(why: string) {
    super(`the follower's consumer is lost (${why}); making a new one`);
    this.name = 'ConsumerLostError';
  }
}

/**
 * Every message of the stream (or of one migration's subject) from `fromSeq`, through an ordered consumer: in
 * stream order, recreated by the client at the right sequence after a server loss. Ends when `signal` aborts, or
 * after the message with sequence `untilSeq`.
 */
export async function* readStream(
  nc: NatsConnection,
  o: { fromSeq: number; untilSeq?: number; migrationId?: string; signal?: AbortSignal },
): AsyncGenerator<Seen> {
  const js = jetstream(nc);
  const consumer = await retryTransient(() =>
    js.consumers.get(streams.events, {
      filter_subjects: o.migrationId ? subjects.events(o.migrationId) : subjects.eventsAll,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: Math.max(1, o.fromSeq),
    }),
  );
  const iter = await consumer.consume({ expires: pullExpiresMs });
  const stop = () => void iter.close();
  o.signal?.addEventListener('abort', stop, { once: true });
  let lost: ConsumerLostError | undefined;
  const drop = (why: string) => {
    lost ??= new ConsumerLostError(why);
    void iter.close();
  };
  void (async () => {
    for await (const s of iter.status())
      if (s.type === 'heartbeats_missed' && s.count >= missedHeartbeatsToGiveUp)
        return drop(`${s.count} heartbeats missed`);
  })();
  // The client's status iterator is a QueuedIterator: stop() ends it (typed only as an AsyncIterable).
  const connection = nc.status() as AsyncIterable<{ type: string }> & { stop?: () => void };
  void (async () => {
    for await (const s of connection) if (s.type === 'reconnect') return drop('the client reconnected');
  })();
  try {
    for await (const m of iter) {
      yield identify(m.seq, m.subject, m.data);
      if (o.untilSeq !== undefined && m.seq >= o.untilSeq) return;
    }
    if (lost) throw lost;
  } finally {
    connection.stop?.();
    o.signal?.removeEventListener('abort', stop);
    await iter.close();
  }
}

export type EventTap = {
  /** Every message seen during the run, by stream sequence. */
  seen: Map<number, Seen>;
  /** Each migration's events in the order seen. */
  byMigration: Map<string, Seen[]>;
  /** Resolves with the migration's terminal event, or 'timeout'. */
  terminal(migrationId: string, timeoutMs: number): Promise<Seen | 'timeout'>;
  /** Call `cb` with the migration's terminal event when (if ever) it is seen. */
  onEnd(migrationId: string, cb: (s: Seen) => void): void;
  /** How often the follower had to be started again (its consumer failed). */
  restarts(): number;
  stop(): Promise<void>;
};

/**
 * The soak's follower: one ordered consumer on haul.events.> from the first message, running through every kill.
 * It records what it saw (the reference for the end-of-run loss audit) and tells the driver when a migration ends.
 */
export function startEventTap(nc: NatsConnection, onError: (err: Error) => void): EventTap {
  const seen = new Map<number, Seen>();
  const byMigration = new Map<string, Seen[]>();
  const waiters = new Map<string, ((s: Seen) => void)[]>();
  const ac = new AbortController();
  let last = 0;
  let restarts = 0;
  const record = (s: Seen) => {
    if (seen.has(s.seq)) return;
    seen.set(s.seq, s);
    last = Math.max(last, s.seq);
    const list = byMigration.get(s.migrationId) ?? [];
    list.push(s);
    byMigration.set(s.migrationId, list);
    if (isTerminal(s)) for (const w of waiters.get(s.migrationId)?.splice(0) ?? []) w(s);
  };
  /** Register `cb` for the migration's terminal event (at once if already seen); returns a cancel. */
  const onEnd = (migrationId: string, cb: (s: Seen) => void): (() => void) => {
    const done = byMigration.get(migrationId)?.find(isTerminal);
    if (done) {
      cb(done);
      return () => {};
    }
    const list = waiters.get(migrationId) ?? [];
    list.push(cb);
    waiters.set(migrationId, list);
    return () => {
      const i = list.indexOf(cb);
      if (i >= 0) list.splice(i, 1);
    };
  };
  const loop = (async () => {
    while (!ac.signal.aborted) {
      try {
        for await (const s of readStream(nc, { fromSeq: last + 1, signal: ac.signal })) record(s);
      } catch (err) {
        if (ac.signal.aborted) break;
        restarts++;
        onError(err as Error);
        await delay(1000);
      }
    }
  })();
  return {
    seen,
    byMigration,
    terminal(migrationId, timeoutMs) {
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          cancel();
          resolve('timeout');
        }, timeoutMs);
        const cancel = onEnd(migrationId, (s) => {
          clearTimeout(timer);
          resolve(s);
        });
      });
    },
    onEnd: (migrationId, cb) => void onEnd(migrationId, cb),
    restarts: () => restarts,
    async stop() {
      ac.abort();
      await loop;
    },
  };
}

export type LossReport = {
  /** Messages the follower saw during the run. */
  observed: number;
  /** Messages in the stream at the end. */
  atEnd: number;
  /**
   * Events seen during the run that are gone at the end: not at their stream sequence any more ('stream'), or
   * missing from their migration's subject when read as the services read it ('subject').
   */
  lost: (Seen & { missingFrom: ('stream' | 'subject')[]; atEndInstead?: string })[];
  /** In the stream at the end, never seen by the follower (a follower gap, not a loss). */
  unobserved: number;
  /** Migrations whose seen events are all there at the end, but not in the order seen. */
  reordered: { migrationId: string; seen: string[]; atEnd: string[] }[];
  /**
   * Events in the stream that the readers refuse (trust rejections at their sequence: say, an outcome written by an
   * executor the command was not addressed to), so a read by subject leaves them out by design: not lost.
   */
  refused: Seen[];
};

/** Compare what the follower saw with the whole stream read again at the end, and with each migration's subject. */
export function compareEventLogs(
  seen: ReadonlyMap<number, Seen>,
  atEnd: ReadonlyMap<number, Seen>,
  perMigrationAtEnd: ReadonlyMap<string, readonly Seen[]>,
  /** Stream sequences of the messages the reader refused (its trust's rejections). */
  refusedSeqs: ReadonlySet<number> = new Set(),
): LossReport {
  const lost = new Map<string, LossReport['lost'][number]>();
  const lose = (s: Seen, where: 'stream' | 'subject', instead?: string) => {
    const l = lost.get(s.eventId) ?? { ...s, missingFrom: [] };
    l.missingFrom.push(where);
    if (instead !== undefined) l.atEndInstead = instead;
    lost.set(s.eventId, l);
  };
  const seenByMigration = new Map<string, Seen[]>();
  for (const s of [...seen.values()].sort((a, b) => a.seq - b.seq)) {
    const now = atEnd.get(s.seq);
    if (now?.eventId !== s.eventId) lose(s, 'stream', now?.eventId);
    seenByMigration.set(s.migrationId, [...(seenByMigration.get(s.migrationId) ?? []), s]);
  }
  const reordered: LossReport['reordered'] = [];
  const refused: Seen[] = [];
  for (const [migrationId, list] of seenByMigration) {
    const end = (perMigrationAtEnd.get(migrationId) ?? []).map((s) => s.eventId);
    const endSet = new Set(end);
    for (const s of list)
      if (endSet.has(s.eventId)) continue;
      else if (refusedSeqs.has(s.seq) && !lost.has(s.eventId)) refused.push(s);
      else lose(s, 'subject');
    // Every event seen must be there in the order seen (the end may hold more, had the follower missed some).
    const ids = list.map((s) => s.eventId);
    let i = 0;
    for (const id of end) if (id === ids[i]) i++;
    if (i !== ids.length && ids.every((id) => endSet.has(id)))
      reordered.push({ migrationId, seen: ids, atEnd: end });
  }
  let unobserved = 0;
  for (const seq of atEnd.keys()) if (!seen.has(seq)) unobserved++;
  return { observed: seen.size, atEnd: atEnd.size, lost: [...lost.values()], unobserved, reordered, refused };
}
