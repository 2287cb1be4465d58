import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  appendRecords,
  BLOCK,
  chainDigests,
  createDelta,
  eachRecord,
  mergeInto,
  RECORD,
  viewChecksum,
} from './delta.ts';

/** One block's record, appended and synced (as the page cache's writeback appends them). */
function appendBlock(file: string, index: number, data: Buffer): void {
  const rec = Buffer.alloc(RECORD);
  rec.writeUInt32LE(index, 0);
  data.copy(rec, 4);
  appendRecords(file, rec);
}

const root = mkdtempSync(join(tmpdir(), 'haul-delta-'));
after(() => rmSync(root, { recursive: true, force: true }));

describe('a delta read whole', () => {
  it('given records over several read chunks, a block written twice and a torn last record, then each block is its last whole write', () => {
    const file = join(root, 'root.hds');
    createDelta(file, 2 * 1024 * 1024);
    const expected = new Map<number, Buffer>();
    const records: Buffer[] = [];
    for (let n = 0; n < 2500; n++) {
      const index = n % 2000; // blocks 0-499 are written twice, the second write last
      const data = randomBytes(BLOCK);
      const rec = Buffer.alloc(4 + BLOCK);
      rec.writeUInt32LE(index, 0);
      data.copy(rec, 4);
      records.push(rec);
      expected.set(index, data);
    }
    appendFileSync(file, Buffer.concat(records));
    const last = randomBytes(BLOCK);
    appendBlock(file, 7, last);
    expected.set(7, last);
    appendFileSync(file, randomBytes(4 + BLOCK - 100)); // a record torn by a crash: not a block

    const blocks = new Map<number, Buffer>();
    eachRecord(file, (i, b) => blocks.set(i, Buffer.from(b)));
    assert.equal(blocks.size, expected.size);
    for (const [i, b] of expected) assert.ok(blocks.get(i)?.equals(b), `block ${i}`);
  });
});

/** A delta holding `blocks` (index → content), appended one after the other. */
function deltaWith(name: string, blocks: [number, Buffer][]): string {
  const file = join(root, name);
  createDelta(file, 2 * 1024 * 1024);
  for (const [i, b] of blocks) appendBlock(file, i, b);
  return file;
}
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const fill = (byte: number) => Buffer.alloc(BLOCK, byte);

describe('appending to a delta', () => {
  it('given a record torn by a crash at its end, when a block is appended, then the torn record is cut off and the new block is read whole', () => {
    const file = deltaWith('torn.hds', [[1, fill(1)]]);
    appendFileSync(file, randomBytes(4 + BLOCK - 100));
    appendBlock(file, 2, fill(2));
    const blocks = new Map<number, Buffer>();
    eachRecord(file, (i, b) => blocks.set(i, Buffer.from(b)));
    assert.deepEqual([...blocks.keys()], [1, 2]);
    assert.ok(blocks.get(2)!.equals(fill(2)));
    assert.equal(statSync(file).size, 16 + 2 * (4 + BLOCK));
  });
});

describe('a merge', () => {
  it("given a parent and a child that rewrites one of its blocks, when merged, then the parent holds the child's blocks over its own and the chain's view is unchanged", () => {
    const parent = deltaWith('merge-parent.hds', [
      [0, fill(10)],
      [1, fill(11)],
    ]);
    const child = deltaWith('merge-child.hds', [
      [1, fill(21)],
      [2, fill(22)],
    ]);
    const before = chainDigests([parent, child]);
    const parentSize = statSync(parent).size;
    assert.deepEqual(mergeInto(parent, child), { start: parentSize, end: parentSize + 2 * RECORD });
    assert.deepEqual(chainDigests([parent]), before);
    assert.deepEqual(
      [...before],
      [
        [0, sha(fill(10))],
        [1, sha(fill(21))],
        [2, sha(fill(22))],
      ],
    );
  });

  it('given a merge cut short by a crash (part of the child appended, a record torn), when it runs again, then the parent ends as after one whole merge', () => {
    const parent = deltaWith('again-parent.hds', [[0, fill(30)]]);
    const child = deltaWith('again-child.hds', [
      [0, fill(40)],
      [5, fill(45)],
    ]);
    const once = deltaWith('once-parent.hds', [[0, fill(30)]]);
    mergeInto(once, child);
    const rec = Buffer.alloc(4 + BLOCK);
    rec.writeUInt32LE(0, 0);
    fill(40).copy(rec, 4);
    appendFileSync(parent, Buffer.concat([rec, rec.subarray(0, 1000)]));
    assert.deepEqual(
      chainDigests([parent, child]),
      chainDigests([once]),
      'the view while the child is named',
    );
    mergeInto(parent, child);
    assert.deepEqual(chainDigests([parent]), chainDigests([once]));
  });
});

describe('a chain as digests', () => {
  it('given three deltas, then each block is the SHA-256 of its top-most write, and the checksum follows the content', () => {
    const base = deltaWith('chain-base.hds', [
      [0, fill(1)],
      [1, fill(2)],
      [3, fill(3)],
    ]);
    const mid = deltaWith('chain-mid.hds', [[1, fill(4)]]);
    const top = deltaWith('chain-top.hds', [
      [3, fill(5)],
      [3, fill(6)],
    ]);
    const view = chainDigests([base, mid, top]);
    assert.deepEqual(
      [...view].sort((a, b) => a[0] - b[0]),
      [
        [0, sha(fill(1))],
        [1, sha(fill(4))],
        [3, sha(fill(6))],
      ],
    );
    const sum = viewChecksum(view);
    assert.equal(sum.blocks, 3);
    // The same content through another chain (one delta) has the same checksum; one block different, another.
    const flat = deltaWith('chain-flat.hds', [
      [3, fill(6)],
      [0, fill(1)],
      [1, fill(4)],
    ]);
    assert.equal(viewChecksum(chainDigests([flat])).sha256, sum.sha256);
    assert.notEqual(viewChecksum(chainDigests([base, mid])).sha256, sum.sha256);
  });
});

describe('a file that is not a delta', () => {
  it('given a file without the header (empty, or something else), then an append refuses it and writes nothing', () => {
    for (const [name, content] of [
      ['empty.hds', Buffer.alloc(0)],
      ['other.hds', Buffer.from('not a delta at all, but long enough to hold a header')],
    ] as const) {
      const file = join(root, name);
      writeFileSync(file, content);
      assert.throws(() => appendBlock(file, 0, fill(1)), /not a delta/);
      assert.equal(statSync(file).size, content.length);
    }
  });
});
