/**
 * The watchdog every test process loads (scripts/test-watchdog.mjs, through scripts/test.sh): a test still running
 * after each interval says so by its full name, so that a file that hangs and then times out names the test.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { it } from 'node:test';
import { repoRoot } from '@haul/test';

const fixture = `import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
describe('outer', () => {
  it('quick', () => {});
  it('slow', async () => {
    await delay(2500);
  });
});
`;

/** This environment for a test runner of its own: without NODE_TEST_CONTEXT, which makes it a file of this one's. */
function runnerEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env['NODE_TEST_CONTEXT'];
  return env;
}

it('given a test running past the interval, then its full name and file are said on stderr while it runs; a quick one is not named', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'haul-watchdog-'));
  try {
    writeFileSync(join(dir, 'fixture.test.mjs'), fixture);
    // As scripts/test.sh runs a tier, with a 1 s interval
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      [
        '--import',
        join(repoRoot, 'scripts', 'test-watchdog.mjs'),
        '--test',
        '--test-reporter=spec',
        'fixture.test.mjs',
      ],
      { cwd: dir, env: runnerEnv({ HAUL_TEST_WATCHDOG_MS: '1000' }) },
    );
    const out = stdout + stderr;
    assert.match(out, /\[test\] still running after [12] s: outer > slow \(fixture\.test\.mjs\)/);
    assert.doesNotMatch(out, /still running after \d+ s: outer > quick/);
    assert.match(out, /ℹ pass 2/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
