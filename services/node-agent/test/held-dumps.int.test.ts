import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { createHeldDumps, type HeldMeta } from '../src/held-dumps.ts';

const root = mkdtempSync(join(tmpdir(), 'haul-held-'));
after(() => rmSync(root, { recursive: true, force: true }));

describe('a final dump still under way when the agent that started it died', () => {
  it('given its criu still running before the freeze, when the command comes again, then the agent waits for that dump instead of starting a second one', async () => {
    const stateDir = join(root, 'state');
    // No criu on this PATH: a second dump started here would end at once (sh: criu: not found).
    const held = createHeldDumps(stateDir, pino({ level: 'silent' }), { PATH: '/usr/bin:/bin' });
    const meta: HeldMeta = {
      migrationId: 'm-0123456789abcdef01234567',
      ctid: '101',
      commandId: 'm-0123456789abcdef01234567:finalDump:-:1',
      leaseMs: 10_000,
      frozenAt: new Date().toISOString(),
      workDir: join(root, 'work'),
    };
    // The dump the dead agent started: its folder, and its criu (here a sleep) still running.
    const criu = spawn('sleep', ['600'], { detached: true, stdio: 'ignore' });
    try {
      const dir = held.dirOf(meta.migrationId);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'meta.json'), JSON.stringify(meta));
      writeFileSync(join(dir, 'criu.pid'), String(criu.pid));
      writeFileSync(join(dir, 'criu.log'), 'the first dump writing its images\n');

      const started = held.start(meta, ['dump', '--tree', '4242']);
      // The first dump reaches its post-dump and holds the CT frozen.
      writeFileSync(join(dir, 'frozen'), '');
      await started;

      assert.equal(
        readFileSync(join(dir, 'criu.pid'), 'utf8'),
        String(criu.pid),
        "the first dump's criu is the one held",
      );
      assert.equal(readFileSync(join(dir, 'criu.log'), 'utf8'), 'the first dump writing its images\n');
      assert.equal(held.isHeld(meta.migrationId), true);
    } finally {
      criu.kill('SIGKILL');
    }
  });
});

describe('a final dump whose criu ends before the freeze', () => {
  it("fails with the end of criu's own log (-o dump.log in the work dir), where criu writes its errors", async () => {
    // Given a criu that logs its error to the work dir's dump.log, says nothing on stderr, and ends with 1
    const bin = join(root, 'bin');
    const workDir = join(root, 'work-ended');
    mkdirSync(bin, { recursive: true });
    mkdirSync(workDir, { recursive: true });
    writeFileSync(
      join(bin, 'criu'),
      `#!/bin/sh\necho 'Error (criu/cr-dump.c:1): cannot seize the tree' > ${workDir}/dump.log\nexit 1\n`,
      { mode: 0o755 },
    );
    const held = createHeldDumps(join(root, 'state-ended'), pino({ level: 'silent' }), {
      PATH: `${bin}:/usr/bin:/bin`,
    });
    const meta: HeldMeta = {
      migrationId: 'm-1123456789abcdef01234567',
      ctid: '101',
      commandId: 'm-1123456789abcdef01234567:finalDump:-:1',
      leaseMs: 10_000,
      workDir,
    };

    // When the final dump is started
    const failed = await held.start(meta, ['dump', '-W', workDir, '-o', 'dump.log']).then(
      () => undefined,
      (e: unknown) => e as { message: string; exitCode: number; stderrTail: string },
    );

    // Then it fails with criu's status and its logged error
    assert.ok(failed, 'the start failed');
    assert.equal(failed.exitCode, 1);
    assert.match(failed.message, /criu dump ended with 1 before the CT was frozen/);
    assert.match(failed.stderrTail, /^Error \(criu\/cr-dump\.c:1\): cannot seize the tree/);
    assert.equal(held.isHeld(meta.migrationId), false);
  });
});
