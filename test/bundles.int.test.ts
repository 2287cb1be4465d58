import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ensureBuilt, repoRoot } from '@haul/test';
import { programs } from '../scripts/programs.mjs';

describe('the programs’ bundles', () => {
  it('given a build, then no bundle has a character beyond Latin-1: V8 holds each as a one-byte string', () => {
    ensureBuilt();
    for (const [, bundle] of programs) {
      const text = readFileSync(join(repoRoot, bundle), 'utf8');
      const at = text.search(/[^\x00-\xff]/);
      assert.equal(at, -1, `${bundle}: ${JSON.stringify(text.slice(at - 40, at + 10))}`);
    }
  });
});
