#!/usr/bin/env node
// The build: one esbuild bundle per program (services, CLI, emulators), so nothing compiles TypeScript at run
// time. Workspace code and npm packages are bundled (one file to load, and a package is the version its workspace
// pinned, whatever node_modules hoisting did), pino too (it logs to a file descriptor, no transport; loaded from
// node_modules, pino and the packages it requires took 25-50 ms of CPU of each service's start), except
// pino-pretty, which a service loads from node_modules only when asked for human-readable logs
// (packages/bus/src/logger.ts). The streamer also loads @node-rs/crc32 (a native binary) from node_modules at run
// time, through createRequire (image-streamer/src/wire.ts), and the emulators load fast-xml-parser from there at
// their first descriptor read (host-emulators/src/lib/lazy.ts).
// `--if-stale` builds only when a source is newer than the last build. Type checking is tsc's job (npm test).
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { oneByteSource } from './one-byte-source.mjs';
import { emulatorPrograms, esmPrograms, programs } from './programs.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

const sourceDirs = ['schemas', 'packages', 'services', 'host-emulators'];
/** The web view's page (`haul web`), put into the CLI's bundle: the files as packages/cli/src/web-page.ts names them. */
const webPageDir = join(root, 'packages', 'cli', 'web');
const webPage = () =>
  Object.fromEntries(
    readdirSync(webPageDir)
      .filter((f) => /\.(html|js|css)$/.test(f))
      .map((f) => [f, readFileSync(join(webPageDir, f), 'utf8')]),
  );
const stampFile = join(root, 'node_modules', '.cache', 'haul-build.json');

/** The newest modification time of any source the bundles are made from (and of this script and its modules). */
function newestSource() {
  const own = ['build.mjs', 'programs.mjs', 'one-byte-source.mjs'].map((f) =>
    fileURLToPath(new URL(`./${f}`, import.meta.url)),
  );
  // The root package.json too (the CLI bundles its version), and the lock: the bundles hold the npm packages it pins.
  let newest = Math.max(
    ...[...own, join(root, 'package.json'), join(root, 'package-lock.json')]
      .filter((f) => existsSync(f))
      .map((f) => statSync(f).mtimeMs),
  );
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.name === 'node_modules' || e.name === 'dist' || e.name === 'test') continue;
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(ts|json)$/.test(e.name) || dir === webPageDir)
        newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  for (const d of sourceDirs) walk(join(root, d));
  return newest;
}

function fresh() {
  if (!existsSync(stampFile)) return false;
  const stamp = JSON.parse(readFileSync(stampFile, 'utf8'));
  return stamp.newest >= newestSource() && programs.every(([, out]) => existsSync(join(root, out)));
}

const external = ['pino-pretty'];

export async function buildAll({ ifStale = false, quiet = false } = {}) {
  if (ifStale && fresh()) return false;
  const newest = newestSource();
  const t0 = performance.now();
  const common = {
    write: false,
    absWorkingDir: root,
    outdir: '.',
    bundle: true,
    platform: 'node',
    target: 'node20',
    sourcemap: 'linked',
    logLevel: 'warning',
    external,
  };
  const results = await Promise.all([
    build({
      ...common,
      entryPoints: esmPrograms.map(([i, o]) => ({ in: i, out: o.replace(/\.mjs$/, '') })),
      outExtension: { '.js': '.mjs' },
      format: 'esm',
      // The CLI stays one file: `haul web` serves the page from this constant (packages/cli/src/web-page.ts).
      define: { HAUL_WEB_PAGE: JSON.stringify(webPage()) },
      // CommonJS packages inside an ESM bundle call require() for Node's own modules.
      banner: {
        js: "import { createRequire as __haulCreateRequire } from 'node:module'; const require = __haulCreateRequire(import.meta.url);",
      },
    }),
    build({
      ...common,
      entryPoints: emulatorPrograms.map(([i, o]) => ({ in: i, out: o.replace(/\.cjs$/, '') })),
      outExtension: { '.js': '.cjs' },
      format: 'cjs',
      // A module that finds a file from import.meta.url (host-emulators/src/paths.ts) gets the bundle's own URL.
      define: { 'import.meta.url': '__haulBundleUrl' },
      banner: { js: "const __haulBundleUrl = require('node:url').pathToFileURL(__filename).href;" },
    }),
  ]);
  // Each file written whole and renamed into place: a program started during a build runs the old or the new one.
  for (const f of results.flatMap((r) => r.outputFiles)) {
    mkdirSync(dirname(f.path), { recursive: true });
    const contents = f.path.endsWith('.map') ? f.contents : oneByteSource(f.text, f.path);
    writeFileSync(`${f.path}.tmp-${process.pid}`, contents);
    renameSync(`${f.path}.tmp-${process.pid}`, f.path);
  }
  mkdirSync(dirname(stampFile), { recursive: true });
  writeFileSync(stampFile, JSON.stringify({ newest, builtAt: new Date().toISOString() }));
  if (!quiet)
    process.stderr.write(
      `[build] ${programs.length} bundles in ${Math.round(performance.now() - t0)} ms: ${programs
        .map(([, o]) => relative(root, join(root, o)))
        .join(', ')}\n`,
    );
  return true;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  if (args.includes('--help')) {
    console.log('usage: node scripts/build.mjs [--if-stale]\n  bundles every program into its dist/ folder');
    process.exit(0);
  }
  const unknown = args.filter((a) => a !== '--if-stale');
  if (unknown.length) {
    console.error(`build: unknown option ${unknown[0]} (known: --if-stale, --help)`);
    process.exit(2);
  }
  await buildAll({ ifStale: args.includes('--if-stale') });
}
