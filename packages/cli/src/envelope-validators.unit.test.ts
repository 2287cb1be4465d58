import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MigrationEvent } from '@haul/schemas';
import { envelopeValidators } from './envelope-validators.ts';
import { formatEvent } from './format.ts';

const event = {
  eventId: 'm-1:x',
  migrationId: 'm-1',
  type: 'SomethingNewer',
  actor: { service: 'coordinator', node: 'c' },
  time: '2026-01-01T00:00:00.000Z',
  schemaVersion: 1,
  data: {},
};

describe('what the CLI checks of the events it reads', () => {
  it('takes an event envelope, even of a type it does not know, and shows its envelope', () => {
    const r = envelopeValidators.validate<MigrationEvent>('event', event);
    assert.ok(r.ok);
    assert.match(formatEvent(r.value, 7), /^00:00:00\.000 +7 m-1 c\/coordinator +SomethingNewer/);
  });
  it('refuses what is not an event envelope', () => {
    for (const bad of [
      null,
      'x',
      { ...event, data: null },
      { ...event, type: 3 },
      { ...event, actor: undefined },
    ])
      assert.equal(envelopeValidators.validate('event', bad).ok, false);
  });
  it('takes a transfer report with the fields the live view prints, and refuses one without them', () => {
    const report = {
      migrationId: 'm-1',
      commandId: 'm-1:streamImages:0:1',
      node: 'node-a',
      time: '2026-01-01T00:00:00.000Z',
      bytesDone: 1,
      bytesTotal: 2,
      mbPerSec: 0.5,
      etaMs: 2000,
      waiting: { reason: 'priority', since: '2026-01-01T00:00:00.000Z' },
    };
    assert.ok(envelopeValidators.validate('transferProgress', report).ok);
    for (const bad of [{ ...report, bytesDone: '1' }, { ...report, waiting: { reason: 'nap' } }, event])
      assert.equal(envelopeValidators.validate('transferProgress', bad).ok, false);
  });
});
