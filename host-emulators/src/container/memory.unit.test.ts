import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { faultedMemory, initialMemory, memoryChecksum, PAGE, PageDigests } from './memory.ts';

const run = promisify(execFile);

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
 * How many page faults writing every page of memory from `faultedMemory` costs, in a node process of its own (the
 * unit shard's process may have a garbage collection sweeping other files' buffers meanwhile). Faults, not the growth
 * of resident memory: a buffer may be made of heap memory freed before and still resident (glibc raises its mmap
 * threshold as large blocks are freed, up to 32 MiB), which then grows nothing, so growth said little; three CI runs
 * saw 9, 11 and 12 MB for 16 to 40 MiB asked. A page not yet in memory costs a minor fault on its first write, a
 * resident one none, whichever way it came to be resident.
 */
async function faultsTouchingInAProcessOfItsOwn(
  size: number,
): Promise<{ faults: number; pages: number; length: number; zeroes: boolean }> {
  const script = `
    import { faultedMemory, PAGE } from ${JSON.stringify(new URL('./memory.ts', import.meta.url).href)};
    const mem = await faultedMemory(${size});
    const before = process.resourceUsage().minorPageFault;
    for (let at = 0; at < mem.length; at += PAGE) mem[at] = 0;
    mem[mem.length - 1] = 0;
    const faults = process.resourceUsage().minorPageFault - before;
    const pages = Math.ceil(mem.length / PAGE);
    process.stdout.write(JSON.stringify({ faults, pages, length: mem.length, zeroes: mem.equals(Buffer.alloc(${size})) }));
  `;
  const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: fileURLToPath(new URL('.', import.meta.url)),
  });
  return JSON.parse(stdout) as { faults: number; pages: number; length: number; zeroes: boolean };
}

describe("faultedMemory: the CT's memory faulted in before it is filled", () => {
  it('is the size asked for, every page of it resident, zeroes, a last piece shorter than the others included', async () => {
    // Given a size of five 8 MiB pieces and a page, above glibc's largest mmap threshold (a mapping of its own)
    const size = 40 * 1024 * 1024 + PAGE;

    // When the memory is faulted in, and then every page of it written, in a process that has done nothing else
    const { faults, pages, length, zeroes } = await faultsTouchingInAProcessOfItsOwn(size);

    // Then the writes found their pages in memory (a buffer only allocated costs a fault per page written: 10,241
    // here, where transparent huge pages are not on for every mapping), and every byte is zero. A sixteenth, not
    // none: the process's other threads may fault a page of their own meanwhile.
    assert.ok(faults < pages / 16, `${faults} page faults writing ${pages} pages`);
    assert.equal(length, size);
    assert.ok(zeroes, 'every byte is zero');
  });

  it('takes the initial content as a buffer allocated by itself would', async () => {
    // Given memory faulted in, of a size whose last piece is shorter than the others
    const size = 8 * 1024 * 1024 + PAGE;
    const mem = await faultedMemory(size);

    // When the initial content is written into it
    // Then it is the usual one
    assert.ok(initialMemory(size, 5, mem).equals(initialMemory(size, 5)));
  });
});
