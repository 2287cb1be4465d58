import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decideConvergence, predictFrozenMs } from './convergence.ts';

describe("P.Haul's convergence rules", () => {
  const base = { maxIterations: 9 };
  it('stops on a small dump (≤ 64 pages)', () => {
    assert.equal(
      decideConvergence({ ...base, iteration: 2, pagesWritten: 64, prevPagesWritten: 1000 }).reason,
      'small-dump',
    );
  });
  it('stops when pages written grew by more than 10 %', () => {
    const d = decideConvergence({ ...base, iteration: 2, pagesWritten: 1101, prevPagesWritten: 1000 });
    assert.deepEqual(
      [d.decision, d.reason, d.numbers.growthPercent],
      ['final-dump', 'iteration-grows', 10.1],
    );
  });
  it('goes on at exactly 10 % growth', () => {
    assert.equal(
      decideConvergence({ ...base, iteration: 2, pagesWritten: 1100, prevPagesWritten: 1000 }).decision,
      'continue',
    );
  });
  it('stops at iteration index 8 (nine pre-dumps)', () => {
    assert.equal(
      decideConvergence({ ...base, iteration: 8, pagesWritten: 900, prevPagesWritten: 1000 }).reason,
      'too-many-iterations',
    );
    assert.equal(
      decideConvergence({ ...base, iteration: 7, pagesWritten: 900, prevPagesWritten: 1000 }).decision,
      'continue',
    );
  });
  it('never continues past the iteration limit, whatever the numbers', () => {
    fc.assert(
      fc.property(
        fc.nat(20),
        fc.nat(100000),
        fc.option(fc.nat(100000), { nil: undefined }),
        fc.integer({ min: 1, max: 9 }),
        (i, pages, prev, max) => {
          const input = {
            iteration: i,
            pagesWritten: pages,
            maxIterations: max,
            ...(prev === undefined ? {} : { prevPagesWritten: prev }),
          };
          const d = decideConvergence(input);
          if (i >= max - 1) assert.notEqual(d.decision, 'continue');
          assert.notEqual(d.decision, 'abort');
        },
      ),
    );
  });
});

describe('downtime budget mode', () => {
  const measured = {
    maxIterations: 9,
    prevPagesWritten: 20000,
    dirtyPagesPerSec: 1000,
    iterationMs: 1000,
    dumpBytesPerSec: 400e6,
    bandwidthBytesPerSec: 100e6,
  };
  it('predicts the frozen time from dirty rate, dump speed and bandwidth', () => {
    // 1000 pages ≈ 4.1 MB: 10.24 ms to dump + 40.96 ms to stream + 100 ms fixed
    assert.equal(Math.round(predictFrozenMs({ ...measured, iteration: 1, pagesWritten: 15000 })!), 151);
  });
  it('stops as soon as the prediction fits, and says so with its numbers', () => {
    const d = decideConvergence({
      ...measured,
      iteration: 1,
      pagesWritten: 15000,
      budget: { maxDowntimeMs: 200, policy: 'abort' },
    });
    assert.deepEqual([d.decision, d.reason], ['final-dump', 'fits-budget']);
    assert.equal(d.numbers.maxDowntimeMs, 200);
    assert.ok(d.numbers.predictedFrozenMs! > 150);
  });
  it('keeps iterating while it does not fit and the dump shrinks', () => {
    assert.equal(
      decideConvergence({
        ...measured,
        iteration: 1,
        pagesWritten: 15000,
        budget: { maxDowntimeMs: 120, policy: 'abort' },
      }).decision,
      'continue',
    );
  });
  it('applies the policy when it never fits: abort or proceed', () => {
    const grows = {
      ...measured,
      iteration: 3,
      pagesWritten: 30000,
      budget: { maxDowntimeMs: 120, policy: 'abort' as const },
    };
    assert.deepEqual(Object.values(decideConvergence(grows)).slice(0, 2), ['abort', 'budget-never-fits']);
    assert.deepEqual(
      Object.values(decideConvergence({ ...grows, budget: { maxDowntimeMs: 120, policy: 'proceed' } })).slice(
        0,
        2,
      ),
      ['final-dump', 'budget-never-fits'],
    );
  });
});
