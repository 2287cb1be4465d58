import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { PAGE } from './memory.ts';
import { restoreMemory, writePageImages } from './images.ts';

const root = mkdtempSync(join(tmpdir(), 'haul-images-'));
after(() => rmSync(root, { recursive: true, force: true }));

describe('page images', () => {
  it('given a full dump and then every other page changed, when dumped again on top, then the chain restores the memory', () => {
    const pages = 3000; // every other page: 1,500 runs, more than one writev(2) takes
    const mem = randomBytes(pages * PAGE);
    const full = join(root, 'full');
    mkdirSync(full);
    const all = Uint32Array.from({ length: pages }, (_, p) => p);
    assert.equal(writePageImages(full, 7, all, mem), 8 + 4 * pages + pages * PAGE);
    assert.deepEqual(readFileSync(join(full, 'pages-1.img')), mem);

    const changed = Uint32Array.from({ length: pages / 2 }, (_, i) => 2 * i + 1);
    for (const p of changed) randomBytes(PAGE).copy(mem, p * PAGE);
    const next = join(root, 'next');
    mkdirSync(next);
    symlinkSync('../full', join(next, 'parent'));
    writePageImages(next, 7, changed, mem);
    const written = readFileSync(join(next, 'pages-1.img'));
    assert.equal(written.length, changed.length * PAGE);
    changed.forEach((p, i) =>
      assert.ok(written.subarray(i * PAGE, (i + 1) * PAGE).equals(mem.subarray(p * PAGE, (p + 1) * PAGE))),
    );

    const { mem: restored, pagesRestored } = restoreMemory(next, pages * PAGE);
    assert.equal(pagesRestored, pages);
    assert.ok(restored.equals(mem));
  });
});
