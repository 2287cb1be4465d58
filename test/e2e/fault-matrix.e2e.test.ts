import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { liveForwardSteps } from '@haul/domain';
import { followToEnd } from '@haul/cli';
import {
  injections,
  moreInjections,
  withRunningWorld,
  worldTakingTurns,
  type CtWorld,
  type Injection,
} from '@haul/test';
import type { StepName } from '@haul/schemas';

/** Every case's world: one shared disk, a small CT, a stream given up after one retry. */
/** Far beyond a case's time on a busy 2-core machine (10-25 s). */
const caseTimeoutMs = 240_000;
const worldOptions = { sharedDisks: 1, memoryMb: 16, env: { HAUL_STREAM_MAX_RETRIES: '1' } };

describe('fault matrix: a failure at every host step of a live migration with a shared disk', () => {
  // The cases take turns in one world, each with a CT of its own and its own fault plan: a world start costs more
  // than a migration here. A case begins on the nodes, services and storage the cases before it left; its invariants
  // are those of its own CT and migration (and the storage's record of double attaches, which is the whole
  // cluster's). A case whose streamers need settings of their own gets its own world. A case that does not end in
  // time fails instead of holding up the ones after it.
  const shared = worldTakingTurns(worldOptions);
  before(() => shared.start());
  after(() => shared.stop());

  it('has an injection for every forward step of the core', () => {
    assert.deepEqual(
      liveForwardSteps.filter((s) => !(s in injections)),
      [],
    );
  });

  /** One case: the migration with the step's fault, how it ended, and every invariant after it. */
  /** One case (`name`: its request's, which no other case shares: a request sent again is the same migration). */
  const caseOf = (name: string, step: StepName, inj: Injection) => async (w: CtWorld) => {
    const unplant = inj.plant?.(w);
    const base = await w.baseline('node-a');
    // Two pre-dumps: every forward step runs (preDump's fault is at the second), no more than that.
    const r = await w.migrate(name, { preDump: 'on', maxIterations: 2 });
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
      // A failure of a tool keeps what the tool said, whatever code the step gives it.
      if (inj.code && failed?.type === 'StepFailed') {
        assert.equal(failed.data.error.code, inj.code, JSON.stringify(failed.data.error));
        assert.ok(failed.data.error.command?.length, JSON.stringify(failed.data.error));
      }
    }
    assert.equal(end.type, inj.expect);
    assert.deepEqual(await w.brokenInvariants(r.migrationId, base), []);
  };
  const runCase = (name: string, step: StepName, inj: Injection) =>
    inj.streamerEnv
      ? withRunningWorld(
          { ...worldOptions, faults: inj.rules ?? [] },
          caseOf(name, step, inj),
          inj.streamerEnv,
        )
      : shared.turn(inj.rules ?? [], caseOf(name, step, inj));

  for (const step of liveForwardSteps as StepName[]) {
    const inj = injections[step]!;
    it(`${step} fails → ${inj.expect}, every invariant holds`, { timeout: caseTimeoutMs }, () =>
      runCase(`fault-${step}`, step, inj),
    );
  }
  for (const { step, what, injection } of moreInjections)
    it(`${step} fails ${what} → ${injection.expect}, every invariant holds`, { timeout: caseTimeoutMs }, () =>
      runCase(`fault-${step}-${what.replaceAll(' ', '-')}`, step, injection),
    );
});
