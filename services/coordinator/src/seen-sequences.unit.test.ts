import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createSeenSequences } from './seen-sequences.ts';

describe('the sequences a coordinator has seen', () => {
  it('covers a range once every sequence in it arrived, in any order', () => {
    const seen = createSeenSequences();
    for (const seq of [5, 6, 9, 7]) seen.saw(seq);
    assert.equal(seen.covered(5, 7), true);
    assert.equal(seen.covered(6, 9), false); // 8 never came
    seen.saw(8);
    assert.equal(seen.covered(5, 9), true);
  });

  it('knows nothing before the first sequence it saw, nor after the last', () => {
    const seen = createSeenSequences();
    seen.saw(10);
    seen.saw(11);
    assert.equal(seen.covered(9, 11), false);
    assert.equal(seen.covered(10, 12), false);
    assert.equal(seen.covered(10, 11), true);
  });

  it('covers an empty range always (the event is right after the folded one)', () => {
    const seen = createSeenSequences();
    assert.equal(seen.covered(4, 3), true);
  });

  it('forgets the oldest holes when there are too many, and never claims what it forgot', () => {
    // Another coordinator on the same consumer takes every other message
    const seen = createSeenSequences();
    for (let seq = 1; seq <= 5000; seq += 2) seen.saw(seq);
    assert.equal(seen.covered(1, 3), false);
    assert.equal(seen.covered(4999, 4999), true);
    assert.equal(seen.covered(4997, 4999), false);
  });
});
