import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { faultedMemory, initialMemory, memoryChecksum, PAGE, PageDigests } from './memory.ts';

const bytes = 64 * PAGE;

describe('PageDigests: the memory checksum as a digest of per-page digests', () => {
  it('gives the same checksum for the same memory', () => {
    // Given two copies of the same memory
    const a = initialMemory(bytes, 7);
    const b = Buffer.from(a);

    // When each gets its digests
    const sums = [new PageDigests(a).checksum(), new PageDigests(b).checksum()];

    // Then the checksums are equal, and a checksum asked again does not change
    assert.equal(sums[0], sums[1]);
    const d = new PageDigests(a);
    assert.equal(d.checksum(), d.checksum());
  });

  it('changes when a byte of a page marked stale changes', () => {
    // Given a memory whose digests are up to date
    const mem = initialMemory(bytes, 7);
    const d = new PageDigests(mem);
    const before = d.checksum();

    // When one byte of page 5 is written and the page is marked stale
    mem[5 * PAGE + 100] = mem[5 * PAGE + 100]! ^ 0xff;
    d.markStale(5);

    // Then the checksum differs, and it is the one computed from scratch over the memory as it is now
    const after = d.checksum();
    assert.notEqual(after, before);
    assert.equal(after, memoryChecksum(mem));
  });

  it('equals the checksum computed from scratch after many writes, refreshed in parts', () => {
    // Given a memory whose digests are up to date
    const mem = initialMemory(bytes, 11);
    const d = new PageDigests(mem);
    d.refresh();

    // When pages are written (some twice), each marked stale, and only part of them refreshed before the next writes
    for (const p of [3, 9, 3, 63, 0, 40]) {
      mem.writeUInt32LE((0xdeadbeef ^ p) >>> 0, p * PAGE + 8);
      d.markStale(p);
    }
    assert.equal(d.stale, 5, 'a page marked twice is stale once');
    assert.equal(d.refresh(2), 3);
    mem.writeUInt32LE(1, 20 * PAGE + 16);
    d.markStale(20);

    // Then the checksum equals the one over the same memory from scratch
    assert.equal(d.checksum(), memoryChecksum(mem));
    assert.equal(d.stale, 0);
  });

  it('from scratch covers every page, the last one included', () => {
    // Given a memory and a copy that differs in its last page only
    const mem = initialMemory(bytes, 3);
    const other = Buffer.from(mem);
    other[bytes - 1] = other[bytes - 1]! ^ 1;

    // When both are summed from scratch
    // Then they differ: no page is left out of a fresh checksum
    assert.notEqual(memoryChecksum(mem), memoryChecksum(other));
  });
});

/**
 * This process's resident memory, in bytes, counted page by page: smaps_rollup walks the page tables, where VmRSS in
 * /proc/self/status is the kernel's per-CPU counters read without summing them (mm_struct rss_stat since Linux 6.2),
 * off by up to their batch on every CPU.
 */
const residentBytes = (): number =>
  Number(/^Rss:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'))![1]) * 1024;

describe("faultedMemory: the CT's memory faulted in before it is filled", () => {
  it('is the size asked for, every page of it resident, zeroes, a last piece shorter than the others included', async () => {
    // Given a size of five 8 MiB pieces and a page: above glibc's largest mmap threshold (32 MiB on 64-bit), so the
    // buffer is a new mapping whose pages are not in memory yet, not freed memory of the heap used again
    const size = 40 * 1024 * 1024 + PAGE;
    const before = residentBytes();

    // When the memory is faulted in
    const mem = await faultedMemory(size);

    // Then its pages are in memory already (a buffer only allocated would not be: the kernel maps pages on first
    // touch), every byte is zero, and the initial content written into it is the usual one
    // (half of it, not all: the garbage collector or the kernel may give some other memory back meanwhile; a buffer
    // only allocated grows it by a few pages)
    const grown = residentBytes() - before;
    assert.ok(grown >= size / 2, `resident memory grew by ${grown} bytes for ${size}`);
    assert.equal(mem.length, size);
    assert.ok(mem.equals(Buffer.alloc(size)));
    assert.ok(initialMemory(size, 5, mem).equals(initialMemory(size, 5)));
  });
});
