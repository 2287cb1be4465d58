import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { followToEnd } from '@haul/cli';
import { injections, withRunningWorld, type FaultRule } from '@haul/test';
import type { MigrationEvent } from '@haul/schemas';

/**
 * kill -9 the coordinator right after each kind of event (each event type, and each step for step events), start
 * it again, and check the migration still ends right. A second coordinator runs all along, so the two also race
 * on the same migrations (compare-and-set decides).
 */
const kindOf = (e: MigrationEvent) =>
  e.type === 'StepIntended' || e.type === 'StepSucceeded' || e.type === 'StepFailed'
    ? `${e.type}:${e.data.step}`
    : e.type;

for (const [name, faults, expected] of [
  ['a successful migration', [], 'MigrationCompleted'],
  ['a migration that rolls back at snapshotCopy', injections['snapshotCopy']!.rules!, 'MigrationRolledBack'],
] as [string, FaultRule[], MigrationEvent['type']][]) {
  describe(`coordinator crashes during ${name}`, () => {
    it(`survives kill -9 after every kind of event and ends ${expected} with the invariants intact`, async () => {
      await withRunningWorld({ sharedDisks: 1, memoryMb: 16, faults }, async (w) => {
        await w.startCoordinator('coordinator-2');
        const base = await w.baseline('node-a');
        const r = await w.migrate(`crash-${expected}`, {
          preDump: 'on',
          maxIterations: 2,
        });
        assert.ok(r.ok, JSON.stringify(r));
        if (!r.ok) return;
        const seen = new Set<string>();
        let chain: Promise<unknown> = Promise.resolve();
        let kills = 0;
        const end = await followToEnd(w.eventLog, r.migrationId, (e) => {
          const kind = kindOf(e);
          if (seen.has(kind) || e.type === 'MigrationCompleted' || e.type === 'MigrationRolledBack') return;
          seen.add(kind);
          chain = chain.then(async () => {
            await w.services.get('coordinator')!.kill('SIGKILL');
            kills++;
            await w.startCoordinator('coordinator');
          });
        });
        await chain;
        assert.equal(end.type, expected);
        assert.ok(kills >= 10, `killed ${kills} times`);
        assert.deepEqual(await w.brokenInvariants(r.migrationId, base), []);
      });
    });
  });
}
