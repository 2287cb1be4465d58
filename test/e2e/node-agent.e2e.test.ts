import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { encodeJson, subjects } from '@haul/bus';
import { followToEnd } from '@haul/cli';
import {
  awaitEvent,
  publishAs,
  withRunningWorld,
  worldTakingTurns,
  type CtWorld,
  type FaultRule,
  type World,
} from '@haul/test';
import type { MigrationEvent } from '@haul/schemas';

const outcomes = (events: MigrationEvent[]) =>
  events.filter((e) => e.type === 'StepSucceeded' || e.type === 'StepFailed');

async function run(
  w: CtWorld,
  extra: Record<string, unknown> = {},
  onEvent: (e: MigrationEvent) => void = () => {},
) {
  const base = await w.baseline('node-a');
  const r = await w.migrate(`agent-${Date.now()}`, {
    preDump: 'on',
    maxIterations: 2,
    ...extra,
  });
  assert.ok(r.ok, JSON.stringify(r));
  if (!r.ok) throw new Error('rejected');
  const end = await followToEnd(w.eventLog, r.migrationId, onEvent);
  return { id: r.migrationId, end, base, events: await w.events(r.migrationId) };
}

describe('node agent: every command delivered twice', () => {
  it('runs each effect once and records one outcome per command', async () => {
    await withRunningWorld({ sharedDisks: 1, memoryMb: 16 }, async (w) => {
      // Replays of the coordinator's own signed commands: the same bytes and signature, to the same node.
      const coordinator = w.identities.trust('coordinator');
      const bus = await w.connectAs('coordinator');
      let dups = 0;
      const { id, end, base, events } = await run(w, {}, (e) => {
        // A second copy of every command, once right away and once after its outcome, past the stream's own dedupe.
        const again = (cmd: Extract<MigrationEvent, { type: 'StepIntended' }>['data'], tag: string) => {
          dups++;
          const subject = subjects.commands(cmd.node, cmd.executor);
          void publishAs(bus, coordinator, subject, encodeJson(cmd), `${cmd.commandId}:${tag}`);
        };
        if (e.type === 'StepIntended') again(e.data, 'dup-early');
        if (e.type === 'StepSucceeded') {
          const intent = intents.get(e.data.commandId);
          if (intent) again(intent, 'dup-late');
        }
        if (e.type === 'StepIntended') intents.set(e.data.commandId, e.data);
      });
      assert.equal(end.type, 'MigrationCompleted');
      const intended = events.filter((e) => e.type === 'StepIntended').length;
      assert.equal(dups, 2 * intended, 'every command was sent twice more');
      const per = new Map<string, number>();
      for (const o of outcomes(events)) per.set(o.data.commandId, (per.get(o.data.commandId) ?? 0) + 1);
      assert.deepEqual(
        [...per.values()].filter((n) => n !== 1),
        [],
        'exactly one outcome per command',
      );
      const failed = outcomes(events).filter((o) => o.type === 'StepFailed');
      assert.deepEqual(
        failed.map((f) => JSON.stringify(f.data)),
        [],
        'no duplicate ran into an "already exists"',
      );
      assert.ok(w.services.get('agent-node-a')!.lines.some((l) => l.includes('duplicate delivery')));
      assert.deepEqual(await w.brokenInvariants(id, base), []);
    });
  });
});
const intents = new Map<string, Extract<MigrationEvent, { type: 'StepIntended' }>['data']>();

/** The agent dies in the middle of a step: the tool did its work, then its caller was killed before reporting. */
const midStep: [string, string, 'node-a' | 'node-b', FaultRule[], MigrationEvent['type']][] = [
  [
    'preDump',
    'criu pre-dump',
    'node-a',
    [{ tool: 'criu', sub: 'pre-dump', call: 2, action: 'kill-caller-after' }],
    'MigrationCompleted',
  ],
  [
    'snapshotOrigin',
    'ploop snapshot -o',
    'node-a',
    [{ tool: 'ploop', sub: 'snapshot', match: '(^| )-o( |$)', call: 1, action: 'kill-caller-after' }],
    'MigrationCompleted',
  ],
  [
    'snapshotCopy',
    'ploop snapshot on the copy',
    'node-a',
    [
      {
        tool: 'ploop',
        sub: 'snapshot',
        match: 'DiskDescriptor\\.copy\\.xml',
        call: 1,
        action: 'kill-caller-after',
      },
    ],
    'MigrationCompleted',
  ],
  [
    'restore',
    'vzctl restore',
    'node-b',
    [{ tool: 'vzctl', sub: 'restore', call: 1, action: 'kill-caller-after' }],
    'MigrationCompleted',
  ],
  [
    'umountSource',
    'vzctl umount',
    'node-a',
    [{ tool: 'vzctl', sub: 'umount', node: 'node-a', call: 1, action: 'kill-caller-after' }],
    'MigrationCompleted',
  ],
  [
    'mergeOrigin',
    'ploop snapshot-delete',
    'node-b',
    [{ tool: 'ploop', sub: 'snapshot-delete', node: 'node-b', call: 1, action: 'kill-caller-after' }],
    'MigrationCompleted',
  ],
  [
    'restoreSharedDisk',
    'ploop snapshot-delete during a rollback',
    'node-a',
    [
      { tool: 'vzctl', sub: 'restore', call: 1, action: 'fail', exitCode: 17 },
      { tool: 'ploop', sub: 'snapshot-delete', node: 'node-a', call: 1, action: 'kill-caller-after' },
    ],
    'MigrationRolledBack',
  ],
];

describe('node agent: killed in the middle of a host-mutating step', () => {
  // The cases take turns in one world, each with a CT of its own and its own fault plan (as the fault matrix does):
  // an agent restarted by one case serves the next, so a case waits for that restart whatever its outcome, and a case
  // that does not end in time fails instead of holding up the ones after it.
  const shared = worldTakingTurns({ sharedDisks: 1, memoryMb: 16 });
  before(() => shared.start());
  after(() => shared.stop());
  for (const [step, what, node, faults, expected] of midStep) {
    it(
      `${step} (${what} done, agent on ${node} killed before reporting): reconciled by inspection, done once`,
      {
        timeout: 240_000,
      },
      () =>
        shared.turn(faults, async (w) => {
          // The killed agent is started again (as systemd would), by this case only: it serves the next ones.
          let over = false;
          let restarted: Promise<unknown> | undefined;
          void w.services
            .get(`agent-${node}`)!
            .exited.then(() => (restarted = over ? undefined : w.startAgent(node)));
          try {
            const { id, end, base, events } = await run(w);
            assert.equal(end.type, expected);
            const o = outcomes(events).filter((e) => e.data.step === step);
            const reconciled = o.filter((e) => e.data.reconciled);
            assert.equal(reconciled.length, 1, 'found in doubt and reconciled');
            assert.equal(reconciled[0]!.type, 'StepSucceeded');
            const sameCommand = outcomes(events).filter(
              (e) => e.data.commandId === reconciled[0]!.data.commandId,
            );
            assert.equal(sameCommand.length, 1, 'one outcome for that command');
            assert.deepEqual(await w.brokenInvariants(id, base), []);
          } finally {
            over = true;
            await restarted?.catch((err: unknown) => console.error(`restarting agent-${node}:`, err));
          }
        }),
    );
  }
});

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
      await awaitEvent(
        w.eventLog,
        r.migrationId,
        (e) => e.type === 'StepSucceeded' && e.data.step === 'finalDump',
      );
      await w.services.get('coordinator')!.kill('SIGKILL');
      const resumed = await awaitEvent(
        w.eventLog,
        r.migrationId,
        (e) => e.type === 'ResumedOnSource',
        30_000,
      );
      assert.equal(resumed.type === 'ResumedOnSource' && resumed.data.reason, 'lease-expired');
      await w.startCoordinator();
      const end = await followToEnd(w.eventLog, r.migrationId, () => {});
      assert.equal(end.type, 'MigrationRolledBack');
      assert.deepEqual(await w.brokenInvariants(r.migrationId, base), []);
    });
  });

  it('restores the shared disks before the thaw: writes after it survive a CT restart before any rollback', async () => {
    await withRunningWorld({ sharedDisks: 1, memoryMb: 16 }, async (w) => {
      // The final images cannot move (the source streamer dies once the local disk's live passes are done and the
      // final dump is decided): the migration cannot pass the shared-disk preparation. The coordinator dies once
      // the copy snapshot is made: nobody decides, the lease expires.
      const base = await w.baseline('node-a');
      // A lease long enough for the shared-disk preparation, even on a busy machine.
      const r = await w.migrate('lease-3', { preDump: 'off', frozenLeaseMs: 15_000 });
      assert.ok(r.ok, JSON.stringify(r));
      if (!r.ok) return;
      await awaitEvent(
        w.eventLog,
        r.migrationId,
        (e) => e.type === 'StepIntended' && e.data.step === 'finalDump',
      );
      await w.services.get('streamer-node-a')!.kill('SIGKILL');
      await awaitEvent(
        w.eventLog,
        r.migrationId,
        (e) => e.type === 'StepSucceeded' && e.data.step === 'snapshotCopy',
      );
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
      await until(() => sharedWrites() >= before + 5, 'the CT writes to its shared disk after the thaw');
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
    });
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
        // Stop the target agent gracefully: it kills the hung restore's process tree on its way out.
        await w.services.get('agent-node-b')!.kill('SIGTERM');
      },
    );
  });
});

/** The CT's block-write journal on node-a: `<disk index> <block> <sha256>` per write (0 = root, 1 = shared disk 0). */
function journal(w: World): string[] {
  const f = join(w.cluster.nodeRoot('node-a'), 'var', 'log', `ct-${w.ctid}.writes`);
  return existsSync(f) ? readFileSync(f, 'utf8').trim().split('\n').filter(Boolean) : [];
}

/** Poll a condition of the emulated host (a file that grows: no event to await) until it holds. */
async function until(cond: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await delay(100);
  }
}

describe('node agent: the target rebooted during the migration', () => {
  it('refuses to restore from images received before the reboot; the migration rolls back', async () => {
    await withRunningWorld({ sharedDisks: 1, memoryMb: 16 }, async (w) => {
      let rebooted: Promise<unknown> | undefined;
      const { id, end, base, events } = await run(w, {}, (e) => {
        if (rebooted || e.type !== 'StepSucceeded' || e.data.step !== 'preflightTarget') return;
        // The target "reboots" right after its preflight: its agent dies and comes back with a new boot id.
        // (Image folders are not synced while streaming, so after a real reboot they may be incomplete.)
        rebooted = (async () => {
          await w.services.get('agent-node-b')!.kill('SIGKILL');
          await w.cluster.ok('node-b', 'haul-emu', ['new-boot-id']);
          await w.startAgent('node-b');
        })();
      });
      await rebooted;
      assert.equal(end.type, 'MigrationRolledBack');
      const restore = outcomes(events).find((e) => e.data.step === 'restore');
      assert.equal(restore?.type, 'StepFailed');
      assert.equal(restore?.type === 'StepFailed' && restore.data.error.code, 'HAUL_TARGET_REBOOTED');
      assert.ok(!events.some((e) => e.type === 'RestoreStarted'), 'the restore never started');
      assert.deepEqual(await w.brokenInvariants(id, base), []);
    });
  });
});
