import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, it } from 'node:test';
import type { MigrationEvent } from '@haul/schemas';
import { ConcurrencyConflictError } from './errors.ts';
import type { EventLog, FollowOptions, StoredEvent } from './event-log.ts';
import { withReadCache, type ReadCacheOptions } from './read-cache.ts';

/**
 * A log of stored events per migration, and the `afterSeq` of every read that reached it. Its follow delivers the
 * events of one migration from a sequence as they are appended, until aborted; `followed(mid, seq)` resolves once
 * the follower has taken the event at `seq` (the generator is asked for the next one), `followEnded(mid)` once a
 * follow of `mid` has ended.
 */
function fakeLog() {
  const stream: { mid: string; seq: number; type: string }[] = [];
  const asked: [string, number][] = [];
  const stored = (m: { mid: string; seq: number; type: string }): StoredEvent => ({
    seq: m.seq,
    event: { migrationId: m.mid, eventId: `${m.mid}-${m.seq}`, type: m.type } as unknown as MigrationEvent,
  });
  const wake = new Set<() => void>();
  const signal = () => {
    for (const w of [...wake]) w();
  };
  const waits: { done: (mid: string, seq: number) => boolean; resolve: () => void }[] = [];
  const progress = { taken: new Map<string, number>(), ended: new Map<string, number>() };
  const settle = () => {
    for (const w of [...waits])
      if (w.done('', 0)) {
        waits.splice(waits.indexOf(w), 1);
        w.resolve();
      }
  };
  const until = (done: () => boolean) =>
    new Promise<void>((resolve) => {
      waits.push({ done, resolve });
      settle();
    });
  const follows: [string, number][] = [];
  const failing = new Set<string>();
  const log = {
    read(mid: string, opts: { afterSeq?: number } = {}) {
      const after = opts.afterSeq ?? 0;
      asked.push([mid, after]);
      const mine = stream.filter((m) => m.mid === mid);
      return Promise.resolve({
        events: mine.filter((m) => m.seq > after).map(stored),
        lastSeq: mine.at(-1)?.seq ?? 0,
      });
    },
    async *follow({ migrationId, fromSeq, signal: stop }: FollowOptions) {
      follows.push([migrationId!, fromSeq!]);
      let next = fromSeq!;
      try {
        if (failing.has(migrationId!)) throw new Error('the bus went away');
        while (!stop?.aborted) {
          const m = stream.find((x) => x.mid === migrationId && x.seq >= next);
          if (!m) {
            await new Promise<void>((resolve) => {
              const w = () => (wake.delete(w), resolve());
              wake.add(w);
              stop?.addEventListener('abort', w, { once: true });
            });
            continue;
          }
          next = m.seq + 1;
          yield stored(m);
          progress.taken.set(migrationId!, m.seq);
          settle();
        }
      } finally {
        progress.ended.set(migrationId!, (progress.ended.get(migrationId!) ?? 0) + 1);
        settle();
      }
    },
  } as unknown as EventLog;
  const append = (mid: string, type = 'StepSucceeded') => {
    stream.push({ mid, seq: stream.length + 1, type });
    signal();
  };
  /** What this process appended through the log, with the sequence each append expected. */
  const appends: [string, number | undefined][] = [];
  (log as { append: EventLog['append'] }).append = (event, opts = {}) => {
    const mid = event.migrationId;
    appends.push([mid, opts.expectedLastSeq]);
    const last = stream.filter((m) => m.mid === mid).at(-1)?.seq ?? 0;
    if (opts.expectedLastSeq !== undefined && opts.expectedLastSeq !== last)
      return Promise.reject(new ConcurrencyConflictError(mid, opts.expectedLastSeq));
    append(mid);
    return Promise.resolve({ seq: stream.length, duplicate: false });
  };
  return {
    log,
    asked,
    append,
    appends,
    follows,
    failing,
    followed: (mid: string, seq: number) => until(() => (progress.taken.get(mid) ?? 0) >= seq),
    followEnded: (mid: string) => until(() => (progress.ended.get(mid) ?? 0) > 0),
  };
}

const seqs = (r: { events: StoredEvent[] }) => r.events.map((e) => e.seq);

describe('withReadCache: a whole-log read fetches only what this process has not read yet', () => {
  it('given a migration read once, when it grows, then the next read asks only after the last sequence read and answers the whole log', async () => {
    const f = fakeLog();
    const log = withReadCache(f.log);
    f.append('a');
    f.append('b');
    f.append('a');
    assert.deepEqual(seqs(await log.read('a')), [1, 3]);
    f.append('a');
    const r = await log.read('a');
    assert.deepEqual(seqs(r), [1, 3, 4]);
    assert.equal(r.lastSeq, 4);
    assert.deepEqual(f.asked, [
      ['a', 0],
      ['a', 3],
    ]);
  });

  it('honours afterSeq from what it holds', async () => {
    const f = fakeLog();
    const log = withReadCache(f.log);
    for (let i = 0; i < 4; i++) f.append('a');
    assert.deepEqual(seqs(await log.read('a', { afterSeq: 2 })), [3, 4]);
    assert.deepEqual(seqs(await log.read('a')), [1, 2, 3, 4]);
  });

  it('two reads that overlap keep every event once, in order', async () => {
    const f = fakeLog();
    const log = withReadCache(f.log);
    f.append('a');
    const [x, y] = await Promise.all([log.read('a'), log.read('a')]);
    assert.deepEqual([seqs(x), seqs(y)], [[1], [1]]);
    f.append('a');
    assert.deepEqual(seqs(await log.read('a')), [1, 2]);
  });

  it('given a migration read once, when this process appends to it, then the append expects the last event read and the next read asks only after its own event', async () => {
    const f = fakeLog();
    const log = withReadCache(f.log);
    f.append('a');
    f.append('b');
    await log.read('a');
    const ev = { migrationId: 'a', eventId: 'mine' } as unknown as MigrationEvent;
    assert.deepEqual(await log.append(ev), { seq: 3, duplicate: false });
    const r = await log.read('a');
    assert.deepEqual(seqs(r), [1, 3]);
    assert.deepEqual(r.events[1]!.event, ev);
    assert.ok(Object.isFrozen(r.events[1]!.event), 'a copy the caller cannot change');
    assert.deepEqual(f.appends, [['a', 1]]);
    assert.deepEqual(f.asked, [
      ['a', 0],
      ['a', 3],
    ]);
  });

  it('given another writer appended after the last read, when this process appends, then it appends as asked and the next read fetches both', async () => {
    const f = fakeLog();
    const log = withReadCache(f.log);
    f.append('a');
    await log.read('a');
    f.append('a');
    const ev = { migrationId: 'a', eventId: 'mine' } as unknown as MigrationEvent;
    assert.deepEqual(await log.append(ev), { seq: 3, duplicate: false });
    assert.deepEqual(f.appends, [
      ['a', 1],
      ['a', undefined],
    ]);
    assert.deepEqual(seqs(await log.read('a')), [1, 2, 3]);
    assert.deepEqual(f.asked.at(-1), ['a', 1]);
  });

  it("a compare-and-set append that loses is the caller's to handle, and one of a migration never read expects nothing", async () => {
    const f = fakeLog();
    const log = withReadCache(f.log);
    f.append('a');
    const ev = { migrationId: 'a', eventId: 'mine' } as unknown as MigrationEvent;
    await assert.rejects(log.append(ev, { expectedLastSeq: 0 }), ConcurrencyConflictError);
    await log.append({ migrationId: 'b', eventId: 'x' } as unknown as MigrationEvent);
    assert.deepEqual(f.appends, [
      ['a', 0],
      ['b', undefined],
    ]);
  });

  it('keeps at most max migrations: the least recently read is forgotten and read whole again', async () => {
    const f = fakeLog();
    const log = withReadCache(f.log, { max: 2 });
    for (const m of ['a', 'b', 'c']) f.append(m);
    await log.read('a');
    await log.read('b');
    await log.read('a');
    await log.read('c');
    f.asked.length = 0;
    await log.read('a');
    await log.read('b');
    assert.deepEqual(f.asked, [
      ['a', 1],
      ['b', 0],
    ]);
  });
});

/** Migration `a`, one event long, read once and then kept current. */
async function keptCurrent(opts: ReadCacheOptions = {}) {
  const f = fakeLog();
  const log = withReadCache(f.log, opts);
  f.append('a');
  await log.read('a');
  log.keepCurrent('a');
  return { f, log };
}

// Each waits for the follow it expects: one that never comes fails the test at its timeout instead of hanging.
describe(
  'withReadCache keepCurrent: a migration whose log is read ahead while it is written',
  { timeout: 10_000 },
  () => {
    it('given a migration kept current, when events are stored, then the next read asks only after the last one and answers the whole log in order', async () => {
      const { f, log } = await keptCurrent();
      f.append('a');
      f.append('b');
      f.append('a');
      await f.followed('a', 4);
      f.asked.length = 0;
      const r = await log.read('a');
      assert.deepEqual(seqs(r), [1, 2, 4]);
      assert.deepEqual(f.asked, [['a', 4]], 'nothing fetched but what came after the follow');
      assert.deepEqual(f.follows, [['a', 2]], 'from right after what was held');
    });

    it('given a migration kept current, when this process appends to it, then it appends as asked at once and the follow holds its event', async () => {
      const { f, log } = await keptCurrent();
      f.append('a'); // another writer's event, not yet delivered by the follow when the append starts
      const ev = { migrationId: 'a', eventId: 'mine' } as unknown as MigrationEvent;
      assert.deepEqual(await log.append(ev), { seq: 3, duplicate: false });
      assert.deepEqual(
        f.appends,
        [['a', undefined]],
        'no compare-and-set on what the follow may not have held yet',
      );
      await f.followed('a', 3);
      f.asked.length = 0;
      assert.deepEqual(seqs(await log.read('a')), [1, 2, 3]);
      assert.deepEqual(f.asked, [['a', 3]], 'its own event came with the follow');
    });

    it('given a migration kept current, then held() answers what the follow delivered without asking the server; otherwise nothing', async () => {
      const { f, log } = await keptCurrent();
      f.append('b');
      f.append('a');
      await f.followed('a', 3);
      f.asked.length = 0;
      const h = log.held('a');
      assert.deepEqual(h && { seqs: seqs(h), lastSeq: h.lastSeq }, { seqs: [1, 3], lastSeq: 3 });
      assert.deepEqual(f.asked, [], 'no read');
      await log.read('b');
      assert.equal(log.held('b'), undefined, 'read, but not kept current');
      assert.equal(log.held('never-read'), undefined);
    });

    it('given a read and a follow that overlap, then every event is held once, in order', async () => {
      const { f, log } = await keptCurrent();
      f.append('a');
      f.append('a');
      const read = log.read('a'); // asks after 1 while the follow delivers 2 and 3
      await f.followed('a', 3);
      assert.deepEqual(seqs(await read), [1, 2, 3]);
      f.append('a');
      await f.followed('a', 4);
      assert.deepEqual(seqs(await log.read('a')), [1, 2, 3, 4]);
    });

    it("given the migration's terminal event, then the follow ends; a migration not held or already ended is not followed", async () => {
      const { f, log } = await keptCurrent();
      f.append('a', 'MigrationCompleted');
      await f.followEnded('a');
      log.keepCurrent('never-read');
      await log.read('a');
      log.keepCurrent('a');
      assert.deepEqual(f.follows, [['a', 2]]);
    });

    it('given more migrations kept current than maxFollowed, then the oldest follow ends, at once', async () => {
      const f = fakeLog();
      const log = withReadCache(f.log, { maxFollowed: 1 });
      for (const m of ['a', 'b', 'c']) f.append(m);
      for (const m of ['a', 'b', 'c']) await log.read(m);
      // One after the other, before any follow has ended: each counts without the one it let go of.
      for (const m of ['a', 'b', 'c']) log.keepCurrent(m);
      await Promise.all([f.followEnded('a'), f.followEnded('b')]);
      f.append('c');
      await f.followed('c', 4);
    });

    it('given a follow that fails, then onFollowError hears it and reads fetch what it missed', async () => {
      const f = fakeLog();
      let heard!: (m: string) => void;
      const error = new Promise<string>((resolve) => (heard = resolve));
      const log = withReadCache(f.log, {
        onFollowError: (mid, err) => heard(`${mid}: ${(err as Error).message}`),
      });
      f.append('a');
      await log.read('a');
      f.failing.add('a');
      log.keepCurrent('a');
      assert.equal(await error, 'a: the bus went away');
      f.append('a');
      assert.deepEqual(seqs(await log.read('a')), [1, 2]);
    });

    it('given the signal, then every follow ends and none starts', async () => {
      const f = fakeLog();
      const ac = new AbortController();
      const log = withReadCache(f.log, { signal: ac.signal });
      const mids = Array.from({ length: 12 }, (_, i) => `m${i}`);
      for (const m of [...mids, 'late']) f.append(m);
      for (const m of [...mids, 'late']) await log.read(m);
      for (const m of mids) log.keepCurrent(m);
      assert.equal(getEventListeners(ac.signal, 'abort').length, 1, 'one listener, however many follows');
      ac.abort();
      await Promise.all(mids.map((m) => f.followEnded(m)));
      log.keepCurrent('late');
      assert.deepEqual(
        f.follows.map(([m]) => m),
        mids,
      );
    });
  },
);
