import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { basename, join } from 'node:path';
import { describe, it } from 'node:test';
import { exitCodes, followToEnd } from '@haul/cli';
import type { MigrationEvent } from '@haul/schemas';
import { awaitEvent, repoRoot, withRunningWorld, type FaultRule } from '@haul/test';

function haul(url: string, args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'haul.mjs'), ...args], {
      env: { ...process.env, HAUL_NATS_URL: url },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('exit', (code) => resolve({ code, out, err }));
  });
}

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
      const url = w.server.url;

      // Disk indices: the local root disk is 0, the shared disks 1 and 2.
      const first = await awaitEvent(w.eventLog, id, stuckOn('mergeOrigin:1'), 180_000);
      assert.equal(first.type === 'MigrationStuck' && first.data.lastError?.code, 'HAUL_TOOL_FAILED');
      const ls = await haul(url, ['ls', '--stuck']);
      assert.match(ls.out, new RegExp(`${id} .* stuck`));
      assert.match(ls.out, /stuck on mergeOrigin:1 \(cleanup, 5 attempts/);
      const st = JSON.parse((await haul(url, ['status', id, '--json'])).out) as { phase: string };
      assert.equal(st.phase, 'stuck');

      const wrong = await haul(url, ['resolve', id, '--action', 'umountSource:-']);
      assert.equal(wrong.code, exitCodes.rejected.code);
      assert.match(wrong.err, /HAUL_RESOLVE_WRONG_ACTION \(field action\)/);

      // The operator repairs disk 0 and retries: its merge succeeds, and the cleanup stops again at disk 1.
      w.setFaults([mergeFails(disk1)]);
      const retried = await haul(url, ['retry', id, '--reason', 'disk 0 repaired']);
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
      const resolved = await haul(url, [
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
      assert.doesNotMatch((await haul(url, ['ls', '--stuck'])).out, new RegExp(id));
    });
  });
});
