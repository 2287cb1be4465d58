import { isTerminalEvent } from '@haul/schemas';
import { limits } from './conventions.ts';
import { ConcurrencyConflictError } from './errors.ts';
import type { EventLog, StoredEvent } from './event-log.ts';

/** What a process holds of one migration's log: every believed event up to `lastSeq`, in order. */
type Held = { events: StoredEvent[]; lastSeq: number };

export type ReadCacheOptions = {
  /** Migrations whose log is held, the least recently read forgotten first (default limits.readCacheMigrations). */
  max?: number;
  /** Migrations kept current at once (keepCurrent), the oldest let go first (default limits.readCacheFollowed). */
  maxFollowed?: number;
  /** Ends every follow (the process is stopping). */
  signal?: AbortSignal;
  /** A follow ended by a failure (the bus, a closed connection): reads go on as before, only slower. */
  onFollowError?: (migrationId: string, err: unknown) => void;
};

export type CachedEventLog = EventLog & {
  /**
   * Keep a migration's held log current while it is written, so that a command that comes after a long quiet
   * spell finds it read already: an ordered consumer on the migration's subject from the last sequence held, each
   * message judged as every read judges it (the same judge) and held. It ends at the migration's terminal event,
   * when its log is no longer held, when more than `maxFollowed` are followed (the oldest ends), or with `signal`.
   *
   * Why: an agent reads a migration's log before each command, and its preflight comes long before its commands
   * inside the frozen window (the target's restore, the source's final dump and snapshots). The target's read before
   * the restore fetched and judged the whole iterative phase, 54 messages, 43-51 ms of the demo's downtime (a
   * consumer made, pulled and deleted, and a signature checked per message), while the agent was idle for seconds
   * before it; the source's read before the final dump, 12 ms.
   */
  keepCurrent(migrationId: string): void;
  /**
   * What this process holds of a migration kept current, without asking the server: every believed event up to
   * `lastSeq`, in order. undefined when the migration is not kept current (then only a read knows the log). It may
   * be behind the stream by what the follow has not delivered yet, so it is for a compare-and-set append only: one
   * expecting `lastSeq` fails if anything came after, and the caller reads then. The restore's fence appends so
   * without a read before it, a round trip less inside the frozen window.
   */
  held(migrationId: string): { events: StoredEvent[]; lastSeq: number } | undefined;
};

/**
 * An event log whose whole-log reads are served from what this process already read: per migration the judged
 * events and the sequence they reach, and a read asks the stream only for what came after it (a message get and,
 * when there is more, the messages after it: one by one for a short tail, else a consumer from that sequence). An
 * executor reads a migration's log before each of its commands; without this, each read fetched and checked the
 * signature of every event again, O(n²) per migration (bench:control stalled at a thousand migrations). The stream
 * is append-only, so what was read stays true.
 */
export function withReadCache(log: EventLog, opts: ReadCacheOptions = {}): CachedEventLog {
  const { max = limits.readCacheMigrations, maxFollowed = limits.readCacheFollowed, signal } = opts;
  const cache = new Map<string, Held>();
  const following = new Map<string, AbortController>();
  // One listener for every follow (a listener each would pass the signal's limit of ten).
  signal?.addEventListener('abort', () => following.forEach((c) => c.abort()), { once: true });
  /**
   * This process's own append, right after the last event it knew: what it holds is still the whole log. The event
   * kept is a frozen copy, as a read would give it: the caller's object may change after.
   */
  const extend = (mid: string, after: number, stored: StoredEvent) => {
    const known = cache.get(mid);
    if (known?.lastSeq === after) cache.set(mid, { events: [...known.events, stored], lastSeq: stored.seq });
  };

  /**
   * Hold what a follow of `mid` delivers. A follow delivers every believed event of the subject in order, so an
   * event after what is held, when what is held reaches the follow's previous one, completes it; else a read
   * holds more already (and the event is in it) or the log was forgotten (the follow ends).
   */
  async function follow(mid: string, from: Held, stop: AbortSignal): Promise<void> {
    let prev = from.lastSeq;
    for await (const stored of log.follow({ migrationId: mid, fromSeq: from.lastSeq + 1, signal: stop })) {
      const now = cache.get(mid);
      if (!now) return;
      if (stored.seq > now.lastSeq && now.lastSeq >= prev)
        cache.set(mid, { events: [...now.events, stored], lastSeq: stored.seq });
      prev = stored.seq;
      if (isTerminalEvent(stored.event)) return;
    }
  }

  function keepCurrent(mid: string): void {
    const held = cache.get(mid);
    if (maxFollowed <= 0 || signal?.aborted || following.has(mid) || !held) return;
    if (held.events.some((e) => isTerminalEvent(e.event))) return;
    const ac = new AbortController();
    following.set(mid, ac);
    if (following.size > maxFollowed) {
      // Let go of the oldest now, not when its follow has ended: the next call counts without it.
      const [oldest, c] = following.entries().next().value!;
      following.delete(oldest);
      c.abort();
    }
    follow(mid, held, ac.signal)
      .catch((err: unknown) => {
        if (!ac.signal.aborted) opts.onFollowError?.(mid, err);
      })
      .finally(() => {
        ac.abort();
        if (following.get(mid) === ac) following.delete(mid);
      });
  }

  return {
    ...log,
    keepCurrent,
    held(mid) {
      const h = following.has(mid) ? cache.get(mid) : undefined;
      return h && { events: h.events, lastSeq: h.lastSeq };
    },
    /**
     * An append that expects no sequence, of a migration this process holds, first expects the last one it holds:
     * stored, it is known to follow it, so the next read fetches nothing (a message get alone) instead of this very
     * event. When another writer appended meanwhile, it is appended as asked. An append that expects a sequence
     * (compare-and-set) extends what is held when that sequence is the last one held.
     *
     * A migration kept current is appended to as asked at once: its follow holds the event like any other. There the
     * guess lost most often: in the frozen window the coordinator appends intents while the agent runs a step, and
     * an outcome's append that first expected the last event held paid a second round trip to the server.
     */
    async append(event, appendOpts = {}) {
      const mid = event.migrationId;
      const held = cache.get(mid)?.lastSeq;
      const expected = appendOpts.expectedLastSeq ?? (following.has(mid) ? undefined : held);
      if (expected === undefined) return log.append(event, appendOpts);
      try {
        const r = await log.append(event, { ...appendOpts, expectedLastSeq: expected });
        if (!r.duplicate && expected === held)
          extend(mid, expected, { seq: r.seq, event: Object.freeze(structuredClone(event)) });
        return r;
      } catch (err) {
        if (appendOpts.expectedLastSeq !== undefined || !(err instanceof ConcurrencyConflictError)) throw err;
        return log.append(event, appendOpts);
      }
    },
    async read(migrationId, readOpts = {}) {
      const known = cache.get(migrationId) ?? { events: [], lastSeq: 0 };
      const tail = await log.read(migrationId, { afterSeq: known.lastSeq });
      // Two reads of one migration may overlap (or a read and a follow): the later one to finish keeps what both
      // saw, in order.
      const now = cache.get(migrationId) ?? known;
      const events = [...now.events, ...tail.events.filter((e) => e.seq > now.lastSeq)];
      const entry = { events, lastSeq: Math.max(now.lastSeq, tail.lastSeq) };
      cache.delete(migrationId);
      cache.set(migrationId, entry);
      if (cache.size > max) cache.delete(cache.keys().next().value as string);
      const afterSeq = readOpts.afterSeq ?? 0;
      return { events: entry.events.filter((e) => e.seq > afterSeq), lastSeq: entry.lastSeq };
    },
  };
}
