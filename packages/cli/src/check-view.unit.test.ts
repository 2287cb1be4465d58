import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CheckAnswered, DowntimePrediction } from '@haul/schemas';
import { printDowntime, showCheck } from './check-view.ts';
import type { Context } from './command.ts';
import { createOutput } from './output.ts';

/** A context whose output goes into a string, as to a pipe (no width limit). */
function context(json = false) {
  const s = { written: '', said: '', write: (x: string) => (s.written += x) };
  const ctx = {
    out: createOutput(s, {}),
    json,
    say: (x: string) => (s.said += `${x}\n`),
  } as unknown as Context;
  return { s, ctx };
}

/** What predictDowntime answers for CT 101, never migrated, with one local disk: everything but memory assumed. */
const estimate: DowntimePrediction = {
  predictedMs: 1026,
  basis: 'estimate',
  inputs: {
    memoryBytes: { value: 64e6, from: 'inspected' },
    dumpedBytes: { value: 64e6, from: 'assumed' },
    dumpBytesPerSec: { value: 500e6, from: 'assumed' },
    linkBytesPerSec: { value: 100e6, from: 'assumed' },
    restoreBytesPerSec: { value: 500e6, from: 'assumed' },
    frozenDiskBytes: { value: 3e6, from: 'assumed' },
  },
  note: 'the final dump is counted as …; assumed: dump 500 MB/s, link 100 MB/s, restore 500 MB/s',
};

const measured = {
  from: 'measured' as const,
  migrationId: 'm-1',
  ctid: '101',
  source: 'node-a',
  target: 'node-b',
};
/** The same CT after a migration that measured everything. */
const history: DowntimePrediction = {
  predictedMs: 412.5,
  basis: 'history',
  inputs: {
    memoryBytes: { value: 64e6, from: 'inspected' },
    dumpedBytes: { value: 2e6, ...measured },
    dirtyPagesPerSec: { value: 310, ...measured },
    iterationMs: { value: 820, ...measured },
    dumpBytesPerSec: { value: 2.1e8, ...measured },
    linkBytesPerSec: { value: 50e6, ...measured, cappedByRequest: true },
    restoreBytesPerSec: { value: 1e9, ...measured },
    frozenDiskBytes: { value: 0, from: 'inspected' },
  },
  note: 'the final dump carries what CT 101 dirties in one pre-dump window at the dirty rate m-1 measured',
};

describe('given a prediction for a CT never migrated (an estimate)', () => {
  it('when printed: its basis, and every input with where it came from', () => {
    const { s, ctx } = context();
    printDowntime(ctx, estimate);
    const lines = s.written.split('\n');
    assert.equal(
      lines[0],
      'downtime: ~1.0s (estimate, assumed: final dump, dump speed, link, frozen disk pass, restore speed)',
    );
    assert.equal(lines[1], `  ${estimate.note}`);
    assert.match(s.written, /resident memory +64\.0 MB +inspected now/);
    assert.match(s.written, /final dump +64\.0 MB +assumed: every resident page dirtied/);
    assert.match(s.written, /link +100 MB\/s +assumed: no migration between these nodes measured it/);
    assert.match(s.written, /frozen disk pass +3\.0 MB +assumed: one converged live pass per local disk/);
    assert.doesNotMatch(s.written, /^dirty rate/m, 'no dirty rate was used');
  });
});

describe('given a prediction whose only assumption is the whole memory as the final dump', () => {
  it('when printed: a ceiling, `at most`', () => {
    const { s, ctx } = context();
    const inputs = { ...history.inputs!, dumpedBytes: { value: 64e6, from: 'assumed' as const } };
    const { dirtyPagesPerSec: _d, iterationMs: _i, ...speeds } = inputs;
    printDowntime(ctx, { ...history, basis: 'estimate', inputs: speeds, note: 'at most: …' });
    assert.match(s.written, /^downtime: at most ~413ms \(estimate, assumed: final dump\)\n {2}at most: …\n/);
  });
});

describe('given a prediction from the CT’s last migration (history)', () => {
  it('when printed: predicted, not a ceiling; the migration that measured each input named', () => {
    const { s, ctx } = context();
    printDowntime(ctx, history);
    assert.match(s.written, /^downtime: ~413ms \(history\)\n {2}the final dump carries/);
    assert.match(s.written, /dirty rate +310 pages\/s +measured by m-1 \(CT 101, node-a → node-b\)/);
    assert.match(s.written, /pre-dump window +820ms +measured by m-1/);
    assert.match(s.written, /link +50 MB\/s +--bandwidth limit; measured by m-1/);
  });
});

describe('given no prediction', () => {
  it('when printed: why there is none', () => {
    const { s, ctx } = context();
    printDowntime(ctx, { note: 'restart mode: …' });
    assert.equal(s.written, 'downtime: no prediction (restart mode: …)\n');
  });
});

describe('given a check that would work, with --json', () => {
  it('when shown: the reply as one JSON object, the prediction’s basis and inputs in it; exit completed', () => {
    const { s, ctx } = context(true);
    const reply: CheckAnswered = {
      ok: true,
      wouldWork: true,
      ctid: '101',
      source: 'node-a',
      target: 'node-b',
      mode: 'live',
      disks: [],
      copy: { localDiskBytes: 0 },
      downtime: estimate,
    };
    assert.equal(showCheck(ctx, reply), 'completed');
    const back = JSON.parse(s.written) as CheckAnswered;
    assert.equal(back.downtime.basis, 'estimate');
    assert.deepEqual(back.downtime.inputs?.linkBytesPerSec, { value: 100e6, from: 'assumed' });
  });
});
