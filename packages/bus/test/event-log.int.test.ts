import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import type { NatsConnection } from '@nats-io/transport-node';
import { createValidators, type MigrationEvent } from '@haul/schemas';
import { natsReleases, tempIdentities, startNatsServer, type NatsServer } from '@haul/test';
import {
  ConcurrencyConflictError,
  connectBus,
  createEventLog,
  ensureTopology,
  extendChain,
  isConnectionGone,
  limits,
  newChain,
  retryTransient,
  sealDataOf,
  streams,
  subjects,
  type EventLog,
  type Trust,
  type SealData,
  type StoredEvent,
} from '@haul/bus';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers } from '@nats-io/nats-core';
import { createUser } from '@nats-io/nkeys';

const validators = createValidators();
const enc = new TextEncoder();

function cancelEvent(migrationId: string, n: number): MigrationEvent {
  return {
    eventId: `${migrationId}:cancel:${n}`,
    migrationId,
    type: 'CancelRequested',
    actor: { service: 'coordinator', node: 'coordinator' },
    time: new Date(0).toISOString(),
    schemaVersion: 1,
    data: { reason: `test ${n}` },
  };
}

/** The seal of what a migration's log holds now, as the coordinator computes it (every message believed). */
/** `fn` for each item, 32 at a time: thousands of requests at once time out on a busy server. */
async function inBatches<T>(items: readonly T[], fn: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += 32) await Promise.all(items.slice(i, i + 32).map(fn));
}

/** Each migration's whole log, read as a reader of the product reads: a bounded number at once. */
async function readEach(log: EventLog, mids: string[]): Promise<Map<string, StoredEvent[]>> {
  const whole = new Map<string, StoredEvent[]>();
  await inBatches(mids, async (m) => void whole.set(m, (await log.read(m)).events));
  return whole;
}

async function chainNow(nc: NatsConnection, log: EventLog, mid: string): Promise<SealData> {
  const jsm = await jetstreamManager(nc);
  const c = newChain();
  for (const e of (await log.read(mid)).events) {
    const m = await jsm.streams.getMessage(streams.events, { seq: e.seq });
    extendChain(c, e.seq, m!.header, m!.data);
  }
  return sealDataOf(c);
}

const sealOf = (mid: string, data: SealData): MigrationEvent => ({
  ...cancelEvent(mid, 0),
  eventId: `${mid}:sealed`,
  type: 'MigrationSealed',
  data,
});

describe('event log on a real JetStream stream', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let log: EventLog;
  const trust = tempIdentities().trust('coordinator');
  before(async () => {
    server = await startNatsServer();
    nc = await connectBus({ servers: server.url, name: 'event-log-test' });
    await ensureTopology(nc);
    log = createEventLog(nc, validators, trust);
  });
  after(async () => {
    await nc?.drain();
    await server?.stop();
  });

  it('given a connection this process drained, when an append or a JetStream call is retried, then it fails at once', async () => {
    const gone = await connectBus({ servers: server.url, name: 'event-log-test-drained' });
    const goneLog = createEventLog(gone, validators, trust);
    const jsm = await jetstreamManager(gone);
    await gone.drain();
    // The append retries transient failures inside (retryTransient): a closed connection is not one to wait for.
    await assert.rejects(goneLog.append(cancelEvent('mig-drained', 1)), (e) => isConnectionGone(e));
    let calls = 0;
    await assert.rejects(
      retryTransient(() => (calls++, jsm.streams.info(streams.events))),
      (e) => isConnectionGone(e),
    );
    assert.equal(calls, 1, 'tried once: nothing answers on a closed connection');
  });

  it("given another client stored an unsigned copy of an event's bytes under its id first, the append is not taken as done", async () => {
    // Given the bytes of an event this coordinator is about to append, published first without a signature under the
    // event's id (a client that copied a publish of ours lost at a leader change: any node may publish events)
    const e = cancelEvent('mig-squat', 1);
    await jetstream(nc).publish(subjects.events('mig-squat'), JSON.stringify(e), { msgID: e.eventId });
    const rejected = trust.rejections;

    // When the coordinator appends it where the log was empty
    const appended = log.append(e, { expectedLastSeq: 0 });

    // Then the copy is reported and the append is not answered as its own (it tried again under an id nobody can
    // guess, and lost the compare-and-set to the copy): before, a copy with the same bytes was taken for the append
    await assert.rejects(appended, ConcurrencyConflictError);
    assert.equal(trust.rejections, rejected + 1);
  });

  it('appends with compare-and-set and reads the events back in order', async () => {
    const a = await log.append(cancelEvent('mig-aaaa', 1), { expectedLastSeq: 0 });
    const b = await log.append(cancelEvent('mig-aaaa', 2), { expectedLastSeq: a.seq });
    await log.append(cancelEvent('mig-bbbb', 1), { expectedLastSeq: 0 });
    const { events, lastSeq } = await log.read('mig-aaaa');
    assert.equal(lastSeq, b.seq);
    assert.deepEqual(
      events.map((e) => e.event.eventId),
      ['mig-aaaa:cancel:1', 'mig-aaaa:cancel:2'],
    );
  });

  it('reads a long log through a consumer and a short tail message by message: the same events, only its own', async () => {
    const mine: number[] = [];
    let last = 0;
    const appendMine = async (n: number) => {
      last = (await log.append(cancelEvent('mig-long', n), { expectedLastSeq: last })).seq;
      mine.push(last);
    };
    for (let n = 1; n <= 12; n++) {
      await appendMine(n);
      await log.append(cancelEvent(`mig-other-${n}`, 1), { expectedLastSeq: 0 });
    }
    // The JetStream API requests of this connection that make a consumer (an ordered consumer makes one per read).
    const made: string[] = [];
    const sub = nc.subscribe('$JS.API.CONSUMER.CREATE.>', {
      callback: (_e, m) => void made.push(m.subject),
    });
    const reader = createEventLog(nc, validators, trust);
    const ids = (r: { events: { seq: number }[] }) => r.events.map((e) => e.seq);
    // 12 of its events among 24 sequences and more: longer than a direct read takes, a consumer.
    const whole = await reader.read('mig-long');
    assert.deepEqual(ids(whole), mine);
    assert.equal(made.length, 1, 'the whole log through one consumer');
    // Three more of its own among others, one of which is gone from the stream: a tail of 6 sequences.
    const others: number[] = [];
    for (let n = 13; n <= 15; n++) {
      others.push((await log.append(cancelEvent(`mig-other-${n}`, 1), { expectedLastSeq: 0 })).seq);
      await appendMine(n);
    }
    const jsm = await jetstreamManager(nc);
    assert.ok(await jsm.streams.deleteMessage(streams.events, others[1]!, false));
    const tail = await reader.read('mig-long', { afterSeq: whole.lastSeq });
    await nc.flush();
    sub.unsubscribe();
    assert.deepEqual(ids(tail), mine.slice(12));
    assert.deepEqual(
      tail.events.map((e) => e.event.eventId),
      ['mig-long:cancel:13', 'mig-long:cancel:14', 'mig-long:cancel:15'],
    );
    assert.equal(made.length, 1, 'the short tail without a consumer');
  });

  it('walks a tail of a few events among many sequences without a consumer, and a longer one with one for the rest', async () => {
    const mine: number[] = [];
    let last = 0;
    const appendMine = async (n: number, othersAfter: number) => {
      last = (await log.append(cancelEvent('mig-walk', n), { expectedLastSeq: last })).seq;
      mine.push(last);
      for (let k = 0; k < othersAfter; k++)
        await log.append(cancelEvent(`mig-walk-other-${n}-${k}`, 1), { expectedLastSeq: 0 });
    };
    await appendMine(1, limits.directReadMaxSeqs * 2);
    await appendMine(2, limits.directReadMaxSeqs);
    await appendMine(3, 0);
    const made: string[] = [];
    const sub = nc.subscribe('$JS.API.CONSUMER.CREATE.>', {
      callback: (_e, m) => void made.push(m.subject),
    });
    const reader = createEventLog(nc, validators, trust);
    const seqs = (r: { events: { seq: number }[] }) => r.events.map((e) => e.seq);
    // Three of its events over more sequences than a direct read gets at once: walked, one get each.
    const whole = await reader.read('mig-walk');
    await nc.flush();
    assert.deepEqual(seqs(whole), mine);
    assert.equal(made.length, 0, 'no consumer for a walk');
    // More of its own than a walk takes, each among others: the walk's eight, then one consumer from there.
    const more = limits.walkReadMaxMsgs + 3;
    for (let n = 4; n < 4 + more; n++) await appendMine(n, 3);
    const tail = await reader.read('mig-walk', { afterSeq: whole.lastSeq });
    await nc.flush();
    sub.unsubscribe();
    assert.deepEqual(seqs(tail), mine.slice(3));
    assert.deepEqual(
      tail.events.map((e) => e.event.eventId),
      Array.from({ length: more }, (_, i) => `mig-walk:cancel:${4 + i}`),
    );
    assert.equal(made.length, 1, 'one consumer for what the walk left');
  });

  it('rejects an append whose expected last subject sequence is stale', async () => {
    const first = await log.append(cancelEvent('mig-cccc', 1), { expectedLastSeq: 0 });
    await log.append(cancelEvent('mig-cccc', 2), { expectedLastSeq: first.seq });
    await assert.rejects(
      log.append(cancelEvent('mig-cccc', 3), { expectedLastSeq: first.seq }),
      ConcurrencyConflictError,
    );
    assert.equal((await log.read('mig-cccc')).events.length, 2);
  });

  it('refuses to append an event that breaks its schema, naming the field', async () => {
    const bad = { ...cancelEvent('mig-eeee', 1), data: {} } as unknown as MigrationEvent;
    await assert.rejects(log.append(bad), /'data.reason' is required/);
  });

  it('reads an unknown migration as empty', async () => {
    assert.deepEqual(await log.read('mig-none'), { events: [], lastSeq: 0 });
  });

  it('follows to the end of the log as it is when the read starts (toEnd), and stops there', async () => {
    const ids = async (opts: Parameters<EventLog['follow']>[0]) => {
      const out: string[] = [];
      for await (const s of log.follow({ ...opts, toEnd: true })) out.push(s.event.eventId);
      return out;
    };
    const f1 = await log.append(cancelEvent('mig-ffff', 1), { expectedLastSeq: 0 });
    await log.append(cancelEvent('mig-gggg', 1), { expectedLastSeq: 0 });
    await log.append(cancelEvent('mig-ffff', 2), { expectedLastSeq: f1.seq });
    // One migration whose events are not the last of the stream; everything; past the end; a time after the end.
    assert.deepEqual(await ids({ migrationId: 'mig-ffff' }), ['mig-ffff:cancel:1', 'mig-ffff:cancel:2']);
    const all = await ids({});
    assert.deepEqual(all.slice(-3), ['mig-ffff:cancel:1', 'mig-gggg:cancel:1', 'mig-ffff:cancel:2']);
    assert.equal(new Set(all).size, all.length);
    assert.deepEqual(await ids({ fromSeq: 10_000 }), []);
    assert.deepEqual(await ids({ since: new Date(Date.now() + 60_000) }), []);
    assert.deepEqual(await ids({ migrationId: 'mig-none' }), []);
  });

  it('replays every migration once, each in order, whatever it may hold while waiting for seals', async () => {
    // Interleaved and unsealed: each is handed on when the read ends, or oldest first when too many are held.
    const mids = ['mig-rp01', 'mig-rp02', 'mig-rp03'];
    const last = new Map<string, number>();
    for (const [mid, n] of [
      [0, 1],
      [1, 1],
      [0, 2],
      [2, 1],
      [1, 2],
      [0, 3],
    ] as const)
      last.set(
        mids[mid]!,
        (await log.append(cancelEvent(mids[mid]!, n), { expectedLastSeq: last.get(mids[mid]!) ?? 0 })).seq,
      );
    const read = await readEach(log, mids);
    for (const maxHeld of [undefined, 1, 2]) {
      const got = new Map<string, StoredEvent[]>();
      let batches = 0;
      for await (const batch of createEventLog(nc, validators, trust).replay(maxHeld ? { maxHeld } : {})) {
        const mid = batch[0]!.event.migrationId;
        assert.ok(
          batch.every((e) => e.event.migrationId === mid),
          'one migration per batch',
        );
        if (mids.includes(mid)) batches++;
        got.set(mid, [...(got.get(mid) ?? []), ...batch]);
      }
      for (const m of mids) assert.deepEqual(got.get(m), read.get(m), `${m}, holding at most ${maxHeld}`);
      if (maxHeld === undefined) assert.equal(batches, 3, 'held to the end: one batch each');
      else assert.ok(batches > 3, `holding at most ${maxHeld}: handed on earlier (${batches} batches)`);
    }
  });

  it('replays a sealed log as its seal alone when the caller takes its snapshot, and any other log as its events', async () => {
    // Interleaved: one log sealed over its messages, then one more message; one sealed over another digest; one unsealed.
    const [good, wrong, open] = ['mig-sl01', 'mig-sl02', 'mig-sl03'];
    const last = new Map<string, number>();
    const append = async (e: MigrationEvent) =>
      last.set(e.migrationId, (await log.append(e, { expectedLastSeq: last.get(e.migrationId) ?? 0 })).seq);
    for (const [mid, n] of [
      [good, 1],
      [wrong, 1],
      [open, 1],
      [good, 2],
      [wrong, 2],
      [open, 2],
    ] as const)
      await append(cancelEvent(mid, n));
    const chainOf = (mid: string) => chainNow(nc, log, mid);
    await append(sealOf(good, await chainOf(good)));
    await append(sealOf(wrong, { ...(await chainOf(wrong)), digest: `sha256:${'0'.repeat(64)}` }));
    await append(cancelEvent(good, 3));
    const read = await readEach(log, [good, wrong, open]);

    const replay = async (snapshot?: () => boolean) => {
      const got = new Map<string, StoredEvent[][]>();
      const offered: string[] = [];
      const opts = snapshot
        ? { snapshot: (s: { event: MigrationEvent }) => (offered.push(s.event.migrationId), snapshot()) }
        : {};
      for await (const batch of createEventLog(nc, validators, trust).replay(opts)) {
        const mid = batch[0]!.event.migrationId;
        got.set(mid, [...(got.get(mid) ?? []), batch]);
      }
      return { got, offered };
    };
    const [g, w, o] = [read.get(good)!, read.get(wrong)!, read.get(open)!];
    const taken = await replay(() => true);
    assert.deepEqual(
      taken.offered.filter((m) => m.startsWith('mig-sl')),
      [good],
      'only the seal that vouches',
    );
    assert.deepEqual(
      taken.got.get(good),
      [[{ ...g[2]!, snapshot: true }], [g[3]]],
      'its seal alone, marked, then what came after it',
    );
    assert.deepEqual(taken.got.get(wrong), [w], 'its events, each checked, and the seal');
    assert.deepEqual(taken.got.get(open), [o]);
    const folded = await replay(() => false);
    assert.deepEqual(folded.got.get(good), [g.slice(0, 3), [g[3]]]);
    const plain = await replay();
    assert.deepEqual(plain.got.get(good), [g.slice(0, 3), [g[3]]]);
    assert.deepEqual(plain.got.get(wrong), [w]);
  });
});

// From 2.12 on, a stream with one replica checks an append's expected sequence before its message id: the same answer
// on every release is the event log's (storedWithId).
for (const release of natsReleases)
  describe(`an append tried again with the same message id, on the ${release} nats-server`, () => {
    let server: NatsServer;
    let nc: NatsConnection;
    let log: EventLog;
    before(async () => {
      server = await startNatsServer({ release });
      nc = await connectBus({ servers: server.url, name: `event-log-retry-${release}` });
      await ensureTopology(nc);
      log = createEventLog(nc, validators, tempIdentities().trust('coordinator'));
    });
    after(async () => {
      await nc?.drain();
      await server?.stop();
    });

    it('given its first try stored (its answer lost) and events after it, then it is that one, stored once', async () => {
      // Given an event appended where the log was empty, and another after it
      const e = cancelEvent('mig-dddd', 1);
      const first = await log.append(e, { expectedLastSeq: 0 });
      await log.append(cancelEvent('mig-dddd', 2), { expectedLastSeq: first.seq });

      // When the first append comes again, its expectation stale by now
      const again = await log.append(e, { expectedLastSeq: 0 });

      // Then it is answered as the first one, and the log holds each event once
      assert.deepEqual(again, { seq: first.seq, duplicate: true }, `nats-server ${nc.info?.version}`);
      assert.deepEqual(
        (await log.read('mig-dddd')).events.map((s) => s.event.eventId),
        ['mig-dddd:cancel:1', 'mig-dddd:cancel:2'],
      );
    });

    it('given another event stored where it expected to go, then it is refused as a conflict', async () => {
      // Given another writer's event stored first where the log was empty
      await log.append(cancelEvent('mig-dddx', 1), { expectedLastSeq: 0 });

      // When an event of ours expects the log still empty, then it is a conflict, not taken for the other one
      await assert.rejects(
        log.append(cancelEvent('mig-dddx', 2), { expectedLastSeq: 0 }),
        ConcurrencyConflictError,
      );
      assert.equal((await log.read('mig-dddx')).events.length, 1);
    });
  });

/** A nats-server of a describe block's own, with haul's topology, a connection to it and the event log of `trust`. */
async function ownServer(name: string, trust: Trust) {
  const server = await startNatsServer();
  const nc = await connectBus({ servers: server.url, name });
  await ensureTopology(nc);
  return { server, nc, log: createEventLog(nc, validators, trust) };
}

async function stopOwn(server: NatsServer | undefined, nc: NatsConnection | undefined): Promise<void> {
  await nc?.drain();
  await server?.stop();
}

/**
 * `nc` as a client sees it when some of its message gets reach a stream leader behind (nats-server before 2.11: a
 * new leader answers before it has applied what it took over): the first get of each sequence in `behind` answers
 * "no message found", as that leader does; every other request goes to the server.
 */
function behindOnce(nc: NatsConnection, behind: Set<number>): NatsConnection {
  const get = `$JS.API.STREAM.MSG.GET.${streams.events}`;
  const notFound = enc.encode(
    JSON.stringify({ error: { code: 404, err_code: 10037, description: 'no message found' } }),
  );
  return new Proxy(nc, {
    get(target, key, receiver) {
      if (key !== 'request') {
        const v: unknown = Reflect.get(target, key, receiver);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      }
      return async (subject: string, data: Uint8Array, opts: unknown) => {
        const seq =
          subject === get ? (JSON.parse(new TextDecoder().decode(data)) as { seq?: number }).seq : undefined;
        if (seq !== undefined && behind.delete(seq)) return { subject, data: notFound };
        return target.request(subject, data, opts as Parameters<NatsConnection['request']>[2]);
      };
    },
  });
}

describe('event log reads that reach a stream leader behind', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  const ids = tempIdentities();
  const trust = ids.trust('coordinator');
  let log: EventLog;
  before(async () => ({ server, nc, log } = await ownServer('event-log-behind-test', trust)));
  after(() => stopOwn(server, nc));

  it('given a short tail whose middle message one get misses (a leader behind), the read is tried again, not taken without it', async () => {
    // Given a reader that has read a log to its first event, and two more events of it among others' since
    const mid = 'mig-behind-middle';
    const first = await log.append(cancelEvent(mid, 1), { expectedLastSeq: 0 });
    const behind = new Set<number>();
    const reader = createEventLog(behindOnce(nc, behind), validators, ids.trust('ops'));
    assert.equal((await reader.read(mid)).events.length, 1);
    await log.append(cancelEvent('mig-behind-other', 1), { expectedLastSeq: 0 });
    const second = await log.append(cancelEvent(mid, 2), { expectedLastSeq: first.seq });
    await log.append(cancelEvent('mig-behind-other', 2), { expectedLastSeq: second.seq - 1 });
    const third = await log.append(cancelEvent(mid, 3), { expectedLastSeq: second.seq });
    assert.ok(third.seq - first.seq <= limits.directReadMaxSeqs, 'a tail read message by message');

    // When its read of the tail gets the second event from a leader that has not applied it yet, the third from one
    // that has
    behind.add(second.seq);
    const { events } = await reader.read(mid, { afterSeq: first.seq });

    // Then the read is tried again and holds both: before, the second was dropped as if aged out of the stream
    assert.equal(behind.size, 0, 'the get behind was made');
    assert.deepEqual(
      events.map((e) => e.event.eventId),
      [`${mid}:cancel:2`, `${mid}:cancel:3`],
    );
  });

  it('given a short tail whose start the stream has lost for good (aged out), the read takes what is left', async () => {
    // Given a log whose first two events the stream no longer holds (its oldest messages dropped)
    const mid = 'mig-behind-aged';
    let last = 0;
    for (let n = 1; n <= 3; n++)
      last = (await log.append(cancelEvent(mid, n), { expectedLastSeq: last })).seq;
    const jsm = await jetstreamManager(nc);
    await jsm.streams.purge(streams.events, { seq: last });
    assert.ok(last <= limits.directReadMaxSeqs, 'a read message by message, from the start of the stream');

    // When a reader with no facts of it reads it, message by message
    const { events } = await createEventLog(nc, validators, ids.trust('ops')).read(mid, {
      afterSeq: last - 3,
    });

    // Then it holds the event the stream still has, and the read ends (not tried again until its budget ends)
    assert.deepEqual(
      events.map((e) => e.event.eventId),
      [`${mid}:cancel:3`],
    );
  });

  it('given an append answered as a duplicate whose stored copy one get misses (a leader behind), it is not appended again', async () => {
    // Given an event appended, and its append made again (a retry whose first answer was lost)
    const mid = 'mig-behind-dup';
    const e = cancelEvent(mid, 1);
    const stored = await log.append(e, { expectedLastSeq: 0 });
    const behind = new Set([stored.seq]);
    const again = createEventLog(behindOnce(nc, behind), validators, trust);
    const rejected = trust.rejections;

    // When the stream answers it as a duplicate, and the get of the stored copy reaches a leader behind
    const ack = await again.append(e, { expectedLastSeq: 0 });

    // Then the copy is read again and found the append's own: no squatter reported, no second copy in the log
    assert.equal(behind.size, 0, 'the get behind was made');
    assert.deepEqual(ack, { seq: stored.seq, duplicate: true });
    assert.equal(trust.rejections, rejected);
    assert.equal((await log.read(mid)).events.length, 1);
  });
});

describe('replay from seals on a real JetStream stream', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  const ids = tempIdentities();
  const trust = ids.trust('coordinator');
  let log: EventLog;
  before(async () => ({ server, nc, log } = await ownServer('replay-seals-test', trust)));
  after(() => stopOwn(server, nc));

  const last = new Map<string, number>();
  const append = async (e: MigrationEvent) =>
    last.set(e.migrationId, (await log.append(e, { expectedLastSeq: last.get(e.migrationId) ?? 0 })).seq);
  const chainOf = (mid: string) => chainNow(nc, log, mid);
  const replaySeals = async (prefix: string, snapshot: (mid: string) => boolean = () => true) => {
    const got = new Map<string, StoredEvent[][]>();
    const offered: string[] = [];
    const take = (s: { event: MigrationEvent }) => (
      offered.push(s.event.migrationId),
      snapshot(s.event.migrationId)
    );
    for await (const batch of createEventLog(nc, validators, ids.trust('ops')).replaySeals({
      snapshot: take,
    })) {
      const mid = batch[0]!.event.migrationId;
      assert.ok(
        batch.every((e) => e.event.migrationId === mid),
        'one migration per batch',
      );
      if (mid.startsWith(prefix)) got.set(mid, [...(got.get(mid) ?? []), batch]);
    }
    return { got, offered: offered.filter((m) => m.startsWith(prefix)).sort() };
  };

  it('hands on a log as its seal alone only when the seal stands for it unread; any other log as its events', async () => {
    const [good, after, forged, older, stranger, refused] = [
      'rs-good',
      'rs-after',
      'rs-forged',
      'rs-older',
      'rs-stranger',
      'rs-refused',
    ];
    const all = [good, after, forged, older, stranger, refused];
    for (const n of [1, 2]) for (const mid of all) await append(cancelEvent(mid, n));
    // forged: a message no reader believes (unsigned) between the events and the seal, which the coordinator's
    // chain leaves out: the seal vouches for two messages, the subject holds four with it.
    const f = await jetstream(nc).publish(
      subjects.events(forged),
      enc.encode(JSON.stringify(cancelEvent(forged, 9))),
    );
    last.set(forged, f.seq);
    const forgedSeal = await chainOf(forged);
    for (const mid of [good, after, refused]) await append(sealOf(mid, await chainOf(mid)));
    await append(sealOf(forged, forgedSeal));
    // older: a seal written before seals named their signers; stranger: one that names a key this reader's registry
    // does not know.
    const { signers: _s, fromSeq: _f, ...unnamed } = await chainOf(older);
    await append(sealOf(older, unnamed));
    await append(sealOf(stranger, { ...(await chainOf(stranger)), signers: [createUser().getPublicKey()] }));
    // after: a message after its seal.
    await append(cancelEvent(after, 3));
    const read = await readEach(log, all);

    const { got, offered } = await replaySeals('rs-', (mid) => mid !== refused);
    assert.deepEqual(offered, [good, refused].sort(), 'only the seals that stand for their logs are offered');
    assert.deepEqual(
      got.get(good),
      [[{ ...read.get(good)!.at(-1)!, snapshot: true }]],
      'its seal alone, marked',
    );
    for (const mid of [after, forged, older, stranger, refused])
      assert.deepEqual(got.get(mid), [read.get(mid)], `${mid}: its believed events, read whole`);
    assert.equal(read.get(forged)!.length, 3, 'the forgery is not among them');
  });

  it('a copy of a seal after it, then the start of the log aged out of the stream: never taken, the log read whole', async () => {
    const mid = 'rz-copied';
    for (const n of [1, 2, 3]) await append(cancelEvent(mid, n));
    await append(sealOf(mid, await chainOf(mid)));
    const jsm = await jetstreamManager(nc);
    const seal = (await jsm.streams.getMessage(streams.events, { seq: last.get(mid)! }))!;
    // The same bytes and signature (it covers the subject and the body, not the sequence), under another message id.
    const h = headers();
    for (const k of ['Haul-Signer', 'Haul-Signature']) h.set(k, seal.header.get(k));
    await jetstream(nc).publish(subjects.events(mid), seal.data, { headers: h });
    const whole = (await log.read(mid)).events;
    assert.deepEqual(
      whole.map((e) => e.event.type),
      ['CancelRequested', 'CancelRequested', 'CancelRequested', 'MigrationSealed', 'MigrationSealed'],
    );
    let r = await replaySeals('rz-');
    assert.deepEqual(r.offered, [], 'the subject holds one message more than the seal and its log');
    assert.deepEqual(r.got.get(mid), [whole]);
    // Everything before the log's second message leaves the stream (as max_age or max_bytes would make it): the
    // subject's count is the seal's and its log's again, but the log's first message is gone.
    await jsm.streams.purge(streams.events, { seq: whole[1]!.seq });
    r = await replaySeals('rz-');
    assert.deepEqual(r.offered, [], "the stream no longer starts at or before the seal's first message");
    assert.deepEqual(r.got.get(mid), [(await log.read(mid)).events]);
  });

  it('a read whose consumer nats.js makes again half-way (deleted on the server): every log handed on once, each whole unless its seal was taken', async () => {
    // Many more last messages than the read's consumer holds at once (limits.replayPullMessages): after the delete
    // it must pull again.
    const sealed = Array.from({ length: limits.replaySealsInFlight + 16 }, (_, i) => `rr-sealed-${i}`);
    const open = Array.from({ length: 3 * limits.replayPullMessages }, (_, i) => `rr-open-${i}`);
    // The logs are written 32 at a time (each its own subject): one after the other, 3,160 appends took most of the
    // test's 45-80 s in the integration tier.
    await inBatches(sealed, async (mid) => {
      await append(cancelEvent(mid, 1));
      await append(sealOf(mid, await chainOf(mid)));
    });
    await inBatches(open, (mid) => append(cancelEvent(mid, 1)));
    const jsm = await jetstreamManager(nc);
    const consumers = async () => {
      const names: string[] = [];
      for await (const c of jsm.consumers.list(streams.events)) names.push(c.name);
      return names;
    };
    const got = new Map<string, StoredEvent[][]>();
    let deleted: string[] | undefined;
    const reader = createEventLog(nc, validators, ids.trust('ops'));
    for await (const batch of reader.replaySeals({ snapshot: () => true })) {
      // The first batch (seals taken): the read waits here, its consumer holding no more than one pull's messages.
      // The stream's consumers are deleted meanwhile (the earlier reads' too, which the server keeps until they have
      // been idle a while): nats.js finds the read's own gone at its next pull, and makes it again from the last
      // message it delivered, with every message after it.
      if (!deleted) {
        deleted = await consumers();
        for (const name of deleted) await retryTransient(() => jsm.consumers.delete(streams.events, name));
      }
      const mid = batch[0]!.event.migrationId;
      if (mid.startsWith('rr-')) got.set(mid, [...(got.get(mid) ?? []), batch]);
    }
    // nats.js names an ordered consumer made again as the one before, its count after the underscore one more.
    const again = (await consumers()).filter((n) => !deleted!.includes(n));
    assert.ok(
      again.some((n) => deleted!.includes(n.replace(/_(\d+)$/, (_, k: string) => `_${Number(k) - 1}`))),
      `the read's consumer was made again (deleted ${deleted!.length}, now ${again.join(', ')})`,
    );
    const whole = await readEach(log, [...sealed, ...open]);
    for (const mid of open) assert.deepEqual(got.get(mid), [whole.get(mid)], mid);
    for (const mid of sealed) {
      const seal = [[{ ...whole.get(mid)!.at(-1)!, snapshot: true }]];
      assert.ok(
        isDeepStrictEqual(got.get(mid), seal) || isDeepStrictEqual(got.get(mid), [whole.get(mid)]),
        `${mid}: once, as its seal alone or as its whole log`,
      );
    }
  });

  it('reads many logs no seal stands for in one replay of the stream, and still takes the seals that do', async () => {
    const open = Array.from({ length: limits.replaySealsReadEachMax + 6 }, (_, i) => `rm-open-${i}`);
    for (const mid of open) await append(cancelEvent(mid, 1));
    await append(cancelEvent('rm-good', 1));
    await append(sealOf('rm-good', await chainOf('rm-good')));
    await append(cancelEvent('rm-after', 1));
    await append(sealOf('rm-after', await chainOf('rm-after')));
    await append(cancelEvent('rm-after', 2));
    const { got } = await replaySeals('rm-');
    assert.equal(got.size, open.length + 2);
    // Read in the replay of the stream, a log with a message after its seal comes as the replay hands it on: its
    // seal's snapshot (its chain is the seal's), then that message (a read of its own would hand on all its events).
    const after = (await log.read('rm-after')).events;
    assert.deepEqual(got.get('rm-after'), [[{ ...after[1]!, snapshot: true }], [after[2]]]);
    assert.deepEqual(
      got
        .get('rm-good')!
        .flat()
        .map((e) => [e.event.type, e.snapshot]),
      [['MigrationSealed', true]],
    );
    for (const mid of open) assert.deepEqual(got.get(mid), [(await log.read(mid)).events], mid);
  });
});
