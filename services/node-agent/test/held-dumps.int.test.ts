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
