import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inLanes } from './lanes.ts';

describe('inLanes: tasks from several lanes at once', () => {
  it('given a task that fails while others run, then no task starts after it, and it settles only once every lane has ended', async () => {
    const lanes = 3;
    // Given ten tasks, each waiting for the test to end it
    const ends: { open: () => void; fail: (e: Error) => void }[] = [];
    const started: number[] = [];
    let settled = false;
    const run = inLanes(
      10,
      (i) => {
        started.push(i);
        return new Promise<void>((open, fail) => (ends[i] = { open, fail }));
      },
      lanes,
    ).finally(() => (settled = true));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(
      started,
      Array.from({ length: lanes }, (_, i) => i),
    );

    // When the first fails while the second still runs
    ends[0]!.fail(new Error('short read'));
    await new Promise((r) => setImmediate(r));

    // Then nothing more starts, and it has not settled while a lane still reads
    assert.deepEqual(
      started,
      Array.from({ length: lanes }, (_, i) => i),
    );
    assert.equal(settled, false);
    for (let i = 1; i < lanes; i++) ends[i]!.open();
    await assert.rejects(run, /short read/);
    assert.deepEqual(
      started,
      Array.from({ length: lanes }, (_, i) => i),
    );
  });

  it('given tasks that all succeed, then each runs once', async () => {
    const done: number[] = [];
    await inLanes(25, async (i) => {
      await new Promise((r) => setImmediate(r));
      done.push(i);
    });
    assert.deepEqual(
      [...done].sort((a, b) => a - b),
      Array.from({ length: 25 }, (_, i) => i),
    );
  });
});
