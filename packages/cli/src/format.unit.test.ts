import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MigrationEvent, MigrationStats } from '@haul/schemas';
import { eventDetail, formatStats } from './format.ts';

const stats: MigrationStats = {
  totalMs: 9000,
  downtimeMs: 2000,
  iterations: [],
  downtimeWindow: {
    windowMs: 2000,
    overheadMedianMs: 20,
    criticalPath: { steps: ['finalDump:-', 'restore:-'], hostMs: 1880, overheadMs: 120 },
    steps: [
      {
        key: 'finalDump:-',
        step: 'finalDump',
        node: 'node-a',
        ok: true,
        dispatchMs: 0,
        spanMs: 1000,
        queuedMs: 0,
        hostMs: 950,
        overheadMs: 50,
      },
      {
        key: 'restore:-',
        step: 'restore',
        node: 'node-b',
        ok: false,
        dispatchMs: 10,
        spanMs: 990,
        queuedMs: 0,
        hostMs: 930,
        overheadMs: 70,
      },
    ],
  },
};

describe('the stats as `haul status` and the demo print them', () => {
  it('show where the downtime went: host time and control overhead per step, and on the critical path', () => {
    const out = formatStats(stats);
    assert.match(
      out,
      /downtime window 2000 ms = 1880 ms in host tools and transfers \+ 120 ms control overhead/,
    );
    assert.match(out, /finalDump:- → restore:-/);
    assert.match(out, /control overhead per step: median 20\.0 ms/);
    assert.match(out, /finalDump:-\s+node-a\s+0\.0\s+0\.0\s+1000\.0\s+950\.0\s+50\.0/);
    assert.match(out, /restore:- failed\s+node-b\s+10\.0\s+0\.0\s+990\.0\s+930\.0\s+70\.0/);
  });
  it('leave the table out when there is no window (the CT was never frozen)', () => {
    assert.doesNotMatch(formatStats({ totalMs: 10, iterations: [] }), /downtime window/);
  });
});

describe('eventDetail of an operator request', () => {
  const event = (type: string, data: Record<string, unknown>) =>
    ({
      eventId: 'e',
      migrationId: 'm-1',
      type,
      time: '2026-01-01T01:00:00.000Z',
      actor: { service: 'coordinator', node: 'c' },
      data,
    }) as unknown as MigrationEvent;
  it('names who asked when the request was signed', () => {
    assert.equal(
      eventDetail(event('CancelRequested', { reason: 'window over', requestedBy: 'scheduler' })),
      'cancelled by scheduler: window over',
    );
    assert.equal(
      eventDetail(
        event('RetryRequested', { action: 'mergeOrigin:1', reason: 'fixed', requestedBy: 'scheduler' }),
      ),
      'retried mergeOrigin:1 by scheduler: fixed',
    );
    assert.equal(
      eventDetail(
        event('ActionResolved', {
          action: 'mergeOrigin:1',
          step: 'mergeOrigin',
          reason: 'merged',
          requestedBy: 'scheduler',
        }),
      ),
      'resolved mergeOrigin:1 by scheduler: merged',
    );
  });
  it('says the sender is unknown when it was not, in the words of haul status', () => {
    assert.equal(
      eventDetail(event('CancelRequested', { reason: 'x' })),
      'cancelled by an unknown identity (unsigned request): x',
    );
    assert.equal(
      eventDetail(event('RetryRequested', { action: 'mergeOrigin:1', reason: 'fixed' })),
      'retried mergeOrigin:1 by an unknown identity (unsigned request): fixed',
    );
  });
});
