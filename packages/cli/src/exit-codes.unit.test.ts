import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { commands } from './commands/index.ts';
import { exitCodes } from './exit-codes.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const doc = readFileSync(join(root, 'docs', 'cli.md'), 'utf8');
const readme = readFileSync(join(root, 'README.md'), 'utf8');

describe('the exit code registry', () => {
  it('gives every outcome its own code', () => {
    const codes = Object.values(exitCodes).map((e) => e.code);
    assert.equal(new Set(codes).size, codes.length);
    assert.ok(codes.every((c) => Number.isInteger(c) && c >= 0 && c <= 255));
  });
  it('is documented in docs/cli.md, one table row per code', () => {
    for (const [name, { code }] of Object.entries(exitCodes))
      assert.match(doc, new RegExp(`^\\| +${code} +\\| +\`${name}\` +\\|`, 'm'), `${code} ${name}`);
  });
  it('the README’s table has the same codes', () => {
    const rows = [...readme.matchAll(/^\| +([0-9]+) \| /gm)].map((m) => Number(m[1]));
    assert.deepEqual(
      rows,
      Object.values(exitCodes).map((e) => e.code),
    );
  });
  it('every command is documented in docs/cli.md', () => {
    for (const c of commands) assert.match(doc, new RegExp(`^### \`haul ${c.name}`, 'm'), c.name);
  });
});
