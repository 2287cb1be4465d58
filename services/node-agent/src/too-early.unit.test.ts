import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { limits } from '@haul/bus';
import { tooEarlyDelayMs } from './too-early.ts';

describe('a command that came too early goes back to the stream', () => {
  it('for commandTooEarlyMs at its first delivery, twice as long at each one after, never over the cap', () => {
    const delays = [1, 2, 3, 4, 5, 6, 10, 100].map(tooEarlyDelayMs);
    assert.deepEqual(delays.slice(0, 4), [250, 500, 1000, 2000]);
    assert.ok(delays.every((d) => d <= limits.commandTooEarlyMaxMs));
    assert.equal(delays.at(-1), limits.commandTooEarlyMaxMs);
    assert.equal(
      tooEarlyDelayMs(0),
      limits.commandTooEarlyMs,
      'a count the server did not give: the first wait',
    );
  });
});
