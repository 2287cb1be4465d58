import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { repoRoot } from '@haul/test';

/** Run the demo; `then.act` runs once, with the demo's pid and output so far, when the output first matches `then.at`. */
function demo(
  args: string[],
  then?: { at: RegExp; act: (pid: number, out: string) => void },
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(repoRoot, 'scripts', 'demo.mjs'), ...args], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let acted = false;
    const take = (d: Buffer) => {
      out += d.toString();
      if (then && !acted && then.at.test(out)) {
        acted = true;
        then.act(child.pid!, out);
      }
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.once('exit', (code) => resolve({ code, out }));
  });
}

/** Processes whose command line names `path` (the demo's world folder: its CTs, services, tools). */
function processesUnder(path: string): number[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(path);
      } catch {
        return false; // ended meanwhile
      }
    })
    .map(Number);
}

/**
 * The processes under `world` once they are gone: a SIGKILLed CT (not the demo's child) leaves /proc when the kernel
 * has reaped it, a moment after the demo exits. Waits up to 10 s for that; what is left then is returned.
 */
async function leftUnder(world: string): Promise<number[]> {
  const end = Date.now() + 10_000;
  let left = processesUnder(world);
  while (left.length > 0 && Date.now() < end) {
    await delay(50);
    left = processesUnder(world);
  }
  return left;
}

const accepted = /migrate request accepted/;
const found = (out: string, re: RegExp): string => {
  const m = re.exec(out);
  assert.ok(m, `${re} in:\n${out}`);
  return m[1]!;
};

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
  // Without the demo's watch on its services, this run waits for ever (a step timeout and its retries at a time):
  // bounded, so that it fails instead.
  it(
    'a service that dies during the migration: the demo names it, stops everything and exits 1 at once',
    { timeout: 180_000 },
    async () => {
      const r = await demo(['--memory-mb', '16'], {
        at: accepted,
        act: (_, out) => process.kill(Number(found(out, /agent-node-a \(pid (\d+)\)/)), 'SIGKILL'),
      });
      assert.equal(r.code, 1, r.out);
      assert.match(
        r.out,
        /agent-node-a \(pid \d+\) exited on its own \(signal SIGKILL\) during the migration/,
      );
      assert.match(r.out, /everything the demo started is stopped/);
      assert.deepEqual(await leftUnder(found(r.out, /(\/\S*haul-world-\w+)/)), []);
    },
  );
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)
    it(`ended by ${signal} mid-migration: exits ${code}, and no CT, service, world or secrets folder is left`, async () => {
      const r = await demo(['--memory-mb', '16'], { at: accepted, act: (pid) => process.kill(pid, signal) });
      assert.equal(r.code, code, r.out);
      const world = found(r.out, /(\/\S*haul-world-\w+)/);
      const secrets = found(r.out, /(\/\S*haul-secrets-\w+)/);
      assert.deepEqual(await leftUnder(world), []);
      assert.equal(existsSync(world), false);
      assert.equal(existsSync(secrets), false);
    });
  it('--fail-at shows a rollback with the invariants intact', async () => {
    const r = await demo(['--memory-mb', '16', '--fail-at', 'snapshotCopy']);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /Migration rolled back: snapshotCopy:1 failed/);
    assert.doesNotMatch(r.out, /✗/);
  });
});
