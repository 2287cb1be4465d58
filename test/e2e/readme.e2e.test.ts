import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pidAlive } from '@haul/bus';
import { freePort, repoRoot } from '@haul/test';

/** The first fenced block after a heading of README.md. */
function blockAfter(markdown: string, heading: string): string {
  const at = markdown.indexOf(`\n${heading}\n`);
  assert.ok(at >= 0, `README.md has no heading ${heading}`);
  const m = /\n```[a-z]*\n([\s\S]*?)\n```\n/.exec(markdown.slice(at));
  assert.ok(m, `no code block under ${heading}`);
  return m[1]!;
}

/**
 * Emulated CT processes under `dir` (they run detached, in a session of their own), by the PIDs their nodes recorded.
 * Only folders are looked into: `dir` is the block's TMPDIR, where any program it runs may leave a file of its own
 * (an npm package's telemetry wrote scarf-js-history-root.log there once).
 */
function ctPids(dir: string): number[] {
  const pids: number[] = [];
  const folders = (d: string) => readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory());
  for (const top of existsSync(dir) ? folders(dir) : []) {
    for (const node of folders(join(dir, top.name))) {
      const cts = join(dir, top.name, node.name, 'var', 'lib', 'haul-emu', 'cts');
      if (!existsSync(cts)) continue;
      for (const f of readdirSync(cts)) {
        const pid = (JSON.parse(readFileSync(join(cts, f), 'utf8')) as { pid?: number }).pid;
        if (pid) pids.push(pid);
      }
    }
  }
  return pids;
}

const kill = (pid: number) => {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
};

describe('the README', () => {
  it('"Running the pieces alone" works when pasted into a shell: a migration on two emulated nodes, all stopped after', async () => {
    const block = blockAfter(
      readFileSync(join(repoRoot, 'README.md'), 'utf8'),
      '## Running the pieces alone',
    );
    // Its own NATS port, and its own temp folder for `mktemp -d` (TMPDIR); everything else as the reader runs it.
    assert.equal(
      block.match(/\bport=4222\b/g)?.length,
      1,
      'the block names its NATS port once, as port=4222',
    );
    const script = block.replace(/\bport=4222\b/, `port=${await freePort()}`);
    const tmp = mkdtempSync(join(tmpdir(), 'haul-readme-'));
    // A fresh shell: none of haul's settings from this process.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HAUL_')));
    // bash -e: a line that fails fails the test (pasted, it would print its error and go on).
    const sh = spawn('bash', ['-e', '-c', script], {
      cwd: repoRoot,
      env: { ...env, TMPDIR: tmp },
      detached: true, // a process group of its own: whatever it leaves behind is killed by that group's id
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    sh.stdout.on('data', (d: Buffer) => (out += d.toString()));
    sh.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const hung = setTimeout(() => process.kill(-sh.pid!, 'SIGKILL'), 300_000);
    const code = await new Promise<number | null>((resolve) => sh.once('exit', resolve));
    clearTimeout(hung);
    const leftInGroup = pidAlive(-sh.pid!);
    const cts = ctPids(tmp).filter(pidAlive);
    try {
      process.kill(-sh.pid!, 'SIGKILL');
    } catch {
      /* the group is empty, as it should be */
    }
    cts.forEach(kill);
    rmSync(tmp, { recursive: true, force: true });
    assert.equal(code, 0, `the block failed:\n${err}\n${out}`);
    assert.match(out, /^Migration succeeded$/m, out);
    assert.match(out, /^m-[0-9a-f]+ +101 +node-a +node-b +live +completed /m, out);
    assert.ok(!leftInGroup, 'a process the block started outlived it');
    assert.deepEqual(cts, [], 'the CT was left running');
  });
});
