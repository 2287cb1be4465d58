import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { notHandedOn } from './replay-seals.ts';
import type { SealMessage } from './trust/event-judge.ts';

const sealOn = (subject: string) => ({ seal: { raw: { subject } } as SealMessage });

describe('a replay from seals whose consumer was made again', () => {
  it('given seals taken, logs to read and seals not judged yet, then every log not handed on is read whole', () => {
    const [a, b, c, d] = [
      'haul.events.aaaaaa',
      'haul.events.bbbbbb',
      'haul.events.cccccc',
      'haul.events.dddddd',
    ];
    // a: its seal taken; b: to read up to 5; c: its seal not judged yet; d: counted, not met before the consumer was
    // made again.
    const unread = new Map([[b, 5]]);
    notHandedOn(
      { counts: new Map([a, b, c, d].map((s) => [s, 3])), firstSeq: 1 },
      new Set([a, b, c]),
      unread,
      [sealOn(c)],
    );
    assert.deepEqual(
      [...unread].sort(),
      [
        [b, 5],
        [c, Infinity],
        [d, Infinity],
      ],
      'a was handed on already',
    );
  });
});
