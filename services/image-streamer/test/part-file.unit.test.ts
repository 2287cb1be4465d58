import assert from 'node:assert/strict';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdtempSync,
  openSync,
  closeSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it, mock } from 'node:test';
import {
  keepWriteBackFailure,
  PartFile,
  partPathOf,
  sumsPathOf,
  syncOnPool,
  verifiedPrefix,
  writeBackFailedPathOf,
  writeBackFailure,
} from '../src/part-file.ts';
import { UpdateFile } from '../src/update-file.ts';
import { CHUNK, chunkDigest } from '../src/wire.ts';

const dir = mkdtempSync(join(tmpdir(), 'haul-part-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const SIZE = 3 * CHUNK + 123;
const data = randomBytes(SIZE);
const chunkAt = (k: number) => data.subarray(k * CHUNK, Math.min(SIZE, (k + 1) * CHUNK));

/** Run `fn` with `fs[name]` replaced by `impl`, for the code under test's imports of it too, then put it back. */
async function withFs<K extends 'fdatasync' | 'writeSync' | 'closeSync'>(
  name: K,
  impl: (typeof fs)[K],
  fn: () => Promise<void> | void,
): Promise<void> {
  const m = mock.method(fs, name, impl as never);
  syncBuiltinESMExports();
  try {
    await fn();
  } finally {
    m.mock.restore();
    syncBuiltinESMExports();
  }
}

/** Write chunks `ks` of `data` into a fresh part file at `path` and close it (a transfer broken off). */
function partial(path: string, ks: number[]): void {
  const f = new PartFile(path, SIZE, 0o644, 0);
  for (const k of ks) f.write(k * CHUNK, chunkAt(k), chunkDigest(chunkAt(k)));
  f.close();
}

describe('part files: the resume point is re-verified from disk, not trusted', () => {
  it('counts the contiguous verified prefix, in chunks', async () => {
    const p = join(dir, 'a.img');
    partial(p, [0, 1, 3]);
    assert.equal(await verifiedPrefix(p, SIZE), 2 * CHUNK, 'chunk 2 is missing, so chunk 3 does not count');
  });

  it('stops at a chunk whose bytes no longer match their sum (lost or torn write)', async () => {
    const p = join(dir, 'b.img');
    partial(p, [0, 1, 2]);
    const fd = openSync(partPathOf(p), 'r+');
    writeSync(fd, Buffer.alloc(4096), 0, 4096, CHUNK + 10); // what a crash that lost page-cache data leaves
    closeSync(fd);
    assert.equal(await verifiedPrefix(p, SIZE), CHUNK);
  });

  it('stops where the part file was cut short', async () => {
    const p = join(dir, 'c.img');
    partial(p, [0, 1, 2]);
    truncateSync(partPathOf(p), 2 * CHUNK + 5);
    assert.equal(await verifiedPrefix(p, SIZE), 2 * CHUNK);
  });

  it('starts over when the sums belong to a file of another size, or are missing', async () => {
    const p = join(dir, 'd.img');
    partial(p, [0, 1]);
    assert.equal(await verifiedPrefix(p, SIZE + 1), 0);
    rmSync(sumsPathOf(p));
    assert.equal(await verifiedPrefix(p, SIZE), 0);
  });

  it('resumes from the prefix and finishes into the real name, byte for byte', async () => {
    const p = join(dir, 'e.img');
    partial(p, [0, 1]);
    const prefix = await verifiedPrefix(p, SIZE);
    const f = new PartFile(p, SIZE, 0o644, prefix);
    for (let k = prefix / CHUNK; k * CHUNK < SIZE; k++)
      f.write(k * CHUNK, chunkAt(k), chunkDigest(chunkAt(k)));
    assert.equal(f.complete, true);
    await f.finish(true);
    assert.ok(readFileSync(p).equals(data));
    assert.ok(!existsSync(partPathOf(p)) && !existsSync(sumsPathOf(p)), 'no part or sums file left');
    assert.equal(await verifiedPrefix(p, SIZE), SIZE, 'a finished file counts whole');
  });
});

describe('part files read back once: an offer sent again is answered from that read while nothing changed', () => {
  it('answers a second read-back of an unchanged part file without reading it', async () => {
    const p = join(dir, 'e.img');
    partial(p, [0, 1]);
    const read: number[] = [];
    assert.equal(await verifiedPrefix(p, SIZE, (n) => void read.push(n)), 2 * CHUNK);
    assert.deepEqual(read, [CHUNK, CHUNK]);
    assert.equal(await verifiedPrefix(p, SIZE, (n) => void read.push(n)), 2 * CHUNK);
    assert.deepEqual(read, [CHUNK, CHUNK], 'nothing read the second time');
  });

  it('reads back again a part file written since (a reception resumed it)', async () => {
    const p = join(dir, 'f.img');
    partial(p, [0, 1]);
    assert.equal(await verifiedPrefix(p, SIZE), 2 * CHUNK);
    const f = new PartFile(p, SIZE, 0o644, 2 * CHUNK);
    f.write(2 * CHUNK, chunkAt(2), chunkDigest(chunkAt(2)));
    f.close();
    assert.equal(await verifiedPrefix(p, SIZE), 3 * CHUNK);
  });

  it('reads back again a part file changed since by anything else (cut short)', async () => {
    const p = join(dir, 'g.img');
    partial(p, [0, 1, 2]);
    assert.equal(await verifiedPrefix(p, SIZE), 3 * CHUNK);
    truncateSync(partPathOf(p), CHUNK + 5);
    assert.equal(await verifiedPrefix(p, SIZE), CHUNK);
  });
});

describe('a failed background writeback of a file, kept', () => {
  it('is kept beside the file and in the process, and forgotten by both once the file is written again from its first byte', () => {
    const path = join(dir, 'kept-writeback.img');
    writeFileSync(path, Buffer.alloc(4096));
    assert.equal(keepWriteBackFailure(path, 'EIO: i/o error, fdatasync'), true);
    assert.equal(writeBackFailure(path), 'EIO: i/o error, fdatasync');
    assert.equal(existsSync(writeBackFailedPathOf(path)), true);

    // A pass sends the file again from its start: the part file made for it forgets the failure (both places)
    new PartFile(path, CHUNK, 0o644, 0).close();
    assert.equal(writeBackFailure(path), undefined);
    assert.equal(existsSync(writeBackFailedPathOf(path)), false);
  });
});

describe("the passes' syncs on libuv's pool", () => {
  it('run two at a time, so that a pool thread stays free for the other transfers', async () => {
    // Given syncs that return only when the test lets them (a busy disk)
    const go: (() => void)[] = [];
    const m = mock.method(fs, 'fdatasync', (_fd: number, cb: (err: null) => void) => go.push(() => cb(null)));
    syncBuiltinESMExports();
    const turn = () => new Promise((r) => setImmediate(r));
    try {
      // When three frozen passes sync at once
      const fds = [0, 1, 2].map((k) => openSync(join(dir, `pool-${k}.img`), 'w'));
      const done = fds.map((fd) => syncOnPool(fd, 'data'));
      await turn();
      // Then two run, and the third starts when one of them has returned
      assert.equal(go.length, 2);
      go.shift()!();
      await turn();
      assert.equal(go.length, 2);
      for (const next of go.splice(0)) next();
      await Promise.all(done);
      for (const fd of fds) closeSync(fd);
    } finally {
      m.mock.restore();
      syncBuiltinESMExports();
    }
  });
});

describe('a durable finish whose sync fails', () => {
  /** Run `fn` with every fdatasync failing as a disk's write error does (EIO), then put fdatasync back. */
  const withFailingSync = (fn: () => Promise<void>): Promise<void> =>
    withFs(
      'fdatasync',
      ((_fd: number, cb: (err: Error) => void) =>
        cb(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }))) as typeof fs.fdatasync,
      fn,
    );

  it('keeps the failure for its file: bytes read back from the page cache later do not undo it', async () => {
    const path = join(dir, 'sync-fails.img');
    const f = new PartFile(path, SIZE, 0o644, 0);
    for (const k of [0, 1, 2, 3]) f.write(k * CHUNK, chunkAt(k), chunkDigest(chunkAt(k)));
    await withFailingSync(() => assert.rejects(f.finish(true), /EIO/));
    // The part file would read back whole (the page cache has it), and a sync on a new descriptor would return 0:
    // none of it counts as verified, so a full pass sends it again from its first byte, which clears the failure
    assert.match(writeBackFailure(path) ?? '', /^a pass's fdatasync: EIO/);
    assert.equal(existsSync(writeBackFailedPathOf(path)), true);
    assert.equal(await verifiedPrefix(path, SIZE), 0);
    new PartFile(path, SIZE, 0o644, 0).close();
    assert.equal(writeBackFailure(path), undefined);
  });

  it('keeps it for a file an update pass writes in place, and closes the file', async () => {
    const path = join(dir, 'update-sync-fails.img');
    writeFileSync(path, Buffer.alloc(4096));
    const u = new UpdateFile(path, 0o644);
    u.write(0, Buffer.alloc(4096, 7));
    await withFailingSync(() => assert.rejects(u.finish(4096, true), /EIO/));
    assert.match(writeBackFailure(path) ?? '', /^a pass's fdatasync: EIO/);
    assert.doesNotThrow(() => u.close());
  });
});

describe('a write the disk takes only part of (a full disk, a quota, a file size limit)', () => {
  /**
   * Run `fn` while the data's writes (more than a sum's few bytes) take at most `room` more bytes in all, then fail
   * with ENOSPC; a sum's write goes into a block the sums file has already, and is taken.
   */
  function withRoom(room: number, fn: () => Promise<void> | void): Promise<void> {
    const real = fs.writeSync;
    let left = room;
    const short = (fd: number, buf: Buffer, off: number, len: number, pos: number) => {
      if (len <= 16) return real(fd, buf, off, len, pos);
      if (left <= 0)
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      const n = real(fd, buf, off, Math.min(len, left), pos);
      left -= n;
      return n;
    };
    return withFs('writeSync', short as typeof fs.writeSync, fn);
  }

  it('fails the chunk whose last slice was taken in part: its sum is not recorded, the file not finished', async () => {
    // Given a part file with chunk 0 written, and room for chunk 1 and all but 1000 bytes of chunk 2
    const p = join(dir, 'short.img');
    const f = new PartFile(p, SIZE, 0o644, 0);
    f.write(0, chunkAt(0), chunkDigest(chunkAt(0)));
    await withRoom(2 * CHUNK - 1000, () => {
      f.write(CHUNK, chunkAt(1), chunkDigest(chunkAt(1)));
      // When chunk 2's last write is taken in part, with no error: the chunk fails (before: its sum was recorded,
      // the prefix advanced, and the finish filled the missing bytes with zeros)
      assert.throws(() => f.write(2 * CHUNK, chunkAt(2), chunkDigest(chunkAt(2))), /ENOSPC/);
    });
    f.close();
    // Then the verified prefix stops before chunk 2
    assert.equal(await verifiedPrefix(p, SIZE), 2 * CHUNK);
  });

  it('fails an update pass the same way', async () => {
    const p = join(dir, 'short-update.img');
    const u = new UpdateFile(p, 0o644);
    await withRoom(CHUNK - 1000, () => assert.throws(() => u.write(0, chunkAt(0)), /ENOSPC/));
    u.close();
  });
});

describe('a part file whose close reports an error (NFS: a delayed write error)', () => {
  it('closes its sums file too, and throws the error', async () => {
    const f = new PartFile(join(dir, 'close.img'), SIZE, 0o644, 0);
    const real = fs.closeSync;
    const closed: number[] = [];
    const failingOnce = (fd: number) => {
      real(fd);
      closed.push(fd);
      if (closed.length === 1) throw Object.assign(new Error('EIO: i/o error, close'), { code: 'EIO' });
    };
    await withFs('closeSync', failingOnce, () => assert.throws(() => f.close(), /EIO/));
    assert.equal(closed.length, 2, 'both descriptors closed');
  });
});

describe("the receiver's files beside a copy's file, with something planted at their names", () => {
  it('a failed writeback is never written through a link there, and a link or a FIFO read as its marker counts as a failure, without a wait', () => {
    // Given a link planted at a file's marker name, pointing at a file of someone else's
    const p = join(dir, 'planted.img');
    const victim = join(dir, 'victim');
    fs.writeFileSync(victim, 'keep me\n');
    fs.symlinkSync(victim, writeBackFailedPathOf(p));
    // When a failed writeback of the file is kept: only this process knows, and the victim is untouched
    assert.equal(keepWriteBackFailure(p, 'EIO'), false);
    assert.equal(fs.readFileSync(victim, 'utf8'), 'keep me\n');
    // And a process that did not see the failure reads the link as one (never its target's text)
    const q = join(dir, 'planted2.img');
    fs.symlinkSync(victim, writeBackFailedPathOf(q));
    assert.match(writeBackFailure(q) ?? '', /ELOOP/);
    // A FIFO there: a failure too, and the read does not wait for a writer
    const r = join(dir, 'planted3.img');
    execFileSync('mkfifo', [writeBackFailedPathOf(r)]);
    assert.equal(writeBackFailure(r), 'its marker is not a regular file');
  });

  it('an update pass refuses a FIFO at its file name instead of writing into it', () => {
    const p = join(dir, 'fifo.img');
    execFileSync('mkfifo', [p]);
    assert.throws(() => new UpdateFile(p, 0o644), /EEXIST/);
  });
});

describe('an update pass that ends before every extent it declared has come', () => {
  it('says which declared range is not wholly written: the pass is not done over older bytes', () => {
    const u = new UpdateFile(join(dir, 'extents.img'), 0o644);
    const piece = (from: number, to: number) => u.write(from, data.subarray(from, to));
    // Given extents [0, 100) and [4096, 12288) declared, the second sent in two pieces, its end missing
    piece(0, 100);
    piece(4096, 8192);
    piece(8192, 12000);
    assert.deepEqual(
      u.uncovered([
        [4096, 12288],
        [0, 100],
      ]),
      [4096, 12288],
    );
    // When the rest comes (overlapping what came): every declared range is written whole
    piece(11000, 12288);
    assert.equal(
      u.uncovered([
        [0, 100],
        [4096, 12288],
      ]),
      undefined,
    );
    // And a range declared but never sent at all is named
    assert.deepEqual(u.uncovered([[20000, 20001]]), [20000, 20001]);
    u.close();
  });
});

describe('an update pass into a file an earlier pass did not leave', () => {
  it('knows it made the file: only all of it sent makes it whole', () => {
    const there = join(dir, 'there.img');
    writeFileSync(there, Buffer.alloc(8192, 7));
    const kept = new UpdateFile(there, 0o644);
    assert.equal(kept.created, false);
    kept.close();
    const made = new UpdateFile(join(dir, 'made.img'), 0o644);
    assert.equal(made.created, true);
    made.write(4096, data.subarray(4096, 8192));
    // Its extents came, but bytes 0-4096 of it were never sent: they would read as zeros in the copy
    assert.equal(made.uncovered([[4096, 8192]]), undefined);
    assert.deepEqual(made.uncovered([[0, 8192]]), [0, 8192]);
    made.close();
  });
});
