import type { NatsConnection } from '@nats-io/transport-node';
import { headers } from '@nats-io/nats-core';
import {
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
  type MsgRequest,
  type NextMsgRequest,
  type StoredMsg,
} from '@nats-io/jetstream';
import type { MigrationEvent, Validators } from '@haul/schemas';
import { limits, streams, subjects } from './conventions.ts';
import { BusError, BusUnavailableError, ConcurrencyConflictError, isWrongLastSequence } from './errors.ts';
import { pendingAtStart, replayLog } from './replay.ts';
import { replaySeals } from './replay-seals.ts';
import { readAgainUntil, retryTransient } from './retry.ts';
import { createEventJudge, type JudgeOptions, type RawEvent, type SealMessage } from './trust/event-judge.ts';
import type { SealData } from './trust/seal.ts';
import type { SignatureHeaders } from './trust/signature.ts';
import type { Trust } from './trust/trust.ts';

/** An event as stored in the log, with its stream sequence (the value compare-and-set appends expect). */
export type StoredEvent = {
  seq: number;
  event: MigrationEvent;
  /** A seal handed on alone for its status snapshot (ReplayOptions.snapshot): it stands for its log's events. */
  snapshot?: true;
};

export type AppendOptions = {
  /** Compare-and-set: the append succeeds only if the migration's last event has this stream sequence (0 = none). */
  expectedLastSeq?: number;
  /** Deduplication id; defaults to the event id. A retried append with the same id is not stored twice. */
  msgId?: string;
};

/**
 * Where an append's event is. `duplicate`: its message id was in the log already, at `seq`. `otherCopy`: such a copy
 * that is not this append's message: another coordinator's event with the same id (it decided the same step from the
 * same point, its data its own: a config of its own, a fold of its own version), or this identity's before a restart.
 * Its data may differ from this event's: a writer that acts on what it appended (a coordinator sending the commands
 * it intended) reads the copy instead.
 */
export type AppendAck = { seq: number; duplicate: boolean; otherCopy?: true };

export type EventLog = {
  append(event: MigrationEvent, opts?: AppendOptions): Promise<AppendAck>;
  /**
   * All events of one migration, in order, and the stream sequence of the last one (0 if none). With `afterSeq`,
   * only those after it: the tail a reader that has folded the log up to that sequence is missing (a message get
   * alone when there is none).
   */
  read(migrationId: string, opts?: ReadOptions): Promise<{ events: StoredEvent[]; lastSeq: number }>;
  /**
   * Judge one message of the event stream that reached this process another way (the coordinator's consumer): the
   * event if it is believed, undefined if it is skipped (invalid, or refused and reported).
   */
  admit(raw: RawEvent, decoded?: MigrationEvent): Promise<StoredEvent | undefined>;
  /**
   * The coordinator's events of these types of one migration after `afterSeq` (each believed on its signature alone,
   * without reading the log before it; other messages are decoded, never checked), and the stream sequence of the
   * migration's last message: whether it ended, say, at the cost of the tail alone.
   */
  readCoordinatorEvents(
    migrationId: string,
    afterSeq: number,
    types: ReadonlySet<string>,
  ): Promise<{ events: StoredEvent[]; lastSeq: number }>;
  /** Follow the log: all migrations (or one), from a stream sequence or a time, live. */
  follow(opts: FollowOptions): AsyncIterable<StoredEvent>;
  /**
   * Every migration's believed events, from the stream's start to its end as it is when the read starts: each
   * migration's in order, migrations in the order their logs are complete — a sealed log at its seal (judged on the
   * seal's one signature when it vouches for exactly those messages, trust/seal.ts), the others when the read ends
   * (or when more than limits.replayHeldMessages are waiting, oldest first), each message's signature checked. A
   * batch holds one migration's events, never none.
   */
  replay(opts?: ReplayOptions): AsyncIterable<StoredEvent[]>;
  /**
   * Every migration, as `replay` with a `snapshot`, reading only the last message of each log where it can: a log
   * whose last message is a seal that stands for it without its messages being read (EventJudge.sealAlone) is handed
   * on as that seal alone, marked `snapshot`; any other log as its believed events (replay-seals.ts). For a reader of
   * statuses: its cost follows the number of migrations, not of events.
   */
  replaySeals(opts: ReplaySealsOptions): AsyncIterable<StoredEvent[]>;
  /**
   * The seal this process can vouch with for one migration: the chain of what it believed, in order, from its start
   * (only when created with `sealChains`).
   */
  sealOf(migrationId: string): SealData | undefined;
};

export type ReadOptions = { afterSeq?: number };

export type ReplayOptions = {
  signal?: AbortSignal;
  /** Messages held at most while their migration's seal has not come (default limits.replayHeldMessages). */
  maxHeld?: number;
  /**
   * Whether the caller can use this seal's status snapshot instead of its events: a log whose seal vouches for exactly
   * its messages and is accepted is handed on as its seal alone, its events not decoded (EventJudge.sealed).
   */
  snapshot?: (seal: SealMessage) => boolean;
};

export type ReplaySealsOptions = Pick<ReplayOptions, 'signal'> & Required<Pick<ReplayOptions, 'snapshot'>>;

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

/**
 * The migration log. Every append is signed with this process's key (trust.sign); every reader — read, follow, and
 * the coordinator's consumer through `admit` — gets only the events the judge believes (trust/event-judge.ts), so no
 * reader can forget the check. `onInvalid` hears of messages that are no valid event at all.
 */
export function createEventLog(
  nc: NatsConnection,
  validators: Validators,
  trust: Trust,
  onInvalid: (seq: number, message: string) => void = () => {},
  /** `sealChains`: this process seals (the coordinator); other readers keep no chain (trust/event-judge.ts). */
  opts: JudgeOptions = {},
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
  const judge = createEventJudge(trust, validators, onInvalid, opts);

  /**
   * The messages of `subject` after `afterSeq` up to `lastSeq` (a message of it): a short span of stream sequences
   * got all at once (getEach), else walked along the subject (walk), and what a walk leaves through a consumer.
   */
  async function readUpTo(subject: string, lastSeq: number, afterSeq: number): Promise<RawEvent[]> {
    if (lastSeq - afterSeq <= limits.directReadMaxSeqs) return getEach(subject, lastSeq, afterSeq);
    const walked = await walk(subject, lastSeq, afterSeq);
    const reached = walked.at(-1)?.seq ?? afterSeq;
    return reached === lastSeq ? walked : [...walked, ...(await consume(subject, lastSeq, reached))];
  }

  /**
   * The first message of `subject` after `afterSeq` (a message get by `next_by_subj`), or null. The client's type lists
   * `seq` and `last_by_subj` only; every server haul is tested on answers `next_by_subj` (event-log.int reads
   * through it).
   */
  function nextOf(m: JetStreamManager, subject: string, afterSeq: number) {
    const next: NextMsgRequest = { seq: afterSeq + 1, next_by_subj: subject };
    return m.streams.getMessage(streams.events, next as unknown as MsgRequest);
  }

  /**
   * Up to limits.walkReadMaxMsgs messages of `subject` after `afterSeq`, each the next of the subject after the last
   * (a message get by `next_by_subj`), stopping at `lastSeq`. Among many migrations written at once, a command's read
   * spans thousands of stream sequences but a few messages of its migration; each read through a consumer made,
   * pulled and deleted cost the server more than anything else (bench:control: consumer creation a quarter of its
   * CPU). A walk asks one message a round trip, so a long tail is left to the consumer.
   */
  async function walk(subject: string, lastSeq: number, afterSeq: number): Promise<RawEvent[]> {
    const m = await jsm();
    const raws: RawEvent[] = [];
    let at = afterSeq;
    while (at < lastSeq && raws.length < limits.walkReadMaxMsgs) {
      const g = await nextOf(m, subject, at);
      // Like the consumer's read, a walk ends only at the message `lastSeq`: a stream (a new leader) without it yet,
      // or without a message of the subject up to it, is unavailable and the read is tried again.
      if (!g || g.seq > lastSeq || g.subject !== subject)
        throw new BusUnavailableError(`${subject}: the stream has no message ${lastSeq} of it yet`);
      raws.push({ subject, seq: g.seq, data: g.data, headers: g.header });
      at = g.seq;
    }
    return raws;
  }

  /** The messages of `subject` after `afterSeq` up to `lastSeq`, through an ordered consumer. */
  async function consume(subject: string, lastSeq: number, afterSeq: number): Promise<RawEvent[]> {
    const raws: RawEvent[] = [];
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
        raws.push({ subject: msg.subject, seq: msg.seq, data: msg.data, headers: msg.headers });
        if (msg.seq >= lastSeq) return raws;
      }
    } finally {
      clearTimeout(watchdog);
      await iter.close();
    }
    throw new BusUnavailableError(
      `${subject}: ${idle ? `no message for ${limits.readIdleMs} ms` : 'the read ended'} before sequence ${lastSeq}`,
    );
  }

  /**
   * The messages of `subject` among the stream sequences after `afterSeq` up to `lastSeq`, each got from the stream
   * by its sequence, all at once: the tail's other subjects are dropped, as a filtered consumer skips them. Like the
   * consumer's read, it ends only with the message at `lastSeq`, this migration's: a stream (a new leader) that does
   * not have it yet is unavailable, and the read is tried again, never taken as the whole tail. So is one that lacks
   * a message of the subject before it (noneOf): the gets go out at once, and a leader change among them can answer
   * some from a new leader that has not applied them yet (nats-server before 2.11, limits.intentReadAgainMs). Taken
   * as aged out, such a message was missing from the read, and from the read cache's log after it for good.
   */
  async function getEach(subject: string, lastSeq: number, afterSeq: number): Promise<RawEvent[]> {
    const m = await jsm();
    const seqs = Array.from({ length: lastSeq - afterSeq }, (_, i) => afterSeq + 1 + i);
    const got = await Promise.all(seqs.map((seq) => m.streams.getMessage(streams.events, { seq })));
    const last = got.at(-1);
    if (!last || last.seq !== lastSeq || last.subject !== subject)
      throw new BusUnavailableError(`${subject}: the stream has no message ${lastSeq} of it yet`);
    const missing = seqs.filter((_, i) => !got[i]);
    if (missing.length > 0) await noneOf(m, subject, missing);
    return got.flatMap((g) =>
      g && g.subject === subject ? [{ subject, seq: g.seq, data: g.data, headers: g.header }] : [],
    );
  }

  /**
   * That the stream holds no message of `subject` at `seqs` (sequences a get answered with none, in order): each was
   * another subject's, or is lost for good (aged out, dropped by a full stream, deleted by hand). Each run of them is
   * asked for the subject's first message after its start (nextOf): one past the run says that none of it is this
   * subject's. One inside the run, or none at all (the read's last message is this subject's), comes from a leader
   * that has not applied the run yet, and the read is unavailable: a stream applies its messages in order, so a
   * leader that holds a later one holds every earlier one.
   */
  async function noneOf(m: JetStreamManager, subject: string, seqs: readonly number[]): Promise<void> {
    const runs = seqs.reduce<[number, number][]>((rs, seq) => {
      const r = rs.at(-1);
      if (r && r[1] === seq - 1) r[1] = seq;
      else rs.push([seq, seq]);
      return rs;
    }, []);
    for (const [from, to] of runs) {
      const next = await nextOf(m, subject, from - 1);
      if (!next || next.subject !== subject || next.seq <= to)
        throw new BusUnavailableError(
          `${subject}: the stream did not answer message ${next?.subject === subject ? next.seq : from} of it`,
        );
    }
  }

  /** Read and judge a migration's messages after `afterSeq`, starting where the judge's facts need it. */
  async function readJudged(migrationId: string, afterSeq: number, lastSeq: number): Promise<StoredEvent[]> {
    const subject = subjects.events(migrationId);
    const from = judge.coveredFrom(migrationId, afterSeq);
    const raws = await retryTransient(() => readUpTo(subject, lastSeq, from));
    return judge.inOrder(migrationId, from, raws).filter((e) => e.seq > afterSeq);
  }

  async function lastOf(subject: string) {
    const m = await jsm();
    // null when the subject has no message (the client maps the API's "no message found" to null); any other
    // failure, a missing stream included, is an error and never an empty log.
    return retryTransient(() => m.streams.getMessage(streams.events, { last_by_subj: subject }));
  }

  async function readBack(migrationId: string, afterSeq: number): Promise<void> {
    const last = await lastOf(subjects.events(migrationId));
    if (last && last.seq > afterSeq) await readJudged(migrationId, afterSeq, last.seq);
  }

  /**
   * The message stored at `seq`, as a duplicate's answer names it. The leader that answered has it, but the read may
   * reach a new leader that has not applied it yet (nats-server before 2.11): a message missing is read again after
   * the waits of limits.intentReadAgainMs, and one still missing makes the append unavailable, to be tried again.
   * Taken for a squatter's, the event was appended a second time under another id. A duplicate's message cannot have
   * aged out: the duplicate window is minutes, the stream's age limit a month, and a full stream drops its oldest.
   */
  async function storedCopy(subject: string, seq: number): Promise<StoredMsg> {
    const m = await jsm();
    const read = () => retryTransient(() => m.streams.getMessage(streams.events, { seq }));
    const stored = (await readAgainUntil(read, (g) => g !== null))!.read;
    if (!stored)
      throw new BusUnavailableError(
        `${subject}: the stream does not answer message ${seq}, named as a duplicate`,
      );
    return stored;
  }

  /**
   * JetStream answers an append whose message id is already in its duplicate window as a duplicate. Anyone on the
   * bus can publish first with the id an event will have (ids are predictable): a duplicate counts only when the
   * stored copy is this identity's own signed event (or, for coordinators, another coordinator's: they share the
   * `coordinator` identity). Otherwise the squatter is reported and the event is appended under an id made of its
   * signature, which nobody can guess.
   */
  function squatted(stored: StoredMsg, subject: string, seq: number, event: MigrationEvent): boolean {
    if (!trust.secure) return false;
    const v = trust.verify(stored.subject, stored.data, stored.header, stored.seq);
    let sameId = false;
    try {
      sameId =
        (JSON.parse(new TextDecoder().decode(stored.data)) as { eventId?: unknown }).eventId ===
        event.eventId;
    } catch {
      sameId = false;
    }
    if (stored.subject === subject && v.ok && v.identity?.name === trust.identity?.name && sameId)
      return false;
    trust.reject({
      kind: 'event',
      subject: stored.subject,
      seq,
      ...(v.ok ? { claimed: v.identity?.name ?? '' } : v.claimed ? { claimed: v.claimed } : {}),
      reason: `took the message id of ${event.eventId} before its real append`,
    });
    return true;
  }

  async function publish(
    subject: string,
    body: Uint8Array,
    msgID: string,
    expectedLastSeq: number | undefined,
    signature: SignatureHeaders | undefined,
  ) {
    const pubOpts: Parameters<JetStreamClient['publish']>[2] = { msgID, timeout: limits.publishTimeoutMs };
    if (signature) {
      const h = headers();
      for (const [k, v] of Object.entries(signature)) h.set(k, v);
      pubOpts.headers = h;
    }
    if (expectedLastSeq !== undefined) pubOpts.expect = { lastSubjectSequence: expectedLastSeq };
    try {
      return await retryTransient(async () => {
        const a = await js.publish(subject, body, pubOpts);
        // A clustered 2.9 server answers a retry whose first publish is still being proposed (or was dropped at
        // a leader change) as a duplicate with sequence 0: not stored yet, so not an append. Ask again.
        if (a.duplicate && a.seq === 0)
          throw new BusUnavailableError(`${subject}: ${msgID} is not stored yet`);
        return { ack: { seq: a.seq, duplicate: a.duplicate }, signature };
      });
    } catch (err) {
      if (expectedLastSeq === undefined || !isWrongLastSequence(err)) throw err;
      const seq = await storedWithId(subject, msgID, expectedLastSeq);
      if (seq === undefined) throw err;
      return { ack: { seq, duplicate: true }, signature };
    }
  }

  /**
   * The sequence of the message stored with this message id right after `expectedLastSeq` on the subject, if there
   * is one: then a publish that expected that last sequence was stored already (a retry whose first try's answer was
   * lost, or an append a process made before it restarted). nats-server up to 2.11 answers such a publish as a
   * duplicate of the one stored; from 2.12 on, a stream with one replica checks the expected sequence first and
   * refuses it as "wrong last sequence" (server/stream.go processJetStreamMsg at 1787eee03: the expected last
   * sequence per subject at 6810, the message id's duplicate at 7053; 2.15.1 answers so, with three replicas it
   * still answers a duplicate). Found where the append would have gone, it is the same answer on every release, and
   * after the stream's duplicate window too (limits.duplicateWindowMs), where no server remembers the id: the message
   * at that place is the append's own, as a duplicate's is (and `append` checks it is, as for any duplicate: squatted).
   */
  async function storedWithId(
    subject: string,
    msgID: string,
    expectedLastSeq: number,
  ): Promise<number | undefined> {
    const m = await jsm();
    const stored = await retryTransient(() => nextOf(m, subject, expectedLastSeq));
    return stored?.header?.get('Nats-Msg-Id') === msgID ? stored.seq : undefined;
  }

  return {
    async append(event, opts = {}) {
      const v = validators.validate<MigrationEvent>('event', event);
      if (!v.ok) throw new BusError('HAUL_INVALID_EVENT', v.error.message, false);
      const subject = subjects.events(event.migrationId);
      const body = enc.encode(JSON.stringify(event));
      const signature = trust.sign(subject, body);
      judge.signing(event, body, signature);
      try {
        let { ack } = await publish(subject, body, msgIdOf(event, opts), opts.expectedLastSeq, signature);
        if (!ack.duplicate) {
          judge.appended(ack.seq, event, opts.expectedLastSeq);
          return { seq: ack.seq, duplicate: false };
        }
        const stored = await storedCopy(subject, ack.seq);
        // This very message, its signature too (a try before this one stored it, its answer lost): the append is
        // done. Bytes alone could be a copy another client stored unsigned from a publish of ours that was lost.
        if (stored.subject === subject && sameBytes(stored.data, body) && sameSignature(stored, signature))
          return { seq: ack.seq, duplicate: true };
        if (!squatted(stored, subject, ack.seq, event))
          return { seq: ack.seq, duplicate: true, otherCopy: true };
        const unguessable = `${event.eventId}:${signature?.['Haul-Signature'].slice(0, 22) ?? ''}`;
        ({ ack } = await publish(subject, body, unguessable, opts.expectedLastSeq, signature));
        if (!ack.duplicate) judge.appended(ack.seq, event, opts.expectedLastSeq);
        return { seq: ack.seq, duplicate: ack.duplicate };
      } catch (err) {
        judge.notSigning(event);
        if (isWrongLastSequence(err))
          throw new ConcurrencyConflictError(subject, opts.expectedLastSeq ?? -1, { cause: err });
        throw err;
      }
    },

    async read(migrationId, opts = {}) {
      const last = await lastOf(subjects.events(migrationId));
      if (!last) return { events: [], lastSeq: 0 };
      const afterSeq = opts.afterSeq ?? 0;
      if (last.seq <= afterSeq) return { events: [], lastSeq: last.seq };
      // Up to the last sequence: a short tail message by message (getEach), a longer one through an ordered
      // consumer. A read that stops receiving (a server of the cluster died under it) is given up after readIdleMs
      // and tried again, never left hanging with its migration behind it.
      return { events: await readJudged(migrationId, afterSeq, last.seq), lastSeq: last.seq };
    },

    admit: (raw, decoded) => judge.single(raw, readBack, decoded),

    async readCoordinatorEvents(migrationId, afterSeq, types) {
      const subject = subjects.events(migrationId);
      const last = await lastOf(subject);
      if (!last) return { events: [], lastSeq: 0 };
      if (last.seq <= afterSeq) return { events: [], lastSeq: last.seq };
      const raws = await retryTransient(() => readUpTo(subject, last.seq, afterSeq));
      const events = raws.flatMap((raw) => judge.factFree(raw, types) ?? []);
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
      let remaining = opts.toEnd ? await pendingAtStart(consumer) : Infinity;
      if (remaining === 0) return;
      const iter = await consumer.consume({ expires: limits.pullExpiresMs });
      const stop = () => void iter.close();
      // A signal that fired while the consumer was being made fires no listener added now (a 1 s --timeout of the
      // CLI on a busy machine was over before its consumer existed, and the follow never ended).
      if (opts.signal?.aborted) stop();
      else opts.signal?.addEventListener('abort', stop, { once: true });
      // A follow of one migration from a known sequence sees every message of its subject in order: what it judged
      // counts as judged, so the reads after it start from there (EventJudge.followed).
      let prev = opts.migrationId && opts.fromSeq !== undefined ? opts.fromSeq - 1 : undefined;
      try {
        for await (const msg of iter) {
          const raw = { subject: msg.subject, seq: msg.seq, data: msg.data, headers: msg.headers };
          const e = await judge.single(raw, readBack);
          if (prev !== undefined) {
            judge.followed(opts.migrationId!, prev, raw.seq);
            prev = raw.seq;
          }
          if (e) yield e;
          // Counted on raw messages, so a message that is not an event still counts towards the end.
          if (--remaining <= 0 || (opts.toEnd && msg.info.pending === 0)) return;
        }
      } finally {
        opts.signal?.removeEventListener('abort', stop);
        await iter.close();
      }
    },

    replay: (opts = {}) => replayLog(js, judge, readBack, opts),

    replaySeals: ({ snapshot, signal }) =>
      replaySeals(
        {
          js,
          jsm,
          judge,
          readWhole: (mid, lastSeq) => readJudged(mid, 0, lastSeq),
          replayOnly: (only) =>
            replayLog(js, judge, readBack, { snapshot, ...(signal ? { signal } : {}) }, only),
        },
        snapshot,
        signal,
      ),

    sealOf: (mid) => judge.sealOf(mid),
  };
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(a, b) === 0;

/** The stored message carries every signature header of this append, as it sent them (signer and signature). */
const sameSignature = (stored: StoredMsg, signature: SignatureHeaders | undefined): boolean =>
  signature === undefined || Object.entries(signature).every(([k, v]) => stored.header?.get(k) === v);
