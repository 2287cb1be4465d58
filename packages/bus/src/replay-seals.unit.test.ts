import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { migrationOfEventSubject, subjects } from './conventions.ts';
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

describe('the migration a subject of the event stream is', () => {
  it('given a subject whose last token is a migration id as the schemas define it, then that id', () => {
    assert.equal(
      migrationOfEventSubject(subjects.events('m-5eb54da9482fa09e01d9927c')),
      'm-5eb54da9482fa09e01d9927c',
    );
    assert.equal(migrationOfEventSubject('haul.events.aaaaaa'), 'aaaaaa');
  });
  it('given a valid subject token that is no migration id (too short, too long) or another stream, then none', () => {
    // Such a subject holds no event a reader believes: a replay from seals does not read it.
    for (const s of [
      'haul.events.ab',
      `haul.events.${'a'.repeat(65)}`,
      'haul.cmd.node-a.agent',
      'haul.events.',
    ])
      assert.equal(migrationOfEventSubject(s), undefined, s);
  });
});
