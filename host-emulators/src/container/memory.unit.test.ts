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
 * How much a process of its own grows in resident memory while `faultedMemory` makes a buffer of `size` bytes, and
 * whether that buffer is zeroes. A process of its own: in the unit shard's process, the 40 MiB allocated counts as
 * external memory, which starts a garbage collection, which frees the buffers of files run before in the shard (and
 * gives their pages back) while the memory is faulted in, so that process's growth says little (one CI run saw 12 MB
 * for 40). Resident memory is counted page by page, from smaps_rollup (the page tables walked), where VmRSS in
 * /proc/self/status is the kernel's per-CPU counters read without summing them (mm_struct rss_stat since Linux 6.2).
 */
async function faultedInAProcessOfItsOwn(
  size: number,
): Promise<{ grown: number; length: number; zeroes: boolean }> {
  const script = `
    import { readFileSync } from 'node:fs';
    import { faultedMemory } from ${JSON.stringify(new URL('./memory.ts', import.meta.url).href)};
    const resident = () => Number(/^Rss:\\s+(\\d+) kB$/m.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'))[1]) * 1024;
    const before = resident();
    const mem = await faultedMemory(${size});
    const grown = resident() - before;
    process.stdout.write(JSON.stringify({ grown, length: mem.length, zeroes: mem.equals(Buffer.alloc(${size})) }));
  `;
  const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: fileURLToPath(new URL('.', import.meta.url)),
  });
  return JSON.parse(stdout) as { grown: number; length: number; zeroes: boolean };
}

describe("faultedMemory: the CT's memory faulted in before it is filled", () => {
  it('is the size asked for, every page of it resident, zeroes, a last piece shorter than the others included', async () => {
    // Given a size of two 8 MiB pieces and a page
    const size = 16 * 1024 * 1024 + PAGE;

    // When the memory is faulted in, in a process that has done nothing else
    const { grown, length, zeroes } = await faultedInAProcessOfItsOwn(size);

    // Then its pages are in memory already (a buffer only allocated would not be: the kernel maps pages on first
    // touch, and such a buffer grows a process by a few pages), and every byte is zero. Three quarters, not all: the
    // process's own garbage collector may give some of its young heap back meanwhile.
    assert.ok(grown >= (size * 3) / 4, `resident memory grew by ${grown} bytes for ${size}`);
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
