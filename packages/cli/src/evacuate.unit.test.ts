import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pool, spread } from './commands/evacuate.ts';

describe('evacuate', () => {
  it('spreads the CTs evenly over the targets, in a stable order', () => {
    assert.deepEqual(
      spread(['101', '102', '103', '104', '105'], ['node-b', 'node-c']).map((p) => `${p.ct}>${p.target}`),
      ['101>node-b', '102>node-c', '103>node-b', '104>node-c', '105>node-b'],
    );
  });

  it('runs at most N at a time and keeps each result at its item’s place', async () => {
    let running = 0;
    let most = 0;
    const gates: (() => void)[] = [];
    const done = pool([1, 2, 3, 4, 5], 2, async (x) => {
      most = Math.max(most, ++running);
      await new Promise<void>((r) => gates.push(r));
      running--;
      return x * 10;
    });
    // Open the gates one by one as workers reach them: never more than two wait at once.
    while (gates.length || running) {
      await new Promise((r) => setImmediate(r));
      gates.shift()?.();
    }
    assert.deepEqual(await done, [10, 20, 30, 40, 50]);
    assert.equal(most, 2);
  });
});
