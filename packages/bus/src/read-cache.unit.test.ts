import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MigrationEvent } from '@haul/schemas';
import { ConcurrencyConflictError } from './errors.ts';
import { withReadCache, type EventLog, type StoredEvent } from './event-log.ts';

/** A log of stored events per migration, and the `afterSeq` of every read that reached it. */
function fakeLog() {
  const stream: { mid: string; seq: number }[] = [];
  const asked: [string, number][] = [];
  const stored = (mid: string, seq: number): StoredEvent => ({
    seq,
    event: { migrationId: mid, eventId: `${mid}-${seq}` } as unknown as MigrationEvent,
  });
  const log = {
    read(mid: string, opts: { afterSeq?: number } = {}) {
      const after = opts.afterSeq ?? 0;
      asked.push([mid, after]);
      const mine = stream.filter((m) => m.mid === mid);
      return Promise.resolve({
        events: mine.filter((m) => m.seq > after).map((m) => stored(mid, m.seq)),
        lastSeq: mine.at(-1)?.seq ?? 0,
      });
    },
  } as unknown as EventLog;
  const append = (mid: string) => stream.push({ mid, seq: stream.length + 1 });
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
  return { log, asked, append, appends };
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
    const log = withReadCache(f.log, 2);
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
