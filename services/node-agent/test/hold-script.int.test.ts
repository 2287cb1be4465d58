import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { waitForFile } from '../src/adapters/files.ts';
import { holdScript, writeDecision } from '../src/held-dumps.ts';

/**
 * haul-hold-frozen as criu runs it: exec'd with criu's environment (CRTOOLS_SCRIPT_ACTION, CRTOOLS_INIT_PID), whose
 * PATH here holds no node at all — as on a VZ7 host, where no Node 20 is installed where criu looks.
 */
function runAsCriu(dir: string, action = 'post-dump') {
  const child = spawn(holdScript, [], {
    env: {
      PATH: '/nonexistent',
      CRTOOLS_SCRIPT_ACTION: action,
      CRTOOLS_INIT_PID: '4242',
      HAUL_HOLD_DIR: dir,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exit = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  /** The script wrote `frozen` and holds; fails (instead of hanging) when it ended first. */
  const frozen = async (dir: string) => {
    const ac = new AbortController();
    const seen = waitForFile(dir, 'frozen', ac.signal).then(
      () => 'frozen',
      () => 'aborted',
    );
    const first = await Promise.race([seen, exit]).finally(() => ac.abort());
    assert.equal(first, 'frozen', `the script ended (${String(first)}) before holding: ${stderr}`);
  };
  return { exit, frozen, stderr: () => stderr };
}

void describe('haul-hold-frozen', () => {
  const root = mkdtempSync(join(tmpdir(), 'haul-hold-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  let n = 0;
  const holdDir = () => {
    const d = join(root, String(n++));
    mkdirSync(d);
    return d;
  };

  void it('holds at post-dump until the commit decision, with no node on PATH', async () => {
    const dir = holdDir();
    const s = runAsCriu(dir);
    await s.frozen(dir);
    const frozen = JSON.parse(readFileSync(join(dir, 'frozen'), 'utf8')) as { initPid: number; at: string };
    assert.equal(frozen.initPid, 4242);
    assert.ok(!Number.isNaN(Date.parse(frozen.at)));
    writeDecision(dir, 'commit');
    assert.equal(await s.exit, 0, s.stderr());
  });

  void it('exits 1 on abort, so criu resumes the tasks', async () => {
    const dir = holdDir();
    const s = runAsCriu(dir);
    await s.frozen(dir);
    writeDecision(dir, 'abort');
    assert.equal(await s.exit, 1, s.stderr());
  });

  void it('finds a decision written before it started (an agent that decided, then restarted)', async () => {
    const dir = holdDir();
    writeDecision(dir, 'commit');
    assert.equal(await runAsCriu(dir).exit, 0);
  });

  void it('lets every other action pass, and refuses to hold without its folder', async () => {
    const dir = holdDir();
    assert.equal(await runAsCriu(dir, 'pre-dump').exit, 0);
    assert.ok(!existsSync(join(dir, 'frozen')));
    const s = runAsCriu('');
    assert.equal(await s.exit, 1);
    assert.match(s.stderr(), /HAUL_HOLD_DIR is not set/);
  });
});
