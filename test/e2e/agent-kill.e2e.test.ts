import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { createToolGate, worldTakingTurns, type FaultRule } from '@haul/test';
import type { MigrationEvent } from '@haul/schemas';
import { outcomes, run } from './agent-runs.ts';

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

  // The agent dies while its tool still runs, and the tool goes on after it (the unit stops the agent alone, so that
  // a held dump survives): left alone, it would act beside the restarted agent, which runs the same command again;
  // killed, a ploop could leave its device and its descriptor disagreeing. The restarted agent waits for it.
  it(
    'snapshotOrigin (agent on node-a killed while ploop snapshot -o runs, the tool left running): the restarted agent waits for the tool to end before it takes a command; done once',
    {
      timeout: 240_000,
    },
    async () => {
      const gate = createToolGate('haul-orphan-');
      const orphan: FaultRule = {
        tool: 'ploop',
        sub: 'snapshot',
        match: '(^| )-o( |$)',
        call: 1,
        action: 'orphan',
        waitFor: gate.file,
      };
      try {
        await shared.turn([orphan], async (w) => {
          let over = false;
          let restarted: Promise<unknown> | undefined;
          /** The orphaned ploop's state while the new agent waited for it, and once that agent said it started. */
          let orphanWhileWaited: string | undefined;
          let orphanAtStart: string | undefined;
          void w.services.get('agent-node-a')!.exited.then(() => {
            if (over) return;
            const starting = w.startAgent('node-a');
            restarted = (async () => {
              // The new agent waits for the tool (held at its gate) before it starts: let the tool go on then
              await w.services.get('agent-node-a')!.waitForLine(/waiting for a host tool/, 60_000);
              orphanWhileWaited = processState(gate.pid()!);
              gate.open();
              await starting;
              orphanAtStart = processState(gate.pid()!);
            })();
          });
          try {
            const { id, end, base, events } = await run(w);
            assert.equal(end.type, 'MigrationCompleted');
            await restarted;
            assert.ok(
              orphanWhileWaited !== undefined && !['gone', 'Z'].includes(orphanWhileWaited),
              `the orphaned ploop was ${orphanWhileWaited} while the new agent waited`,
            );
            assert.ok(
              orphanAtStart === 'gone' || orphanAtStart === 'Z',
              `the orphaned ploop was ${orphanAtStart} when the new agent started`,
            );
            const o = outcomes(events).filter((e) => e.data.step === 'snapshotOrigin');
            assert.deepEqual(
              o.map((e) => e.type),
              ['StepSucceeded'],
            );
            assert.deepEqual(await w.brokenInvariants(id, base), []);
          } finally {
            over = true;
            gate.open();
            await restarted?.catch((err: unknown) => console.error('restarting agent-node-a:', err));
          }
        });
      } finally {
        gate.remove();
      }
    },
  );
});

/** A process's state letter from /proc (R, S, Z, …), or 'gone'. */
function processState(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]!;
  } catch {
    return 'gone';
  }
}
