import assert from 'node:assert/strict';
import { runInNewContext } from 'node:vm';
import { describe, it } from 'node:test';
import { build } from 'esbuild';
import { oneByteSource } from '../scripts/one-byte-source.mjs';

const oneByte = (s: string) => [...s].every((c) => c.charCodeAt(0) <= 0xff);
/** What the code evaluates to, copied out of its own context (whose arrays have a prototype of their own). */
const run = (code: string) => Array.from(runInNewContext(code) as unknown[]);
/** The source as esbuild bundles it for a program (scripts/build.mjs: its default charset, not minified). */
async function bundled(source: string): Promise<string> {
  const r = await build({
    stdin: { contents: source, loader: 'js' },
    bundle: true,
    write: false,
    platform: 'node',
    format: 'cjs',
    logLevel: 'silent',
  });
  return r.outputFiles[0]!.text;
}

describe('a bundle with no character beyond Latin-1 (scripts/one-byte-source.mjs)', () => {
  it('given text with no character beyond Latin-1, when made one-byte, then it is the same text', () => {
    const src = 'const re = /(\\d+)(ns|µs|ms)/g; // a comment, é\n';
    assert.equal(oneByteSource(src, 'x.mjs'), src);
  });

  it('given comments beyond Latin-1 as esbuild prints them, when made one-byte, then only they change and the code does the same', async () => {
    const src = [
      'const limits = {',
      '  /** a — b ─── c 😀 */',
      '  a: 1,',
      '  // done — all',
      '  b: `x—${"é"}`,',
      '};',
      'module.exports = [limits.a, limits.b, /^(µs|ms)$/.test("µs"), "→"];',
    ].join('\n');
    const printed = await bundled(src);
    assert.match(printed, /\/\*\* a — b ─── c 😀 \*\//, 'esbuild keeps the comment as written');
    const made = oneByteSource(printed, 'x.cjs');
    assert.ok(oneByte(made), made);
    assert.match(made, /a \\u2014 b \\u2500\\u2500\\u2500 c \\ud83d\\ude00/);
    const evaluate = (code: string) =>
      run(`(() => { const module = { exports: [] }; ${code}; return module.exports; })()`);
    assert.deepEqual(evaluate(made), evaluate(printed));
    assert.deepEqual(evaluate(made), [1, 'x—é', true, '→']);
  });

  it('given a tagged template beyond Latin-1, which esbuild prints as written, when made one-byte, then the build fails, naming the file, line and character', async () => {
    const printed = await bundled('module.exports = String.raw`a—b`;');
    assert.match(printed, /String\.raw`a—b`/);
    assert.throws(
      () => oneByteSource(printed, 'dist/x.cjs'),
      /dist\/x\.cjs:\d+: U\+2014 is beyond Latin-1 outside a comment/,
    );
  });

  it('given a line separator in a comment, which would end a // comment, when made one-byte, then the build fails', () => {
    assert.throws(() => oneByteSource('// a\u2028b', 'x.mjs'), /x\.mjs:1: U\+2028, a line separator/);
    assert.throws(() => oneByteSource(' * a\u2029b', 'x.mjs'), /x\.mjs:1: U\+2029, a line separator/);
  });
});
