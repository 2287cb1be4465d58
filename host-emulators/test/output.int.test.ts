import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { emulatorBin, ensureBuilt } from '@haul/test';

const haulEmu = join(emulatorBin, 'haul-emu');

describe('an emulated tool’s output (write(2) on its descriptors)', () => {
  it('given a reader, then the whole output arrives on the pipe and the tool exits 0', () => {
    ensureBuilt();
    const r = spawnSync(haulEmu, ['help'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^haul-emu: set up emulated nodes/);
    assert.equal(r.stderr, '');
  });

  it('given a reader that is gone, then the tool ends at once with 141, as SIGPIPE ends the real tools', async () => {
    ensureBuilt();
    const child = spawn(haulEmu, ['help'], { stdio: ['ignore', 'pipe', 'pipe'] });
    // Closed before the tool (a Node start away) writes a byte.
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const status = await new Promise<number | null>((done) => child.once('close', (code) => done(code)));
    assert.equal(status, 141, stderr);
    assert.equal(stderr, '');
  });
});
