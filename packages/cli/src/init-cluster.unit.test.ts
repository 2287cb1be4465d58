import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exitCodes } from './exit-codes.ts';
import { initClusterExit, initClusterHelp, initClusterMain } from './init-cluster.ts';

/** Run `haul init-cluster ARGS` in this process; its exit code and what it printed on stderr and stdout. */
async function run(t: TestContext, args: string[], width?: number) {
  const err: string[] = [];
  const out: string[] = [];
  t.mock.method(console, 'error', (s: string) => err.push(s));
  t.mock.method(console, 'log', (s: string) => out.push(s));
  const code = await initClusterMain(args, width);
  t.mock.restoreAll();
  return { code, err: err.join('\n'), out: out.join('\n') };
}

describe('haul init-cluster: its command line', () => {
  it('an unknown flag is a usage error naming the closest known one, as for every command', async (t) => {
    const r = await run(t, ['--node', 'node-a', '--out', '/nonexistent/x']);
    assert.equal(r.code, initClusterExit.usage);
    assert.match(r.err, /^haul init-cluster: unknown flag --node \(did you mean --nodes\?\)$/m);
    assert.match(r.err, /Run 'haul init-cluster --help' for usage/);
    const typo = await run(t, ['--nodes', 'node-a', '--out', '/nonexistent/x', '--froce']);
    assert.match(typo.err, /unknown flag --froce \(did you mean --force\?\)/);
  });

  it('a flag followed by another flag instead of its value is refused, not taken as the value', async (t) => {
    const r = await run(t, ['--nodes', 'node-a', '--out', '--force']);
    assert.equal(r.code, initClusterExit.usage);
    assert.match(r.err, /--out needs a value \(DIR\)/);
  });

  it('a missing --nodes or --out is named', async (t) => {
    assert.match((await run(t, ['--out', '/nonexistent/x'])).err, /missing --nodes/);
    assert.match((await run(t, ['--nodes', 'node-a'])).err, /missing --out DIR/);
  });

  it('a --listen port outside 1-65535 is a usage error, as haul web says', async (t) => {
    const r = await run(t, ['--nodes', 'node-a', '--out', '/nonexistent/x', '--listen', '0.0.0.0:99999']);
    assert.equal(r.code, initClusterExit.usage);
    assert.match(r.err, /--listen must be HOST:PORT, the port from 1 to 65535 \(got "0.0.0.0:99999"\)/);
  });

  it('a folder that holds files exits 73, a code of the registry that means nothing else', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'haul-init-unit-'));
    try {
      writeFileSync(join(dir, 'kept'), 'x');
      const r = await run(t, ['--nodes', 'node-a', '--out', dir]);
      assert.equal(r.code, 73);
      assert.match(r.err, /exists and is not empty/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const registry: number[] = Object.values(exitCodes).map((e) => e.code);
    for (const [name, code] of Object.entries(initClusterExit))
      assert.ok(registry.includes(code), `${name} (${code}) is in the registry`);
    assert.equal(initClusterExit.notEmpty, exitCodes.outputNotEmpty.code);
    assert.equal(initClusterExit.openssl, exitCodes.opensslFailed.code);
  });

  it('--help lists every flag, and fits the terminal’s width', async (t) => {
    const r = await run(t, ['--help'], 80);
    assert.equal(r.code, initClusterExit.ok);
    assert.equal(r.out, initClusterHelp(80));
    for (const flag of ['nodes', 'out', 'cluster', 'host', 'listen', 'store-dir', 'server-dir', 'force'])
      assert.match(r.out, new RegExp(`^  --${flag}\\b`, 'm'), flag);
    for (const width of [80, 60])
      assert.deepEqual(
        initClusterHelp(width)
          .split('\n')
          .filter((l) => l.length > width),
        [],
      );
  });
});
