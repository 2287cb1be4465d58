import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { repoRoot } from '@haul/test';

function demo(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(repoRoot, 'test', 'demo', 'demo.ts'), ...args],
      { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => resolve({ code, out }));
  });
}

describe('npm run demo', () => {
  it('migrates, prints the stream, the stats and the invariants, and exits 0', async () => {
    const r = await demo(['--memory-mb', '16', '--dirty-rate', '500']);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /Migration succeeded/);
    assert.match(r.out, /restore time is ~/);
    // Where the downtime went: each step of the window with its host time and control overhead, and the goals.
    assert.match(
      r.out,
      /downtime window \d+ ms = \d+ ms in host tools and transfers \+ \d+ ms control overhead/,
    );
    for (const step of [
      'finalDump:-',
      'backupDescriptor:1',
      'snapshotOrigin:1',
      'snapshotCopy:1',
      'restore:-',
    ])
      assert.match(r.out, new RegExp(`^  ${step}\\s+node-[ab](\\s+\\d+\\.\\d){5}$`, 'm'));
    assert.match(
      r.out,
      /control overhead per step of the downtime window: median \d+\.\d ms \(goal ≤ 5 ms\)/,
    );
    assert.match(r.out, /✓ the CT runs on exactly one node/);
    assert.match(r.out, /everything the demo started is stopped/);
  });
  it('--fail-at shows a rollback with the invariants intact', async () => {
    const r = await demo(['--memory-mb', '16', '--fail-at', 'snapshotCopy']);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /Migration rolled back: snapshotCopy:1 failed/);
    assert.doesNotMatch(r.out, /✗/);
  });
});
