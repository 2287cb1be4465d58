import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { PAGE } from './memory.ts';
import { restoreMemory, writePageImages } from './images.ts';

const root = mkdtempSync(join(tmpdir(), 'haul-images-'));
after(() => rmSync(root, { recursive: true, force: true }));

describe('page images', () => {
  it('given a full dump and then every other page changed, when dumped again on top, then the chain restores the memory', async () => {
    const pages = 3000; // every other page: 1,500 runs, more than one writev(2) takes
    const mem = randomBytes(pages * PAGE);
    const full = join(root, 'full');
    mkdirSync(full);
    const all = Uint32Array.from({ length: pages }, (_, p) => p);
    assert.equal(writePageImages(full, 7, all, mem), 8 + 4 * pages + pages * PAGE);
    assert.deepEqual(readFileSync(join(full, 'pages-1.img')), mem);
    // The full dump alone: one run of 3,000 pages, read in pieces of at most 2,048 by several lanes at once
    assert.ok((await restoreMemory(full, pages * PAGE)).mem.equals(mem));

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

    const { mem: restored, pagesRestored } = await restoreMemory(next, pages * PAGE);
    assert.equal(pagesRestored, pages);
    assert.ok(restored.equals(mem));
  });

  /** A dump of `pages` random pages, of which `indices` are in its images; its folder. */
  const dumpOf = (name: string, pages: number, indices: number[]): string => {
    const dir = join(root, name);
    mkdirSync(dir);
    writePageImages(dir, 7, Uint32Array.from(indices), randomBytes(pages * PAGE));
    return dir;
  };

  it('given a chain whose pages image is shorter than its pagemap says, when restored, then it fails naming that image', async () => {
    // Given a full dump, and a newer one on top of it, each cut short in turn
    const full = dumpOf(
      'short-full',
      64,
      Array.from({ length: 64 }, (_, p) => p),
    );
    const newer = dumpOf('short-newer', 64, [3, 4, 9]);
    symlinkSync('../short-full', join(newer, 'parent'));
    for (const [cut, size] of [
      [full, 63 * PAGE + 100], // read by the lanes
      [newer, 2 * PAGE], // read over it a MiB at a time
    ] as const) {
      const whole = readFileSync(join(cut, 'pages-1.img'));
      truncateSync(join(cut, 'pages-1.img'), size);
      // When the chain is restored, then the error names the image cut short
      await assert.rejects(restoreMemory(newer, 64 * PAGE), (e: Error) => {
        assert.equal(e.message, `${cut}/pages-1.img ends before the pages its pagemap names`);
        return true;
      });
      writeFileSync(join(cut, 'pages-1.img'), whole);
    }
    // And whole again, the chain restores
    assert.equal((await restoreMemory(newer, 64 * PAGE)).pagesRestored, 64);
  });

  it('given a dump that lacks a page, or names one beyond the memory, when restored, then it fails saying so', async () => {
    const holed = dumpOf('holed', 64, [...Array.from({ length: 40 }, (_, p) => p), 41, 42, 50]);
    await assert.rejects(
      restoreMemory(holed, 64 * PAGE),
      /restore: 21 of 64 pages are in no image of the chain/,
    );
    const beyond = dumpOf(
      'beyond',
      65,
      Array.from({ length: 65 }, (_, p) => p),
    );
    await assert.rejects(restoreMemory(beyond, 64 * PAGE), /beyond: page 64 beyond the CT's memory/);
  });
});
