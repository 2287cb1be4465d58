import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { appendBlock, BLOCK, createDelta, readDelta } from './delta.ts';

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

    const blocks = readDelta(file);
    assert.equal(blocks.size, expected.size);
    for (const [i, b] of expected) assert.ok(blocks.get(i)?.equals(b), `block ${i}`);
  });
});
