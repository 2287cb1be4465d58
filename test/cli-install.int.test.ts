import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { commands, exitCodes } from '@haul/cli';
import { ensureBuilt, repoRoot } from '@haul/test';

/**
 * The installed CLI, as an operator gets it: `npm pack` of the repository, `npm install -g` of that tarball (and of
 * the repository folder itself) into temporary prefixes, never the real global one, then `haul` called by name from
 * `/`, outside the repository.
 *
 * No network: the package is bin/haul.mjs and the CLI's bundle, and it has no dependencies (the bundle needs nothing
 * from node_modules; the services' runtime packages are declared by their workspaces, not by the root). So npm
 * installs with --offline and an empty cache of its own; a dependency added to the root package.json's
 * "dependencies" fails here (ENOTCACHED) instead of making every install of the CLI fetch it.
 */

const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string })
  .version;
const dir = realpathSync(mkdtempSync(join(tmpdir(), 'haul-install-')));
const npmFlags = ['--offline', '--no-audit', '--no-fund', '--cache', join(dir, 'npm-cache')];

/** This environment for npm, without what an enclosing `npm test` sets for its scripts (npm_config_*, …). */
const npmEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));

function npm(args: string[], cwd: string): SpawnSyncReturns<string> {
  const r = spawnSync('npm', args, { cwd, env: npmEnv, encoding: 'utf8' });
  assert.equal(r.error, undefined);
  assert.equal(r.status, 0, `npm ${args.join(' ')}\n${r.stderr}`);
  return r;
}

/** `haul ARGS` as a shell in `/` runs it: found on PATH (the prefix's bin, then node's folder), nothing else set. */
function haul(prefix: string, args: string[]): SpawnSyncReturns<string> {
  const r = spawnSync('haul', args, {
    cwd: '/',
    env: { PATH: `${join(prefix, 'bin')}:${dirname(process.execPath)}` },
    encoding: 'utf8',
  });
  assert.equal(r.error, undefined);
  return r;
}

after(() => rmSync(dir, { recursive: true, force: true }));

describe('npm pack, then npm install -g of the tarball', () => {
  const prefix = join(dir, 'tarball-prefix');
  const installed = join(prefix, 'lib', 'node_modules', 'haul');
  let files: string[] = [];

  before(() => {
    ensureBuilt();
    // prepack builds when a source is newer than the bundles (a no-op after ensureBuilt).
    const pack = npm(['pack', '--json', '--pack-destination', dir, ...npmFlags], repoRoot);
    const [report] = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
    files = report!.files.map((f) => f.path).sort();
    npm(['install', '-g', '--prefix', prefix, ...npmFlags, join(dir, report!.filename)], dir);
  });

  it('packs the bin and the CLI bundle, and installs no dependency', () => {
    assert.deepEqual(files, ['README.md', 'bin/haul.mjs', 'package.json', 'packages/cli/dist/haul.mjs']);
    assert.ok(existsSync(join(installed, 'packages', 'cli', 'dist', 'haul.mjs')));
    assert.ok(!existsSync(join(installed, 'node_modules')));
  });

  it('the bundle imports only Node.js modules (the commands not run here would find no node_modules either)', () => {
    const text = readFileSync(join(installed, 'packages', 'cli', 'dist', 'haul.mjs'), 'utf8');
    // Static imports and re-exports, bare imports, and import() or esbuild's __require() (CommonJS code) not inside
    // a string (Ajv keeps `require("ajv/dist/runtime/…")` as text, for the standalone code it can write).
    const forms = [
      /^\s*(?:import|export)\b[^;\n]*?\bfrom\s*["']([^"']+)["']/,
      /^\s*import\s*["']([^"']+)["']/,
      /(?<![\w.'"`])(?:__require|require|import)\(\s*["']([^"']+)["']\s*\)/,
    ];
    const re = new RegExp(forms.map((f) => f.source).join('|'), 'gm');
    const specifiers = new Set([...text.matchAll(re)].map((m) => m[1] ?? m[2] ?? m[3]!));
    assert.ok(specifiers.has('node:fs'), 'the scan finds imports at all');
    const builtin = new Set(builtinModules);
    assert.deepEqual(
      [...specifiers].filter((s) => !builtin.has(s.replace(/^node:/, ''))),
      [],
    );
  });

  it('haul --version and haul --help work from /', () => {
    const v = haul(prefix, ['--version']);
    assert.equal(v.status, exitCodes.completed.code, v.stderr);
    assert.equal(v.stdout, `${version}\n`);
    const h = haul(prefix, ['--help']);
    assert.equal(h.status, exitCodes.completed.code, h.stderr);
    assert.match(h.stdout, new RegExp(`^haul ${version.replace(/\./g, '\\.')}: `));
    for (const c of commands) assert.match(h.stdout, new RegExp(`^  ${c.name} `, 'm'));
  });

  it('haul --version starts within 0.5 s of CPU time', () => {
    // CPU time (user + system, every thread of the process), not wall time: on a busy machine (the tests run two
    // files at a time on two cores, beside whatever else runs) the wall time of a start says how long it waited
    // for a core, while its CPU time stays what it costs. A preload reports the process's own rusage at exit.
    // The least of three runs: the start's cost without the noise of one run. NODE_EXTRA_CA_CERTS and
    // NODE_OPTIONS are left out, as in haul() (a CA bundle alone costs ~70 ms).
    const probe = join(dir, 'cpu-probe.mjs');
    const report = join(dir, 'cpu.txt');
    writeFileSync(
      probe,
      `import { writeFileSync } from 'node:fs';
process.on('exit', () => {
  const u = process.resourceUsage();
  writeFileSync(${JSON.stringify(report)}, String((u.userCPUTime + u.systemCPUTime) / 1e6));
});
`,
    );
    const seconds: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = spawnSync(
        process.execPath,
        ['--import', pathToFileURL(probe).href, join(prefix, 'bin', 'haul'), '--version'],
        { cwd: '/', env: { PATH: dirname(process.execPath) }, encoding: 'utf8' },
      );
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, `${version}\n`);
      seconds.push(Number(readFileSync(report, 'utf8')));
    }
    assert.ok(Math.min(...seconds) < 0.5, `CPU seconds of haul --version: ${seconds.join(', ')}`);
  });
});

describe('npm install -g of a folder: a link to it', () => {
  it('of the repository: haul runs its bundle, from /', () => {
    ensureBuilt();
    const prefix = join(dir, 'repo-prefix');
    npm(['install', '-g', '--prefix', prefix, ...npmFlags, repoRoot], dir);
    const r = haul(prefix, ['--version']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${version}\n`);
  });

  it('of a tree never built: one line that says how to build it, and the usage exit code', () => {
    const tree = join(dir, 'unbuilt');
    mkdirSync(join(tree, 'bin'), { recursive: true });
    copyFileSync(join(repoRoot, 'bin', 'haul.mjs'), join(tree, 'bin', 'haul.mjs'));
    copyFileSync(join(repoRoot, 'package.json'), join(tree, 'package.json'));
    const prefix = join(dir, 'unbuilt-prefix');
    npm(['install', '-g', '--prefix', prefix, ...npmFlags, tree], dir);
    const r = haul(prefix, ['--version']);
    assert.equal(r.stderr, `haul: the CLI is not built; run \`npm run build\` in ${tree}\n`);
    assert.equal(r.stdout, '');
    assert.equal(r.status, exitCodes.usage.code);
  });
});
