import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { liveForwardSteps } from '@haul/domain';
import { followToEnd } from '@haul/cli';
import { injections, withRunningWorld } from '@haul/test';
import type { StepName } from '@haul/schemas';

describe('fault matrix: a failure at every host step of a live migration with a shared disk', () => {
  it('has an injection for every forward step of the core', () => {
    assert.deepEqual(
      liveForwardSteps.filter((s) => !(s in injections)),
      [],
    );
  });

  for (const step of liveForwardSteps as StepName[]) {
    const inj = injections[step]!;
    it(`${step} fails → ${inj.expect}, every invariant holds`, async () => {
      await withRunningWorld(
        {
          sharedDisks: 1,
          memoryMb: 16,
          faults: inj.rules ?? [],
          env: { HAUL_STREAM_MAX_RETRIES: '1' },
        },
        async (w) => {
          const unplant = inj.plant?.(w);
          const base = await w.baseline('node-a');
          // Two pre-dumps: every forward step runs (preDump's fault is at the second), no more than that.
          const r = await w.migrate(`fault-${step}`, { preDump: 'on', maxIterations: 2 });
          assert.ok(r.ok, JSON.stringify(r));
          if (!r.ok) return;
          const end = await followToEnd(w.eventLog, r.migrationId, inj.watch?.(w) ?? (() => {}));
          unplant?.();
          const events = await w.events(r.migrationId);
          if (inj.expect === 'MigrationRolledBack') {
            const failed = events.find((e) => e.type === 'StepFailed');
            const first = failed?.type === 'StepFailed' ? failed.data.step : undefined;
            assert.ok(
              first !== undefined && [step, ...(inj.alsoFails ?? [])].includes(first),
              `the first failure is at ${step}, not ${first}`,
            );
          }
          assert.equal(end.type, inj.expect);
          assert.deepEqual(await w.brokenInvariants(r.migrationId, base), []);
        },
        inj.streamerEnv,
      );
    });
  }
});
