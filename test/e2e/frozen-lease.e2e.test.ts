import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { followToEnd } from '@haul/cli';
import {
  awaitEvent,
  stepEvent,
  withRunningWorld,
  createToolGate,
  type FaultRule,
  type World,
  agentStateDir,
  until,
} from '@haul/test';

describe('node agent: the frozen lease (dead-man switch)', () => {
  it('with no decision within the lease, the CT resumes on the source and the migration rolls back', async () => {
    await withRunningWorld({ sharedDisks: 1, memoryMb: 16 }, async (w) => {
      const base = await w.baseline('node-a');
      const r = await w.migrate('lease-1', {
        preDump: 'off',
        frozenLeaseMs: 1500,
      });
      assert.ok(r.ok);
      if (!r.ok) return;
      // Nobody decides: the coordinator dies as soon as the CT is frozen.
      await awaitEvent(w.eventLog, r.migrationId, stepEvent('StepSucceeded', 'finalDump'));
      await w.services.get('coordinator')!.kill('SIGKILL');
      await resumedByLease(w, r.migrationId);
      await w.startCoordinator();
      const end = await followToEnd(w.eventLog, r.migrationId, () => {});
      assert.equal(end.type, 'MigrationRolledBack');
      assert.deepEqual(await w.brokenInvariants(r.migrationId, base), []);
    });
  });

  it('restores the shared disks before the thaw: writes after it survive a CT restart before any rollback', async () => {
    const { gate, rule } = finalImagesStuck('haul-lease-');
    try {
      await withRunningWorld({ sharedDisks: 1, memoryMb: 16, faults: [rule] }, async (w) => {
        // The final images cannot move (the source streamer dies once the local disk's live passes are done and the
        // final dump is decided): the migration cannot pass the shared-disk preparation. The coordinator dies once
        // the copy snapshot is made: nobody decides, the lease expires.
        const base = await w.baseline('node-a');
        // A lease long enough for the shared-disk preparation, even on a busy machine.
        const r = await w.migrate('lease-3', { preDump: 'off', frozenLeaseMs: 15_000 });
        assert.ok(r.ok, JSON.stringify(r));
        if (!r.ok) return;
        await streamerKilledAtFinalDump(w, r.migrationId, gate);
        await awaitEvent(w.eventLog, r.migrationId, stepEvent('StepSucceeded', 'snapshotCopy'));
        await w.services.get('coordinator')!.kill('SIGKILL');
        await w.services
          .get('agent-node-a')!
          .waitForLine(/frozen lease expired without a decision: CT resumed on the source/, 60_000);

        // Thawed: the descriptor names the disk's own chain again, no migration snapshot, no copy.
        const dd = join(w.shared[0]!, 'DiskDescriptor.xml');
        const chain = await w.cluster.ok('node-a', 'ploop', ['snapshot-list', '-H', '-o', 'uuid', dd]);
        assert.equal(chain.trim(), '{5fbaabe3-6958-40ff-92a7-860e329aab41}', 'only the base image');
        assert.ok(!existsSync(`${dd}.copy`), 'no descriptor copy left');

        // The CT writes to its shared disk, then restarts (a crash, an admin) before any rollback ran.
        const sharedWrites = () => journal(w).filter((l) => l.startsWith('1 ')).length;
        const before = sharedWrites();
        await until(
          () => sharedWrites() >= before + 5,
          'the CT writes to its shared disk after the thaw',
          30_000,
          100,
        );
        await w.cluster.ok('node-a', 'vzctl', ['--skipowner', '--skiplock', 'stop', w.ctid]);
        await w.startCt();
        await w.cluster.ok('node-a', 'haul-emu', ['freeze', w.ctid]);
        try {
          const view = JSON.parse(await w.cluster.ok('node-a', 'haul-emu', ['disk-view', dd])) as Record<
            string,
            string
          >;
          const expected = { ...base.views[1]! };
          for (const [disk, block, sha] of journal(w)
            .slice(base.journals['node-a'])
            .map((l) => l.split(' ')))
            if (disk === '1') expected[block!] = sha!;
          assert.deepEqual(view, expected, 'every write since the migration began is on the shared disk');
        } finally {
          await w.cluster.ok('node-a', 'haul-emu', ['thaw', w.ctid]);
        }

        // The rollback then finds the disk restored and ends with every invariant (the CT was restarted on purpose).
        await w.startStreamer('node-a');
        await w.startCoordinator();
        const end = await followToEnd(w.eventLog, r.migrationId, () => {});
        assert.equal(end.type, 'MigrationRolledBack');
        const pid = Number(
          readFileSync(join(w.cluster.nodeRoot('node-a'), 'var', 'run', 've', `${w.ctid}.init.pid`), 'utf8'),
        );
        assert.deepEqual(await w.brokenInvariants(r.migrationId, { ...base, pid }), []);
        assert.ok(gate.pid() !== undefined, 'the final dump waited at its gate');
      });
    } finally {
      gate.remove();
    }
  });

  /**
   * How a held dump's criu ends (the OOM killer, an operator): its group with it; or the `sh` alone, and criu waits
   * on at post-dump for a decision (the agent leaves it one: held.abandon); or its group while node-a's agent is dead
   * (the held dump lives on, a process group of its own), the agent started again after.
   */
  const criuEnds = {
    'criu killed': { groupOf: true, agentDead: false },
    'sh killed alone (criu waits on)': { groupOf: false, agentDead: false },
    'criu killed while its agent is dead': { groupOf: true, agentDead: true },
  } as const;
  for (const [how, { groupOf, agentDead }] of Object.entries(criuEnds))
    it(`a held dump's ${how} before the restore: the agent wins the fence at once (not at the lease; as it starts again when it was dead), the CT runs on the source, and the migration rolls back`, async () => {
      // No restore starts: the final images cannot move.
      const { gate, rule } = finalImagesStuck(
        `haul-lease-${groupOf ? 'criu' : 'sh'}${agentDead ? '-unwatched' : ''}-`,
      );
      try {
        await withRunningWorld({ sharedDisks: 1, memoryMb: 16, faults: [rule] }, async (w) => {
          const base = await w.baseline('node-a');
          // A lease of five minutes: only the criu's end can resume the CT within this test.
          const r = await w.migrate(`lease-${groupOf ? 'criu' : 'sh'}`, {
            preDump: 'off',
            frozenLeaseMs: 300_000,
          });
          assert.ok(r.ok, JSON.stringify(r));
          if (!r.ok) return;
          await streamerKilledAtFinalDump(w, r.migrationId, gate);
          await awaitEvent(w.eventLog, r.migrationId, stepEvent('StepSucceeded', 'finalDump'));

          // When the held dump's criu ends: on a real host, and now in the emulator, its CT's tasks run again
          // (criu/seize.c: the freezer is thawed, ptrace alone held them). criu.pid names the sh that runs criu.
          if (agentDead) await w.services.get('agent-node-a')!.kill('SIGKILL');
          const sh = heldSh(w, r.migrationId);
          process.kill(groupOf ? -sh : sh, 'SIGKILL');
          if (agentDead) {
            await until(
              async () => / running$/m.test(await w.cluster.ok('node-a', 'vzctl', ['status', w.ctid])),
              'the CT running again on node-a, unfrozen',
            );
            // Before, the agent started again did not act on that dump: the target's restore fence would have let
            // the CT start there too
            await w.startAgent('node-a');
          }

          // Then the agent wins the fence at once, the rollback follows, and the CT runs on the source only
          await resumedByLease(w, r.migrationId);
          await w.startStreamer('node-a');
          const end = await followToEnd(w.eventLog, r.migrationId, () => {});
          assert.equal(end.type, 'MigrationRolledBack');
          assert.deepEqual(await w.brokenInvariants(r.migrationId, base), []);
        });
      } finally {
        gate.remove();
      }
    });

  it("a held dump's criu killed after the target restore started: the agent kills the CT on the source at once (vzctl stop --fast), and the migration completes on the target", async () => {
    // The target's restore waits at a gate; a gate open from the start counts node-a's fast stops.
    const restore = createToolGate('haul-lease-restore-');
    const fastStop = createToolGate('haul-lease-fast-stop-');
    fastStop.open();
    const faults: FaultRule[] = [
      { tool: 'vzctl', sub: 'restore', node: 'node-b', call: 1, action: 'wait', waitFor: restore.file },
      {
        tool: 'vzctl',
        sub: 'stop',
        node: 'node-a',
        match: ' --fast$',
        action: 'wait',
        waitFor: fastStop.file,
      },
    ];
    try {
      // No disk writes: the source's tasks run again between criu's death and their kill, and what they wrote then
      // would be lost on the target (the invariants would say so, rightly).
      await withRunningWorld({ sharedDisks: 1, memoryMb: 16, diskWrites: 0, faults }, async (w) => {
        const base = await w.baseline('node-a');
        const r = await w.migrate('lease-fenced', { preDump: 'off', frozenLeaseMs: 300_000 });
        assert.ok(r.ok, JSON.stringify(r));
        if (!r.ok) return;
        await awaitEvent(w.eventLog, r.migrationId, (e) => e.type === 'RestoreStarted');
        await until(() => restore.pid() !== undefined, 'the target restore at its gate');

        // When the held dump's criu is killed with its group: the CT's tasks run again on the source
        process.kill(-heldSh(w, r.migrationId), 'SIGKILL');

        // Then the agent loses the fence to the restore and kills the CT there at once, without halting it
        await w.services
          .get('agent-node-a')!
          .waitForLine(/the target restore has started: stopping the CT on the source/, 30_000);
        await until(
          async () => / down$/m.test(await w.cluster.ok('node-a', 'vzctl', ['status', w.ctid])),
          'the CT stopped on node-a',
        );
        assert.ok(fastStop.pid() !== undefined, 'stopped by vzctl stop --fast');
        assert.ok(!(await w.events(r.migrationId)).some((e) => e.type === 'ResumedOnSource'));
        restore.open();
        const end = await followToEnd(w.eventLog, r.migrationId, () => {});
        assert.equal(end.type, 'MigrationCompleted');
        assert.deepEqual(await w.brokenInvariants(r.migrationId, base), []);
      });
    } finally {
      restore.remove();
      fastStop.remove();
    }
  });

  it('once the target restore has started, the source stays frozen past the lease', async () => {
    await withRunningWorld(
      {
        sharedDisks: 1,
        memoryMb: 16,
        faults: [{ tool: 'vzctl', sub: 'restore', call: 1, action: 'hang' }],
      },
      async (w) => {
        // The lease must outlast the shared-disk preparation before the restore starts (a 1.5 s lease expired
        // before it on a loaded machine), then expire while the restore hangs.
        const r = await w.migrate('lease-2', { preDump: 'off', frozenLeaseMs: 10_000 });
        assert.ok(r.ok);
        if (!r.ok) return;
        await awaitEvent(w.eventLog, r.migrationId, (e) => e.type === 'RestoreStarted');
        await w.services
          .get('agent-node-a')!
          .waitForLine(/lease expired but the target restore has started: keeping the CT frozen/, 60_000);
        const mem = JSON.parse(await w.cluster.ok('node-a', 'haul-emu', ['checksum-mem', w.ctid])) as {
          frozen: boolean;
        };
        assert.equal(mem.frozen, true, 'still frozen on the source');
        assert.ok(!(await w.events(r.migrationId)).some((e) => e.type === 'ResumedOnSource'));
        // The target agent's stop does not cancel a restore (killed half-way it would leave a CT half restored): it
        // is killed as systemd kills it past its stop timeout (KillMode=process), and the world's stop ends the hung
        // restore by its record, as the next agent would at its timeout.
        await w.services.get('agent-node-b')!.kill('SIGKILL');
      },
    );
  });
});

/** The pid of the `sh` that runs the held final dump's criu on node-a (its hold folder's criu.pid). */
function heldSh(w: World, migrationId: string): number {
  const held = join(agentStateDir(w.cluster.nodeRoot('node-a')), 'held', migrationId);
  return Number(readFileSync(join(held, 'criu.pid'), 'utf8'));
}

/** Until node-a's agent resumes the CT on the source by its lease (ResumedOnSource, reason lease-expired). */
async function resumedByLease(w: World, migrationId: string): Promise<void> {
  const resumed = await awaitEvent(w.eventLog, migrationId, (e) => e.type === 'ResumedOnSource', 30_000);
  assert.equal(resumed.type === 'ResumedOnSource' && resumed.data.reason, 'lease-expired');
}

/** The CT's block-write journal on node-a: `<disk index> <block> <sha256>` per write (0 = root, 1 = shared disk 0). */
function journal(w: World): string[] {
  const f = join(w.cluster.nodeRoot('node-a'), 'var', 'log', `ct-${w.ctid}.writes`);
  return existsSync(f) ? readFileSync(f, 'utf8').trim().split('\n').filter(Boolean) : [];
}

/**
 * The final dump's criu on node-a waits at a gate until the source streamer is dead (streamerKilledAtFinalDump), so
 * the final images cannot move however slowly the test gets to the kill: no restore can start.
 */
function finalImagesStuck(prefix: string): { gate: ReturnType<typeof createToolGate>; rule: FaultRule } {
  const gate = createToolGate(prefix);
  return {
    gate,
    rule: { tool: 'criu', sub: 'dump', node: 'node-a', call: 1, action: 'wait', waitFor: gate.file },
  };
}

/** Once the final dump is intended, node-a's streamer is killed and the dump let through its gate. */
async function streamerKilledAtFinalDump(
  w: World,
  migrationId: string,
  gate: ReturnType<typeof createToolGate>,
): Promise<void> {
  await awaitEvent(w.eventLog, migrationId, stepEvent('StepIntended', 'finalDump'));
  await w.services.get('streamer-node-a')!.kill('SIGKILL');
  gate.open();
}
