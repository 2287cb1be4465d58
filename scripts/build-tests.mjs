#!/usr/bin/env node
// Test files as JavaScript bundles, one per file, for every tier of `npm test` (scripts/test.sh): under tsx, a test
// process compiled and linked every TypeScript module it imports through tsx's loader thread before its first test
// (docs/decisions.md 4 has the measurements). `node --import tsx --test FILE` still runs any one file from its source.
//
//   node scripts/build-tests.mjs OUT_DIR FILE...
//     writes a bundle for each FILE under OUT_DIR and prints its path, one per line, in the order of the FILEs
//
// What a bundle keeps as the source had it:
// - each module's own import.meta.url and import.meta.dirname (paths found relative to a source file still hold); a
//   module that uses import.meta otherwise fails the build, as that would be the bundle's;
// - npm packages are not bundled: each import is the file Node would load from the importing source's folder (a
//   workspace's own node_modules first, as schemas/ has its own Ajv), by its absolute path, with Node's conditions;
// - each bundle's modules run in the order Node would run them (no chunks shared between bundles, which run first);
// - every test file it reads (the build fails if esbuild left one out);
// - source maps, so that `node --enable-source-maps` names the source file and line of a failure.
// What differs: a function's source text (Function#toString) is esbuild's printing, and a top-level name that two
// modules share is renamed in one of them.
import { readFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const again = 'as-from-source';

/** How Node resolves `args.path` from its importer (esbuild's own resolution, given Node's conditions). */
const resolveAsNode = (b, args) =>
  b.resolve(args.path, {
    kind: args.kind,
    importer: args.importer,
    resolveDir: args.resolveDir,
    pluginData: again,
  });

/** `import.meta.url` and `import.meta.dirname` of the source file; any other use of import.meta is refused. */
function withOwnImportMeta(source, path) {
  const out = source
    .replace(/\bimport\.meta\.url\b/g, JSON.stringify(pathToFileURL(path).href))
    .replace(/\bimport\.meta\.dirname\b/g, JSON.stringify(dirname(path)));
  const other = /\bimport\.meta\b.{0,20}/.exec(out);
  if (other) throw new Error(`${relative(root, path)}: ${other[0]}… would be the bundle's, not this file's`);
  return out;
}

const asFromSource = {
  name: again,
  setup(b) {
    // A bare import that resolves into node_modules stays outside the bundle, as the file Node would load; the
    // workspace's packages (linked into node_modules, resolved to their sources) are bundled.
    b.onResolve({ filter: /^[^./]/ }, async (args) => {
      if (args.pluginData === again) return undefined;
      const r = await resolveAsNode(b, args);
      // Not installed here (an optional package a test loads only when it is there): Node says so at run time.
      if (r.errors.length > 0) return { path: args.path, external: true };
      return r.external || r.path.includes('/node_modules/') ? { path: r.path, external: true } : r;
    });
    // A test file is imported for its side effects, its tests (a unit shard imports nothing from it): kept even in
    // a package that says it has none (packages/bus, schemas: "sideEffects": false).
    b.onResolve({ filter: /\.test\.ts$/ }, async (args) => {
      if (args.pluginData === again) return undefined;
      const r = await resolveAsNode(b, args);
      return r.errors.length > 0 ? undefined : { path: r.path, sideEffects: true };
    });
    b.onLoad({ filter: /\.ts$/ }, async (args) => ({
      contents: withOwnImportMeta(await readFile(args.path, 'utf8'), args.path),
      loader: 'ts',
    }));
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

/** Bundle `files` under `outDir`; returns each bundle's path, in the order of `files`. */
export async function buildTests(outDir, files) {
  return (await bundleWithInputs(outDir, files)).paths;
}

/**
 * buildTests, and the files the bundles were made from (paths relative to the repository, as esbuild lists them;
 * npm packages are loaded from node_modules at run time, not bundled: not among them).
 */
export async function bundleWithInputs(outDir, files) {
  const entries = files.map((f) => ({ in: f, out: outName(f) }));
  const { metafile } = await build({
    absWorkingDir: root,
    entryPoints: entries,
    outdir: outDir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    // As Node resolves an import: no "module" condition or field, which esbuild adds by default.
    conditions: [],
    mainFields: ['main'],
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
  return { paths: entries.map((e) => join(outDir, `${e.out}.mjs`)), inputs: Object.keys(metafile.inputs) };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [outDir, ...files] = process.argv.slice(2);
  if (!outDir || files.length === 0) {
    console.error('usage: node scripts/build-tests.mjs OUT_DIR FILE...');
    process.exit(2);
  }
  for (const path of await buildTests(outDir, files)) console.log(path);
}
