import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pagesIn } from './dumps.ts';

void describe('pagesIn', () => {
  const dir = mkdtempSync(join(tmpdir(), 'haul-pages-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  void it('counts the pages of every pages-<n>.img of the dump, not only pages-1.img', () => {
    writeFileSync(join(dir, 'pages-1.img'), Buffer.alloc(3 * 4096));
    writeFileSync(join(dir, 'pages-2.img'), Buffer.alloc(2 * 4096));
    writeFileSync(join(dir, 'pages-17.img'), Buffer.alloc(4096));
    writeFileSync(join(dir, 'pagemap-1.img'), Buffer.alloc(4096));
    writeFileSync(join(dir, 'pages-1.img.tmp'), Buffer.alloc(4096));
    assert.equal(pagesIn(dir), 6);
  });

  void it('is 0 for a folder that is not there', () => {
    assert.equal(pagesIn(join(dir, 'none')), 0);
  });
});
