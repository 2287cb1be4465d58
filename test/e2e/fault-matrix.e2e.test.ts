import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { liveForwardSteps } from '@haul/domain';
import { followToEnd } from '@haul/cli';
import { startWorld, type FaultRule, type World } from '@haul/test';
import type { StepName } from '@haul/schemas';

/**
 * How to make each host step of a live migration fail. Steps that run a host tool fail through the emulators'
 * fault plan; the others through a fault of the host itself. The matrix is generated from the core's list of
 * forward steps, so a new step without an entry here fails this test.
 */
type Injection = {
  rules?: FaultRule[];
  /** Prepare the world before the migration; undo what was planted after it. */
  plant?: (w: World) => () => void;
  streamerEnv?: Record<string, Record<string, string>>;
  /** Rolled back before the commit point; completed after it. */
  expect: 'MigrationRolledBack' | 'MigrationCompleted';
};

const injections: Record<string, Injection> = {
  preflightTarget: {
    rules: [
      {
        tool: 'vzctl',
        sub: 'status',
        node: 'node-b',
        call: 1,
        action: 'fail',
        exitCode: 3,
        stderr: 'injected',
      },
    ],
    expect: 'MigrationRolledBack',
  },
  preflightSource: {
    rules: [
      {
        tool: 'vzctl',
        sub: 'status',
        node: 'node-a',
        call: 1,
        action: 'fail',
        exitCode: 3,
        stderr: 'injected',
      },
    ],
    expect: 'MigrationRolledBack',
  },
  preDump: {
    rules: [
      {
        tool: 'criu',
        sub: 'pre-dump',
        call: 2,
        action: 'fail',
        exitCode: 1,
        stderr: 'Error (criu/cr-dump.c): injected',
      },
    ],
    expect: 'MigrationRolledBack',
  },
  // The target streamer may only write below a folder that does not hold the image root: every offer is refused.
  streamImages: {
    streamerEnv: { 'node-b': { HAUL_STREAM_ROOTS: '/nonexistent-haul-root' } },
    expect: 'MigrationRolledBack',
  },
  finalDump: {
    rules: [
      {
        tool: 'criu',
        sub: 'dump',
        call: 1,
        action: 'fail',
        exitCode: 1,
        stderr: 'Error (criu/cr-dump.c): injected',
      },
    ],
    expect: 'MigrationRolledBack',
  },
  // A directory where the backup's temporary file must go: the copy fails (EISDIR), as on a broken disk.
  backupDescriptor: {
    plant: (w) => {
      const p = join(w.shared[0]!, 'DiskDescriptor.xml.copy.tmp');
      mkdirSync(p);
      return () => rmSync(p, { recursive: true, force: true });
    },
    expect: 'MigrationRolledBack',
  },
  snapshotOrigin: {
    rules: [
      {
        tool: 'ploop',
        sub: 'snapshot',
        match: '(^| )-o( |$)',
        call: 1,
        action: 'fail',
        exitCode: 156,
        stderr: 'injected',
      },
    ],
    expect: 'MigrationRolledBack',
  },
  snapshotCopy: {
    rules: [
      {
        tool: 'ploop',
        sub: 'snapshot',
        match: 'DiskDescriptor\\.copy\\.xml',
        call: 1,
        action: 'fail',
        exitCode: 156,
        stderr: 'injected',
      },
    ],
    expect: 'MigrationRolledBack',
  },
  // A file where the local disk's folder must be created on the target.
  copyLocalDisk: {
    plant: (w) => {
      const p = join(w.cluster.nodeRoot('node-b'), 'vz', 'private', w.ctid, 'root.hdd');
      mkdirSync(join(p, '..'), { recursive: true });
      writeFileSync(p, 'in the way');
      return () => rmSync(p, { force: true });
    },
    expect: 'MigrationRolledBack',
  },
  restore: {
    rules: [
      {
        tool: 'vzctl',
        sub: 'restore',
        call: 1,
        action: 'fail',
        exitCode: 17,
        stderr: 'Failed to restore the Container',
      },
    ],
    expect: 'MigrationRolledBack',
  },
  // After the commit point nothing is undone: the source agent dies as it commits, and the step is reconciled.
  releaseSource: { rules: [], expect: 'MigrationCompleted' },
};

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
      const w = await startWorld({
        sharedDisks: 1,
        memoryMb: 16,
        faults: inj.rules ?? [],
        env: { HAUL_STREAM_MAX_RETRIES: '1' },
      });
      try {
        await w.startCt();
        await w.startAll(inj.streamerEnv);
        const unplant = inj.plant?.(w);
        const base = await w.baseline('node-a');
        const r = await w.api.migrate({
          requestId: `fault-${step}`,
          ctid: w.ctid,
          source: 'node-a',
          target: 'node-b',
          sharedDisks: w.shared,
          preDump: 'on',
        });
        assert.ok(r.ok, JSON.stringify(r));
        if (!r.ok) return;
        let killed = false;
        const end = await followToEnd(w.eventLog, r.migrationId, (e) => {
          if (
            step === 'releaseSource' &&
            !killed &&
            e.type === 'StepIntended' &&
            e.data.step === 'releaseSource'
          ) {
            killed = true;
            void w.services
              .get('agent-node-a')!
              .kill('SIGKILL')
              .then(() => w.startAgent('node-a'));
          }
        });
        unplant?.();
        const events = await w.events(r.migrationId);
        if (inj.expect === 'MigrationRolledBack') {
          const failed = events.find((e) => e.type === 'StepFailed');
          assert.equal(
            failed?.type === 'StepFailed' && failed.data.step,
            step,
            `the first failure is at ${step}`,
          );
        }
        assert.equal(end.type, inj.expect);
        assert.deepEqual(await w.brokenInvariants(r.migrationId, base), []);
      } finally {
        await w.stop();
      }
    });
  }
});
