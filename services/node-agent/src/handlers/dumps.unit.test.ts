import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { errorCodes } from '@haul/domain';
import type { HostResult } from '@haul/schemas';
import type { HandlerContext } from '../context.ts';
import { StepError } from '../context.ts';
import { pagesIn, releaseSource, resumeOnSource } from './dumps.ts';

void describe('pagesIn', () => {
  const dir = mkdtempSync(join(tmpdir(), 'haul-pages-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  void it('counts the pages of every pages-<n>.img of the dump, not only pages-1.img', () => {
    writeFileSync(join(dir, 'pages-1.img'), Buffer.alloc(3 * 4096));
    writeFileSync(join(dir, 'pages-2.img'), Buffer.alloc(2 * 4096));
    writeFileSync(join(dir, 'pages-17.img'), Buffer.alloc(4096));
    writeFileSync(join(dir, 'pagemap-1.img'), Buffer.alloc(4096));
    writeFileSync(join(dir, 'pages-1.img.tmp'), Buffer.alloc(4096));
    assert.equal(pagesIn(dir), 6);
  });

  void it('is 0 for a folder that is not there', () => {
    assert.equal(pagesIn(join(dir, 'none')), 0);
  });
});

void describe('resumeOnSource', () => {
  /** A context whose fence lets the resume through on an empty log (no shared disk prepared), and its held dump. */
  const ctxWith = (held: Partial<HandlerContext['held']>, status: { running: boolean; paused: boolean }) => {
    const calls: string[] = [];
    const ctx = {
      cfg: { node: 'node-a' },
      log: pino({ level: 'silent' }),
      held: {
        settled: () => Promise.resolve(void calls.push('settled')),
        abandon: () => void calls.push('abandon'),
        isHeld: () => true,
        decide: (_m: string, d: string) => {
          calls.push(d);
          return Promise.resolve(1);
        },
        ...held,
      },
      tools: { vzctlStatus: () => Promise.resolve({ ...status, exists: true }) },
      fencedAppend: () => Promise.resolve({ ok: true }),
      readLog: () => Promise.resolve({ events: [], lastSeq: 1 }),
      event: (type: string, data: unknown, id: string) => ({ type, data, id }),
    } as unknown as HandlerContext;
    return { ctx, calls };
  };

  void it('aborts the held dump once an under-way one settled, and says the CT resumed when it runs after', async () => {
    const { ctx, calls } = ctxWith({}, { running: true, paused: false });
    const r = await resumeOnSource(ctx, 'm-resume0000000000000001', '101', 'rollback');
    assert.deepEqual(calls, ['settled', 'abort']);
    assert.deepEqual(r.actions, ['dump aborted (criu exit 1)', 'CT resumed']);
  });

  void it('leaves an abort decision for a criu the folder no longer names when no dump holds the CT', async () => {
    const { ctx, calls } = ctxWith({ isHeld: () => false }, { running: true, paused: false });
    const r = await resumeOnSource(ctx, 'm-resume0000000000000003', '101', 'rollback');
    assert.deepEqual(calls, ['settled', 'abandon']);
    assert.deepEqual(r.actions, ['CT already running on the source']);
  });

  void it('fails as paused when the CT is still frozen after the abort (criu killed before it thawed it)', async () => {
    const { ctx } = ctxWith({}, { running: true, paused: true });
    await assert.rejects(
      resumeOnSource(ctx, 'm-resume0000000000000002', '101', 'rollback'),
      (err: unknown) => err instanceof StepError && err.code === errorCodes.ctPaused,
    );
  });
});

void describe('releaseSource', () => {
  const cmd = {
    migrationId: 'm-release000000000000001',
    step: 'releaseSource',
    commandId: 'm-release000000000000001:releaseSource:-:1',
    args: { ctid: '101' },
  } as unknown as Parameters<typeof releaseSource>[0];
  const release = (ctx: HandlerContext) => releaseSource(cmd, ctx) as Promise<HostResult>;
  const root = mkdtempSync(join(tmpdir(), 'haul-release-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  /**
   * A context whose held dump ends with `rc` once decided (or is no longer held, its folder saying `outcome`), and
   * whose CT runs on the source until `vzctl stop --fast` (or for ever, `stops: false`).
   */
  const ctxWith = (o: {
    held: boolean;
    rc?: number;
    outcome?: { decision?: string; rc?: number };
    stops?: boolean;
    running?: boolean;
  }) => {
    const calls: string[] = [];
    let running = o.running ?? (o.held ? (o.rc ?? 0) !== 0 : true);
    const ctx = {
      cfg: { node: 'node-a', hostRoot: root, vzRoot: join(root, 'vz'), etcVz: join(root, 'etc', 'vz') },
      log: pino({ level: 'silent' }),
      held: {
        isHeld: () => o.held,
        meta: () => undefined,
        decide: (_m: string, d: string) => {
          calls.push(d);
          return Promise.resolve(o.rc ?? 0);
        },
        outcome: () => o.outcome ?? {},
      },
      tools: {
        vzctlStatus: () => Promise.resolve({ exists: true, running, paused: false }),
        vzctlStopFast: () => {
          calls.push('stop --fast');
          if (o.stops !== false) running = false;
          return Promise.resolve({ exitCode: 0, stdout: '', stderr: '' });
        },
      },
    } as unknown as HandlerContext;
    return { ctx, calls };
  };

  void it('commits a held dump: criu kills the tasks, nothing else is stopped', async () => {
    const { ctx, calls } = ctxWith({ held: true, rc: 0 });
    const r = await release(ctx);
    assert.deepEqual(calls, ['commit']);
    assert.deepEqual(r.actions, ['dump committed: source tasks killed']);
  });

  void it("stops the CT on the source when the committed dump's criu ended without killing the tasks", async () => {
    const { ctx, calls } = ctxWith({ held: true, rc: 137 });
    const r = await release(ctx);
    assert.deepEqual(calls, ['commit', 'stop --fast']);
    assert.deepEqual(r.actions, [
      'criu dump ended with 137 after the commit decision: the CT it let go on the source stopped (vzctl stop --fast)',
    ]);
  });

  void it('stops it when tried again, the dump no longer held and its folder saying commit', async () => {
    const { ctx, calls } = ctxWith({ held: false, outcome: { decision: 'commit', rc: 1 } });
    const r = await release(ctx);
    assert.deepEqual(calls, ['stop --fast']);
    assert.match(
      r.actions[0]!,
      /ended with 1 after the commit decision: the CT it let go on the source stopped/,
    );
  });

  void it("tried again after the agent died past the commit, removes the CT's init pid file as the first run would have", async () => {
    // Given the dump committed (criu ended well, the CT gone), and the init pid file still there: the agent died
    // between the commit and its removal
    const pidFile = join(root, 'var', 'run', 've', '101.init.pid');
    mkdirSync(dirname(pidFile), { recursive: true });
    writeFileSync(pidFile, '4242\n');
    const { ctx } = ctxWith({ held: false, outcome: { decision: 'commit', rc: 0 }, running: false });
    const r = await release(ctx);
    assert.equal(r.actions[0], 'already released');
    // Then it is gone: a pid reused by another process would have the heartbeat report the CT running here too
    assert.equal(existsSync(pidFile), false);
  });

  void it('fails while the CT still runs after the stop, to be tried again', async () => {
    const { ctx } = ctxWith({ held: true, rc: 137, stops: false });
    await assert.rejects(
      release(ctx),
      (err: unknown) => err instanceof StepError && err.code === errorCodes.releaseFailed,
    );
  });

  void it('stops nothing for a CT that runs after a commit whose criu ended well: someone started it since', async () => {
    const { ctx, calls } = ctxWith({ held: false, outcome: { decision: 'commit', rc: 0 } });
    await assert.rejects(
      release(ctx),
      (err: unknown) => err instanceof StepError && err.code === errorCodes.notHeld,
    );
    assert.deepEqual(calls, []);
  });

  void it('stops nothing for a CT that runs with no dump held and no commit decided: not held', async () => {
    const { ctx, calls } = ctxWith({ held: false });
    await assert.rejects(
      release(ctx),
      (err: unknown) => err instanceof StepError && err.code === errorCodes.notHeld,
    );
    assert.deepEqual(calls, []);
  });
});
