import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { repoRoot } from '@haul/test';

type MadeFrom = { root: string; at: number; inputs: string[] };

describe('npm run demo runs the demo from a bundle (scripts/demo.mjs)', () => {
  const cache = mkdtempSync(join(tmpdir(), 'haul-demo-bundle-'));
  after(() => rmSync(cache, { recursive: true, force: true }));
  const madeFrom = join(cache, 'made-from.json');
  const read = (): MadeFrom => JSON.parse(readFileSync(madeFrom, 'utf8')) as MadeFrom;
  /** What a command prints, run from the repository with the test's own cache folder. */
  const run = (cmd: string, args: string[]): string =>
    execFileSync(cmd, args, {
      cwd: repoRoot,
      env: { ...process.env, HAUL_DEMO_CACHE: cache },
      encoding: 'utf8',
    });
  const help = (): string => run(process.execPath, [join(repoRoot, 'scripts', 'demo.mjs'), '--help']);

  it('given no bundle, when `npm run demo` starts, then it makes one from the demo and the sources it imports, and runs it', () => {
    // The README's command itself (its bootstrap, predemo, left out: it may install packages).
    const out = run('npm', ['run', '--silent', '--ignore-scripts', 'demo', '--', '--help']);
    assert.match(out, /--fail-at STEP/);
    const made = read();
    assert.equal(made.root, repoRoot);
    assert.ok(made.inputs.includes('test/demo/demo.ts'), made.inputs.join(', '));
    assert.ok(
      made.inputs.some((p) => p.startsWith('packages/domain/src/')),
      'the workspace packages are bundled, not loaded as TypeScript',
    );
  });

  it('given a bundle newer than everything it was made from, when the demo starts again, then it is not made again', () => {
    const before = read().at;
    assert.match(help(), /--fail-at STEP/);
    assert.equal(read().at, before);
  });

  it('given a file it was made from changed since (or the repository moved), then it is made again', () => {
    writeFileSync(madeFrom, JSON.stringify({ ...read(), at: 0 }));
    assert.match(help(), /--fail-at STEP/);
    assert.ok(read().at > 0, 'made again after an input changed');
    const at = read().at;
    writeFileSync(madeFrom, JSON.stringify({ ...read(), root: '/somewhere/else' }));
    help();
    assert.equal(read().root, repoRoot);
    assert.ok(read().at >= at);
  });
});
