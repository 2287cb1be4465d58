import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MigrationEvent } from '@haul/schemas';
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
  return { log, asked, append };
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
