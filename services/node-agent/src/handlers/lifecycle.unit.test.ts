import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { HostResult, StepCommand } from '@haul/schemas';
import { errorCodes } from '@haul/domain';
import { StepError, type HandlerContext } from '../context.ts';
import { removeFiles, restore } from './lifecycle.ts';

const root = mkdtempSync(join(tmpdir(), 'haul-lifecycle-'));
after(() => rmSync(root, { recursive: true, force: true }));

const mid = 'm-0123456789abcdef01234567';

/** The first attempt of this migration's `step` on `subject`, for the agent of `node`. */
const commandOn = (node: string, step: string, subject: string, args: object): StepCommand =>
  ({
    commandId: `${mid}:${step}:${subject}:1`,
    migrationId: mid,
    node,
    executor: 'agent',
    attempt: 1,
    step,
    args,
    timeoutMs: 120_000,
  }) as unknown as StepCommand;

describe('removeFiles of a copied disk in the private area', () => {
  it('given a VE_PRIVATE that goes through a link, when the copy is removed, then the private area it leaves bare goes too', async () => {
    // Given a target whose /vz is a link to /data/vz, CT 101's config naming its private area through the link, and
    // there what a rollback finds: the layout the agent made and the copied root disk
    const hostRoot = join(root, 'linked');
    mkdirSync(join(hostRoot, 'data', 'vz', 'private'), { recursive: true });
    symlinkSync(join(hostRoot, 'data', 'vz'), join(hostRoot, 'vz'));
    const priv = join(hostRoot, 'vz', 'private', '101');
    for (const d of ['fs', 'dump', 'scripts', 'root.hdd']) mkdirSync(join(priv, d), { recursive: true });
    symlinkSync('5', join(priv, '.ve.layout'));
    writeFileSync(join(priv, 'root.hdd', 'root.hds'), 'copied');
    mkdirSync(join(hostRoot, 'etc', 'vz', 'conf'), { recursive: true });
    writeFileSync(
      join(hostRoot, 'etc', 'vz', 'conf', '101.conf'),
      `VE_PRIVATE="${join(hostRoot, 'vz', 'private')}/$VEID"\n`,
    );
    const ctx = {
      cfg: { node: 'node-b', hostRoot },
      readLog: () =>
        Promise.resolve({
          events: [{ type: 'MigrationRequested', data: { request: { ctid: '101' } } }],
          lastSeq: 1,
        }),
    } as unknown as HandlerContext;
    // The path as the agent's confinement hands it over: resolved
    const disk = join(realpathSync(priv), 'root.hdd');
    const cmd = commandOn('node-b', 'removeFiles', 'target-disk0', { paths: [disk] });

    // When the copy is removed
    const r = (await removeFiles(cmd, ctx)) as HostResult;

    // Then the disk and the private area, which held nothing else of the CT, are gone
    assert.equal(existsSync(disk), false);
    assert.equal(existsSync(priv), false, JSON.stringify(r.actions));
  });
});

describe('restore run again, the CT found running on the target (vzctl restore exits 32)', () => {
  /** A target whose restore of `imageDir` finds the CT running; its context lets the fence pass. */
  function runningAlready(imageDir: string) {
    const hostRoot = join(root, 'restore-again');
    mkdirSync(imageDir, { recursive: true });
    const ctx = {
      cfg: { node: 'node-b', hostRoot, bootId: 'boot-1' },
      reconciled: true,
      event: (type: string, data: unknown, eventId: string) => ({ type, data, eventId }),
      fencedAppend: () => Promise.resolve({ ok: true }),
      readLog: () => Promise.resolve({ events: [], lastSeq: 0 }),
      tools: { vzctlRestore: () => Promise.resolve({ exitCode: 32 }) },
    } as unknown as HandlerContext;
    const cmd = commandOn('node-b', 'restore', '-', {
      ctid: '101',
      imageDir,
      workDir: join(imageDir, '..', 'work'),
    });
    return { ctx, cmd };
  }

  it('given vzctl finished the earlier run (<dump dir>.restore), then the step succeeds without restoring again', async () => {
    const imageDir = join(root, 'restore-finished', 'final');
    mkdirSync(`${imageDir}.restore`, { recursive: true });
    const { ctx, cmd } = runningAlready(imageDir);
    const r = (await restore(cmd, ctx)) as HostResult;
    assert.deepEqual(r.actions, ['CT already running on the target: an earlier run restored it']);
  });

  it('given no sign that vzctl finished it, then the step fails in doubt: the CT may run from a restore cut short', async () => {
    const imageDir = join(root, 'restore-cut-short', 'final');
    const { ctx, cmd } = runningAlready(imageDir);
    await assert.rejects(restore(cmd, ctx), (err: unknown) => {
      assert.ok(err instanceof StepError);
      assert.equal(err.code, errorCodes.restoreInDoubt);
      assert.match(err.message, /CT 101 runs on node-b, but vzctl never finished restoring it/);
      return true;
    });
    // And the file it wrote for vzctl is gone, as after any run
    assert.equal(existsSync(join(imageDir, 'restore-extra-args')), false);
  });
});
