import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeJson, subjects } from '@haul/bus';
import { publishAs, withRunningWorld, type FaultRule } from '@haul/test';
import type { MigrationEvent } from '@haul/schemas';
import { outcomes, run } from './agent-runs.ts';

const intents = new Map<string, Extract<MigrationEvent, { type: 'StepIntended' }>['data']>();

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

  it('refuses the restore delivered again after a reboot during it (RestoreStarted in the log); the migration rolls back', async () => {
    // vzctl restore kills the target's agent before it does anything: the target "reboots" in its restore
    const faults: FaultRule[] = [
      { tool: 'vzctl', sub: 'restore', node: 'node-b', call: 1, action: 'kill-caller' },
    ];
    await withRunningWorld({ sharedDisks: 1, memoryMb: 16, faults }, async (w) => {
      // It comes back with a new boot id, and its agent is started again (as systemd would): the restore is delivered
      // again, its marker in doubt
      const restarted = w.services.get('agent-node-b')!.exited.then(async () => {
        await w.cluster.ok('node-b', 'haul-emu', ['new-boot-id']);
        await w.startAgent('node-b');
      });
      const { id, end, base, events } = await run(w);
      await restarted;
      assert.ok(
        events.some((e) => e.type === 'RestoreStarted'),
        'the restore had started',
      );
      const restore = outcomes(events).find((e) => e.data.step === 'restore');
      assert.equal(restore?.type === 'StepFailed' && restore.data.error.code, 'HAUL_TARGET_REBOOTED');
      assert.equal(end.type, 'MigrationRolledBack');
      assert.deepEqual(await w.brokenInvariants(id, base), []);
    });
  });
});
