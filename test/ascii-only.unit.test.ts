import assert from 'node:assert/strict';
import { runInNewContext } from 'node:vm';
import { describe, it } from 'node:test';
import { asciiOnly } from '../scripts/ascii-only.mjs';

const isAscii = (s: string) => [...s].every((c) => c.charCodeAt(0) < 0x80);

describe('a bundle written in ASCII (scripts/ascii-only.mjs)', () => {
  it('given ASCII text, when escaped, then it is the same text', () => {
    const src = 'const re = /(\\d+)(ms|s)/g; // a comment\n';
    assert.equal(asciiOnly(src, 'x.mjs'), src);
  });

  it('given comments and regular expressions beyond ASCII, when escaped, then the code is ASCII and does the same', () => {
    // What esbuild leaves: a comment's dashes and box drawing, a regular expression's µ, a character beyond the BMP
    // (in a `u` expression, where its surrogate pair must stay one character, and in one without).
    const src = [
      '/** a — b ─── c */',
      'const units = /^(ns|µs|ms)$/;',
      'const face = /^😀$/u;',
      'const pair = /^😀$/;',
      'const cls = /^[😀é]$/u;',
      '// done — all',
      '[units.test("µs"), units.test("us"), face.test("😀"), face.test("\\ud83d"), pair.test("😀"), cls.test("é"), cls.test("😀")]',
    ].join('\n');
    const escaped = asciiOnly(src, 'x.mjs');
    assert.ok(isAscii(escaped), escaped);
    assert.match(escaped, /\\u00b5s/);
    assert.match(escaped, /\\ud83d\\ude00/);
    // Copied out of the new context, whose arrays have a prototype of their own.
    const run = (code: string) => Array.from(runInNewContext(code) as boolean[]);
    const before = run(src);
    assert.deepEqual(before, [true, false, true, false, true, true, true]);
    assert.deepEqual(run(escaped), before);
  });

  it('given a backslash right before a character beyond ASCII, when escaped, then it fails, naming the file', () => {
    assert.throws(() => asciiOnly('const re = /\\µ/;', 'dist/x.mjs'), /dist\/x\.mjs: U\+00B5 at 13/);
  });

  it('given a line or paragraph separator, when escaped, then it fails: it ends a // comment', () => {
    assert.throws(() => asciiOnly('// a\u2028b', 'x.mjs'), /x\.mjs: U\+2028 at 4/);
    assert.throws(() => asciiOnly('// a\u2029b', 'x.mjs'), /x\.mjs: U\+2029 at 4/);
  });
});
