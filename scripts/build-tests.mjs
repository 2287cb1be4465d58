#!/usr/bin/env node
// Test files as JavaScript bundles, for the tiers of `npm test` whose files each start a process (scripts/test.sh):
// under tsx, a test process compiled and linked every TypeScript module it imports through tsx's loader thread
// before its first test, 2.3-2.5 CPU-s for an integration file that imports the test harness (most do), on this
// 2-core machine where the integration tier is bound by CPU; from its bundle, 0.3-0.5 (see scripts/test.sh for the
// tiers' times). `node --import tsx --test FILE` still runs any one file from its source.
//
//   node scripts/build-tests.mjs OUT_DIR FILE...   → OUT_DIR/FILE with .ts replaced by .mjs, for each FILE
//
// What a bundle keeps as the source had it:
// - each module's own import.meta.url and import.meta.dirname (paths found relative to a source file still hold);
// - npm packages are not bundled: each import is the file Node would load from the importing source's folder (a
//   workspace's own node_modules first, as schemas/ has its own ajv), by its absolute path;
// - source maps, so that `node --enable-source-maps` names the source file and line of a failure.
import { readFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Every module keeps its own import.meta; npm packages stay outside the bundle, as Node would resolve them. */
const asFromSource = {
  name: 'as-from-source',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, async (args) => {
      if (args.path.startsWith('@haul/') || args.pluginData === 'as-from-source') return undefined;
      const r = await b.resolve(args.path, {
        kind: args.kind,
        importer: args.importer,
        resolveDir: args.resolveDir,
        pluginData: 'as-from-source',
      });
      // Not installed here (an optional package a test loads only when it is there): Node says so at run time.
      if (r.errors.length > 0) return { path: args.path, external: true };
      return { path: r.path, external: true };
    });
    // A test file is imported for its side effects, its tests (a unit shard imports nothing from it): kept even in
    // a package that says it has none (packages/bus, schemas: "sideEffects": false).
    b.onResolve({ filter: /\.test\.ts$/ }, async (args) => {
      if (args.pluginData === 'as-from-source') return undefined;
      const r = await b.resolve(args.path, {
        kind: args.kind,
        importer: args.importer,
        resolveDir: args.resolveDir,
        pluginData: 'as-from-source',
      });
      return r.errors.length > 0 ? undefined : { path: r.path, sideEffects: true };
    });
    b.onLoad({ filter: /\.ts$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      const contents = source
        .replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href))
        .replaceAll('import.meta.dirname', JSON.stringify(dirname(args.path)));
      return { contents, loader: 'ts' };
    });
  },
};

/** A file's bundle, relative to the output folder: its path in the repository (else its name), without extension. */
function outName(file) {
  const inRepo = relative(root, resolve(root, file));
  return (inRepo.startsWith('..') ? basename(file) : inRepo).replace(/\.[cm]?[jt]s$/, '');
}

/**
 * Test files the bundles read but left out: none, or the tests of those files would not run and nothing would say so
 * (esbuild drops a module whose exports are unused when its package declares no side effects).
 */
function leftOut(metafile) {
  const emitted = new Set(
    Object.values(metafile.outputs).flatMap((o) =>
      Object.entries(o.inputs)
        .filter(([, i]) => i.bytesInOutput > 0)
        .map(([path]) => path),
    ),
  );
  return Object.keys(metafile.inputs).filter((p) => /\.test\.ts$/.test(p) && !emitted.has(p));
}

export async function buildTests(outDir, files) {
  const { metafile } = await build({
    absWorkingDir: root,
    entryPoints: files.map((f) => ({ in: f, out: outName(f) })),
    outdir: outDir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    sourcemap: 'linked',
    sourcesContent: false,
    logLevel: 'warning',
    plugins: [asFromSource],
    // CommonJS modules of the workspace (schemas' generated validators) require() their packages.
    banner: {
      js: "import { createRequire as __haulCreateRequire } from 'node:module'; const require = __haulCreateRequire(import.meta.url);",
    },
    metafile: true,
  });
  const lost = leftOut(metafile);
  if (lost.length > 0) throw new Error(`the test bundles left out ${lost.join(', ')}`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [outDir, ...files] = process.argv.slice(2);
  if (!outDir || files.length === 0) {
    console.error('usage: node scripts/build-tests.mjs OUT_DIR FILE...');
    process.exit(2);
  }
  await buildTests(outDir, files);
}
