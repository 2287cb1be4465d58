import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MigrationEvent } from '@haul/schemas';
import { given } from '../test/decider-spec.ts';
import { liveScenario, meta, request, simulate } from '../test/simulate.ts';
import { fold } from './evolve.ts';
import { initialState } from './state.ts';
import { projectStatus } from './status.ts';

/**
 * Who asked, and why: each request an operator or scheduler makes (migrate, cancel, retry, resolve)
 * is recorded with the identity the coordinator verified it was signed by, and the status shows them all.
 */
const m = meta(Date.parse('2026-01-01T01:00:00.000Z'));
const statusOf = (log: MigrationEvent[]) => projectStatus(fold(log, initialState()), log.length)!;
const always = Number.POSITIVE_INFINITY;

/** The request alone: the migration waits for its preflight. */
const requested = (requestedBy?: string) =>
  given([]).when({
    kind: 'RequestMigration',
    migrationId: 'm-1',
    request: { ...request(liveScenario()), reason: 'rebalance' },
    imageRoots: { source: '/vz/haul', target: '/vz/haul' },
    ...(requestedBy === undefined ? {} : { requestedBy }),
    meta: m,
  });

describe('given a migration requested by the scheduler', () => {
  const log = requested('scheduler').then([
    { type: 'MigrationRequested', data: { requestedBy: 'scheduler' } },
  ]);
  it('the status says who asked and why', () => {
    const st = statusOf(log);
    assert.equal(st.requestedBy, 'scheduler');
    assert.equal(st.requestReason, 'rebalance');
    assert.equal(st.operatorActions, undefined);
  });
  it('a cancel signed by ops records ops, and the status lists it with its reason', () => {
    const cancelled = given(log)
      .when({ kind: 'Cancel', reason: 'maintenance window over', requestedBy: 'ops', meta: m })
      .then([{ type: 'CancelRequested' }]);
    assert.deepEqual(cancelled[0]!.data, { reason: 'maintenance window over', requestedBy: 'ops' });
    assert.deepEqual(statusOf([...log, ...cancelled]).operatorActions, [
      { kind: 'cancel', requestedBy: 'ops', reason: 'maintenance window over', at: m.now },
    ]);
  });
  it('an unsigned cancel records nobody, and the status lists it without a name', () => {
    const cancelled = given(log)
      .when({ kind: 'Cancel', reason: 'x', meta: m })
      .then([{ type: 'CancelRequested' }]);
    assert.deepEqual(cancelled[0]!.data, { reason: 'x' });
    assert.deepEqual(statusOf([...log, ...cancelled]).operatorActions, [
      { kind: 'cancel', reason: 'x', at: m.now },
    ]);
  });
});

describe('given an unsigned migration request', () => {
  it('the event and the status name nobody', () => {
    const log = requested().then([{ type: 'MigrationRequested' }]);
    assert.equal('requestedBy' in log[0]!.data, false);
    assert.equal(statusOf(log).requestedBy, undefined);
  });
});

describe('given a migration stuck on a cleanup action', () => {
  const { events } = simulate(liveScenario({ alsoFail: { step: 'mergeOrigin', times: always } }));
  it('a retry and then a resolve record who asked each, and the status lists both in order', () => {
    const retried = given(events)
      .when({ kind: 'Retry', reason: 'disk fixed', requestedBy: 'ops', meta: m })
      .then([{ type: 'RetryRequested' }]);
    assert.deepEqual(retried[0]!.data, { action: 'mergeOrigin:1', reason: 'disk fixed', requestedBy: 'ops' });
    // Both decided on the stuck log: the status only folds what the log holds.
    const resolved = given(events)
      .when({
        kind: 'Resolve',
        action: 'mergeOrigin:1',
        reason: 'merged by hand',
        requestedBy: 'ops',
        meta: m,
      })
      .then([{ type: 'ActionResolved' }]);
    assert.deepEqual(resolved[0]!.data, {
      action: 'mergeOrigin:1',
      step: 'mergeOrigin',
      reason: 'merged by hand',
      requestedBy: 'ops',
    });
    assert.deepEqual(
      statusOf([...events, ...retried, ...resolved]).operatorActions?.map((a) => [
        a.kind,
        a.action,
        a.requestedBy,
        a.reason,
      ]),
      [
        ['retry', 'mergeOrigin:1', 'ops', 'disk fixed'],
        ['resolve', 'mergeOrigin:1', 'ops', 'merged by hand'],
      ],
    );
  });
  it('an unsigned retry records nobody', () => {
    const [retried] = given(events)
      .when({ kind: 'Retry', reason: 'fixed', meta: m })
      .then([{ type: 'RetryRequested' }]);
    assert.equal('requestedBy' in retried!.data, false);
  });
});
