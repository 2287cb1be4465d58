import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MigrationEvent } from '@haul/schemas';
import { liveScenario, simulate } from '../test/simulate.ts';
import { maxLivePasses, nextLivePass, smallPassBytes } from './disk-passes.ts';
import { fold } from './evolve.ts';
import { planRollback } from './plans.ts';
import { initialState } from './state.ts';

const keyOf = (e: MigrationEvent) =>
  e.type === 'StepIntended' ? `${e.data.step}:${e.data.commandId.split(':').at(-2)}` : '';
const happy = simulate(liveScenario({ sharedDisks: 1, localDisks: 1 })).events;
const intents = happy.map(keyOf).filter((k) => k !== '');

/** A log whose local disk 0 had live passes that moved these many bytes (all succeeded). */
function withPasses(bytes: number[]) {
  const s = fold(
    happy.slice(0, happy.findIndex((e) => keyOf(e) === 'copyLocalDisk:0.0') + 1),
    initialState(),
  );
  const first = s.steps['copyLocalDisk:0.0']!;
  let out = s;
  bytes.forEach((b, k) => {
    const key = `copyLocalDisk:0.${k}`;
    const rec = { ...first, key, subject: `0.${k}`, status: 'succeeded' as const };
    out = {
      ...out,
      steps: { ...out.steps, [key]: { ...rec, result: { bytes: b, files: 1, durationMs: 1, mbPerSec: 1 } } },
    };
  });
  return out;
}

describe('the live passes of a local disk', () => {
  it('run before the freeze, and only the last pass is in the frozen window', () => {
    const freeze = intents.indexOf('finalDump:-');
    const passes = intents.filter((k) => k.startsWith('copyLocalDisk:'));
    assert.deepEqual(passes, ['copyLocalDisk:0.0', 'copyLocalDisk:0.1', 'copyLocalDisk:0']);
    assert.ok(intents.indexOf('copyLocalDisk:0.1') < freeze && intents.indexOf('copyLocalDisk:0') > freeze);
    const frozen = happy.find((e) => keyOf(e) === 'copyLocalDisk:0');
    assert.ok(frozen?.type === 'StepIntended' && frozen.data.step === 'copyLocalDisk');
    if (frozen?.type === 'StepIntended' && frozen.data.step === 'copyLocalDisk') {
      assert.deepEqual(frozen.data.args.pass, { index: 2, final: true });
      assert.equal(frozen.data.args.priority, 'final');
    }
  });
  it('go on while a pass after the first moves more than a small amount, at most ploop copy’s count', () => {
    assert.deepEqual(nextLivePass(withPasses([1e9]), 0), { send: 1 });
    assert.deepEqual(nextLivePass(withPasses([1e9, 2 * smallPassBytes]), 0), { send: 2 });
    assert.deepEqual(nextLivePass(withPasses([1e9, smallPassBytes]), 0), { ready: 2 });
    const many = Array.from({ length: maxLivePasses }, () => 1e9);
    assert.deepEqual(nextLivePass(withPasses(many), 0), { ready: maxLivePasses });
  });
  it('a failed live pass rolls back before anything is frozen: the target copy is removed, the source only read', () => {
    const failed = simulate(
      liveScenario({
        sharedDisks: 1,
        localDisks: 1,
        fault: { kind: 'fail', step: 'copyLocalDisk', nth: 2, partial: true },
      }),
    ).events;
    const keys = failed.map(keyOf).filter((k) => k !== '');
    assert.ok(!keys.includes('finalDump:-'), keys.join(' '));
    assert.equal(failed.at(-1)?.type, 'MigrationRolledBack');
    const atFailure = failed.slice(0, failed.findIndex((e) => e.type === 'RollbackStarted') + 1);
    const plan = planRollback(atFailure);
    const disk = plan.find((a) => a.key === 'removeFiles:target-disk0');
    assert.deepEqual(disk?.covers, ['copyLocalDisk:0.0', 'copyLocalDisk:0.1']);
    // On the source: only haul's own image folder removed and the CT lock haul took released.
    const sourceSteps = new Set(plan.filter((a) => a.role === 'source').map((a) => a.step));
    assert.deepEqual([...sourceSteps].sort(), ['removeFiles', 'unlockSource'], JSON.stringify(plan));
  });
});
