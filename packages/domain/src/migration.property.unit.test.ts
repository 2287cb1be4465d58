import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { StepName } from '@haul/schemas';
import { brokenInvariants } from '../test/host-model.ts';
import { simulate, type Fault, type SimScenario } from '../test/simulate.ts';
import { planCleanup, planRollback, rankOf } from './plans.ts';
import { liveForwardSteps, restartForwardSteps, stepTable } from './steps.ts';

const faultArb = (mode: 'live' | 'restart'): fc.Arbitrary<Fault> => {
  const steps = (mode === 'live' ? liveForwardSteps : restartForwardSteps) as StepName[];
  return fc.oneof(
    fc.constant<Fault>({ kind: 'none' }),
    fc.record({
      kind: fc.constant('fail' as const),
      step: fc.constantFrom(...steps),
      nth: fc.integer({ min: 1, max: 3 }),
      partial: fc.boolean(),
    }),
    fc.record({
      kind: fc.constant('crash' as const),
      step: fc.constantFrom(...steps),
      nth: fc.integer({ min: 1, max: 3 }),
      partial: fc.boolean(),
    }),
    fc.record({ kind: fc.constant('cancel' as const), after: fc.integer({ min: 0, max: 70 }) }),
    ...(mode === 'live'
      ? [
          fc.record({ kind: fc.constant('lease' as const), after: fc.integer({ min: 0, max: 12 }) }),
          fc.record({ kind: fc.constant('reboot' as const), after: fc.integer({ min: 0, max: 60 }) }),
        ]
      : []),
  );
};

const scenarioArb: fc.Arbitrary<SimScenario> = fc
  .constantFrom('live' as const, 'restart' as const)
  .chain((mode) =>
    fc.record({
      mode: fc.constant(mode),
      sharedDisks: fc.integer({ min: 0, max: 3 }),
      localDisks: fc.integer({ min: 0, max: 2 }),
      pagesPerIteration: fc.array(fc.integer({ min: 0, max: 5000 }), { minLength: 1, maxLength: 10 }),
      memTrack: fc.boolean(),
      preDump: fc.constantFrom('on' as const, 'off' as const, 'auto' as const),
      fault: faultArb(mode),
      picks: fc.array(fc.nat(5), { maxLength: 20 }),
    }),
  );

describe('any migration history, with a fault injected anywhere', () => {
  it('ends in exactly one terminal event with every host invariant intact', () => {
    fc.assert(
      fc.property(scenarioArb, (sc) => {
        const r = simulate(sc);
        assert.ok(r.terminal, `no terminal event; last: ${r.events.at(-1)?.type}`);
        assert.deepEqual(brokenInvariants(r.host, r.terminal), []);
        const terminals = r.events.filter(
          (e) => e.type === 'MigrationCompleted' || e.type === 'MigrationRolledBack',
        );
        assert.equal(terminals.length, 1);
        // Rolled back exactly when the commit point was not reached; no fault means success.
        assert.equal(r.terminal === 'MigrationCompleted', r.state.committed);
        if (sc.fault.kind === 'none') assert.equal(r.terminal, 'MigrationCompleted');
        // A cancel the coordinator took (CancelRequested in the log) is carried out: never overtaken by the commit.
        if (r.events.some((e) => e.type === 'CancelRequested'))
          assert.equal(r.terminal, 'MigrationRolledBack');
        // Planning again on the finished log yields nothing (the plans are idempotent).
        assert.deepEqual(planRollback(r.events).length === 0 || r.terminal === 'MigrationCompleted', true);
        if (r.terminal === 'MigrationCompleted') assert.deepEqual(planCleanup(r.events), []);
        else assert.deepEqual(planRollback(r.events), []);
      }),
      { numRuns: 400 },
    );
  });

  it('plans, for every prefix of a successful history, the undo of exactly the effects so far, the source first', () => {
    fc.assert(
      fc.property(
        scenarioArb.filter((s) => s.fault.kind === 'none'),
        (sc) => {
          const { events } = simulate(sc);
          const commit = events.findIndex(
            (e) => e.type === 'StepSucceeded' && (e.data.step === 'restore' || e.data.step === 'startTarget'),
          );
          for (let n = 1; n <= commit; n++) {
            const prefix = events.slice(0, n);
            const plan = planRollback(prefix);
            const effectKeys = prefix
              .filter((e) => e.type === 'StepIntended' && stepTable[e.data.step].kind === 'forward')
              .map((e) =>
                e.type === 'StepIntended' ? `${e.data.step}:${e.data.commandId.split(':').at(-2)}` : '',
              )
              .filter((k) => !/^(preDump|streamImages|releaseSource|takeOwnership):/.test(k));
            const covered = new Set(plan.flatMap((a) => a.covers));
            for (const k of effectKeys) {
              if (k.startsWith('restore:') && !prefix.some((e) => e.type === 'RestoreStarted')) continue;
              assert.ok(covered.has(k), `prefix ${n}: effect ${k} has no compensation`);
            }
            // The source's CT first (stop the target, restore the shared disks, resume or start the source), the
            // target's leftovers after; within a rank, latest effect first.
            const pos = (k: string) =>
              prefix.findIndex(
                (e) =>
                  e.type === 'StepIntended' && `${e.data.step}:${e.data.commandId.split(':').at(-2)}` === k,
              );
            const at = plan.map((a) => [rankOf(a.step), -Math.max(...a.covers.map(pos))] as const);
            assert.deepEqual(
              at,
              [...at].sort((a, b) => a[0] - b[0] || a[1] - b[1]),
            );
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe('a failure at every forward step of a live migration with a shared and a local disk', () => {
  for (const step of liveForwardSteps) {
    for (const kind of ['fail', 'crash'] as const) {
      for (const partial of [false, true]) {
        const after = step === 'releaseSource' || step === 'takeOwnership';
        it(`${kind}${partial ? ' after a partial effect' : ''} at ${step}: ${after ? 'rolls forward' : 'rolls back'}, invariants hold`, () => {
          const r = simulate({
            mode: 'live',
            sharedDisks: 1,
            localDisks: 1,
            pagesPerIteration: [4000, 2000, 1000, 10],
            memTrack: true,
            preDump: 'auto',
            fault: { kind, step, nth: 1, partial },
            picks: [],
          });
          assert.deepEqual(brokenInvariants(r.host, r.terminal), []);
          // Past the commit point (takeOwnership, releaseSource) a failure is retried and the migration rolls forward; a restore in
          // doubt (the target agent died) is stopped by inspection before the source resumes.
          assert.equal(r.terminal, after ? 'MigrationCompleted' : 'MigrationRolledBack');
        });
      }
    }
  }
});
