import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { liveScenario, simulate } from '../../domain/test/simulate.ts';
import type { MigrationEvent } from '@haul/schemas';
import { outcomeOf, overBudget } from './outcome.ts';

describe('the exit outcome of a finished migration', () => {
  it('is completed when it completed', () => {
    assert.equal(outcomeOf(simulate(liveScenario()).events), 'completed');
  });
  it('is rejected when a preflight check failed: the CT was never touched', () => {
    const r = simulate(
      liveScenario({ fault: { kind: 'fail', step: 'preflightSource', nth: 1, partial: false } }),
    );
    assert.equal(r.terminal, 'MigrationRolledBack');
    assert.equal(outcomeOf(r.events), 'rejected');
  });
  it('is rejected when someone else holds the CT lock: the CT was never touched', () => {
    const r = simulate(liveScenario({ fault: { kind: 'fail', step: 'lockSource', nth: 1, partial: false } }));
    assert.equal(outcomeOf(r.events), 'rejected');
  });
  it('is rolled back when it rolled back after the preflight', () => {
    const r = simulate(
      liveScenario({ fault: { kind: 'fail', step: 'snapshotCopy', nth: 1, partial: true } }),
    );
    assert.equal(outcomeOf(r.events), 'rolledBack');
  });
  it('is rolled back, not rejected, when an operator cancelled it during the preflight', () => {
    const r = simulate(liveScenario({ fault: { kind: 'cancel', after: 2 } }));
    assert.equal(r.terminal, 'MigrationRolledBack');
    assert.equal(outcomeOf(r.events), 'rolledBack');
  });
  it('is none while the migration has not ended', () => {
    assert.equal(outcomeOf(simulate(liveScenario()).events.slice(0, 5)), undefined);
  });
});

describe('a migration that completed over its downtime budget', () => {
  const events = simulate(liveScenario()).events;
  const withBudget = (budgetMs: number, downtimeMs: number): MigrationEvent[] =>
    events.map((e) =>
      e.type === 'MigrationRequested'
        ? { ...e, data: { ...e.data, request: { ...e.data.request, maxDowntimeMs: budgetMs } } }
        : e.type === 'MigrationCompleted'
          ? { ...e, data: { stats: { ...e.data.stats, downtimeMs } } }
          : e,
    );
  it('has its own outcome, with the downtime and the budget', () => {
    assert.equal(outcomeOf(withBudget(500, 24_500)), 'overBudget');
    assert.deepEqual(overBudget(withBudget(500, 24_500)), { downtimeMs: 24_500, budgetMs: 500 });
  });
  it('is completed when the downtime kept the budget, or there was none', () => {
    assert.equal(outcomeOf(withBudget(500, 500)), 'completed');
    assert.equal(overBudget(events), undefined);
  });
});
