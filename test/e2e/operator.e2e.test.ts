import assert from 'node:assert/strict';
import { basename } from 'node:path';
import { describe, it } from 'node:test';
import { exitCodes, followToEnd } from '@haul/cli';
import type { MigrationEvent } from '@haul/schemas';
import { awaitEvent, runHaul, withRunningWorld, type FaultRule } from '@haul/test';

/** Run the CLI as the identity of `env` (World.envAs). */
const haul = (env: Record<string, string>, args: string[]) => runHaul(args, { env });

/** The origin-snapshot merge on the target fails, every time, for one shared disk (a broken disk, say). */
const mergeFails = (sharedDir: string): FaultRule => ({
  tool: 'ploop',
  sub: 'snapshot-delete',
  node: 'node-b',
  match: `${basename(sharedDir)}/`,
  action: 'fail',
  exitCode: 1,
  stderr: 'Error in ploop_merge_snapshot: injected',
});

const stuckOn = (action: string) => (e: MigrationEvent) =>
  e.type === 'MigrationStuck' && e.data.action === action;

describe('an operator acts on a stuck migration', () => {
  it('a cleanup action failing every time stops at stuck; retry after a fix and resolve after doing it by hand finish it', async () => {
    await withRunningWorld({ sharedDisks: 2, memoryMb: 16 }, async (w) => {
      const [disk0, disk1] = [w.shared[0]!, w.shared[1]!];
      w.setFaults([mergeFails(disk0), mergeFails(disk1)]);
      const base = await w.baseline('node-a');
      const r = await w.migrate('stuck-1', { preDump: 'off' });
      assert.ok(r.ok, JSON.stringify(r));
      if (!r.ok) return;
      const id = r.migrationId;
      const env = w.envAs('scheduler');

      // Disk indices: the local root disk is 0, the shared disks 1 and 2.
      const first = await awaitEvent(w.eventLog, id, stuckOn('mergeOrigin:1'), 180_000);
      assert.equal(first.type === 'MigrationStuck' && first.data.lastError?.code, 'HAUL_TOOL_FAILED');
      const ls = await haul(env, ['ls', '--stuck']);
      assert.match(ls.out, new RegExp(`${id} .* stuck`));
      assert.match(ls.out, /stuck on mergeOrigin:1 \(cleanup, 5 attempts/);
      const status = await haul(env, ['status', id, '--json']);
      assert.equal(status.code, exitCodes.completed.code, status.err);
      const st = JSON.parse(status.out) as { phase: string };
      assert.equal(st.phase, 'stuck');

      const wrong = await haul(env, ['resolve', id, '--action', 'umountSource:-']);
      assert.equal(wrong.code, exitCodes.rejected.code);
      assert.match(wrong.err, /HAUL_RESOLVE_WRONG_ACTION \(field action\)/);

      // The operator repairs disk 0 and retries: its merge succeeds, and the cleanup stops again at disk 1.
      w.setFaults([mergeFails(disk1)]);
      const retried = await haul(env, ['retry', id, '--reason', 'disk 0 repaired']);
      assert.equal(retried.code, 0, retried.err);
      await awaitEvent(w.eventLog, id, stuckOn('mergeOrigin:2'), 180_000);

      // Disk 1 cannot be repaired in place: the operator merges the origin snapshot by hand and says so.
      const events = await w.events(id);
      const intent = events.find(
        (e) => e.type === 'StepIntended' && e.data.step === 'mergeOrigin' && e.data.commandId.includes(':2:'),
      );
      assert.ok(intent?.type === 'StepIntended');
      const { ddxml, originGuid } = intent.data.args as { ddxml: string; originGuid: string };
      await w.cluster.ok('node-b', 'ploop', ['snapshot-delete', '-u', originGuid, ddxml]);
      const resolved = await haul(env, [
        'resolve',
        id,
        '--action',
        'mergeOrigin:2',
        '--reason',
        'merged by hand',
      ]);
      assert.equal(resolved.code, 0, resolved.err);

      const end = await followToEnd(w.eventLog, id, () => {});
      assert.equal(end.type, 'MigrationCompleted');
      const log = await w.events(id);
      assert.deepEqual(
        log
          .filter(
            (e) => e.type === 'MigrationStuck' || e.type === 'RetryRequested' || e.type === 'ActionResolved',
          )
          .map((e) => e.type),
        ['MigrationStuck', 'RetryRequested', 'MigrationStuck', 'ActionResolved'],
      );
      assert.deepEqual(await w.brokenInvariants(id, base), []);
      assert.doesNotMatch((await haul(env, ['ls', '--stuck'])).out, new RegExp(id));
    });
  });
});
