#!/usr/bin/env node
// `npm run demo [-- options]`: the demo (test/demo/demo.ts) run from a JavaScript bundle, in this process, not through
// tsx. Under tsx the demo's process compiled its TypeScript at every start: 1.3 CPU-s before `--help` printed with
// tsx's cache warm, 1.7 with it cold, against 0.3 from the bundle. The bundle is made as the tests' are
// (scripts/build-tests.mjs: npm packages stay in node_modules, source maps name the TypeScript file and line), under
// node_modules/.cache/haul/demo, and made again only when a file it was made from (esbuild's list of them), the lock
// file or this script is newer than it, or the repository moved. Two demos that make it at once each write their own
// folder and rename its files into place, so neither loads a half-written bundle.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entry = join('test', 'demo', 'demo.ts');
// HAUL_DEMO_CACHE: another folder for it (a test's own, test/demo-bundle.int.test.ts).
const cache = process.env['HAUL_DEMO_CACHE'] || join(root, 'node_modules', '.cache', 'haul', 'demo');
const bundle = join(cache, 'test', 'demo', 'demo.mjs');
const madeFrom = join(cache, 'made-from.json');

const mtime = (path) => statSync(path, { throwIfNoEntry: false })?.mtimeMs;

/** The bundle is there, made in this repository after every file it was made from last changed. */
function fresh() {
  if (!existsSync(bundle) || !existsSync(madeFrom)) return false;
  const made = JSON.parse(readFileSync(madeFrom, 'utf8'));
  if (made.root !== root) return false;
  const also = [fileURLToPath(import.meta.url), join(root, 'package-lock.json')];
  return [...made.inputs.map((p) => join(root, p)), ...also].every((p) => (mtime(p) ?? Infinity) <= made.at);
}

async function make() {
  const at = Date.now();
  const own = join(cache, `.making-${process.pid}`);
  rmSync(own, { recursive: true, force: true });
  try {
    // esbuild's API is loaded only to make the bundle (it cost a start that finds the bundle fresh ≈ 0.2 CPU-s).
    const { bundleWithInputs } = await import('./build-tests.mjs');
    const { paths, inputs } = await bundleWithInputs(own, [entry]);
    mkdirSync(dirname(bundle), { recursive: true });
    // The map first: a demo that starts between the two renames loads the old bundle, whose lines it may misname.
    renameSync(`${paths[0]}.map`, `${bundle}.map`);
    renameSync(paths[0], bundle);
    writeFileSync(join(own, 'made-from.json'), JSON.stringify({ root, at, inputs }));
    renameSync(join(own, 'made-from.json'), madeFrom);
  } finally {
    rmSync(own, { recursive: true, force: true });
  }
}

if (!fresh()) await make();
process.setSourceMapsEnabled(true);
// The demo reads its options from process.argv after the script's path, as it would run on its own.
await import(pathToFileURL(bundle).href);
