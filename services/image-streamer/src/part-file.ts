import {
  closeSync,
  constants,
  fdatasync,
  fstatSync,
  fsync,
  ftruncateSync,
  lstatSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { createSlots } from '@haul/bus';
import { noFollow, regularFileSize } from './confine.ts';
import { CHUNK, chunkDigest } from './wire.ts';

/**
 * A file being received. Its bytes go to `<file>.haul-part`; `<file>.haul-sums` records, for every 1 MiB chunk
 * written, the chunk's CRC-32 and length. Nothing is synced while streaming: the resume point is not trusted from
 * a counter but recomputed by reading the part file back and checking each chunk against its recorded sum, so a
 * machine crash that lost page-cache data, a torn write or a truncated part file shows up as a shorter verified
 * prefix, never as trusted garbage (once per process while the part file is unchanged: verifiedPrefix). The file
 * appears under its own name only once every byte was verified.
 *
 * haul-sums layout: "HAULSUM1", u64 LE file size, then slot k (8 bytes) = u32 LE CRC-32, u32 LE length (0: none).
 */
const MAGIC = Buffer.from('HAULSUM1');
const HEADER = 16;
const SLOT = 8;

export const partPathOf = (p: string) => `${p}.haul-part`;
export const sumsPathOf = (p: string) => `${p}.haul-sums`;
/**
 * Beside a file whose background writeback failed (receiver.ts syncInBackground, write-backs.ts): the failure, kept.
 * Linux reports a failed writeback once, marks the pages clean, and a descriptor opened after the error was seen does
 * not get it (on VZ7's 3.10 kernel the first fsync clears it for all): a later fsync of the file returns 0 over data
 * that never reached the disk. So the failure is written down where every later pass over the file finds it, and
 * fails.
 */
export const writeBackFailedPathOf = (p: string) => `${p}.haul-writeback-failed`;
/** Files whose background writeback failed in this process (beside them on disk too, when that could be written). */
const writeBackFailed = new Map<string, string>();

/** Keep a failed writeback of `path`, in this process and beside the file; false if only this process knows. */
export function keepWriteBackFailure(path: string, why: string): boolean {
  writeBackFailed.set(path, why);
  try {
    // Never through a link planted at the marker's name: written as root, it would truncate what it points to.
    const fd = openSync(writeBackFailedPathOf(path), noFollow.create, 0o600);
    try {
      const text = Buffer.from(`${why}\n`);
      writeAllAt(fd, text, 0, text.length, 0);
    } finally {
      closeSync(fd);
    }
    return true;
  } catch {
    return false;
  }
}

/**
 * Why a file of the copy cannot be trusted to be on disk (a writeback or a pass's sync of it failed), or undefined.
 * The marker is read without following a link and without waiting on a FIFO: anything but a regular file (or
 * nothing) at its name counts as a failure, so the file is sent again from its first byte.
 */
export function writeBackFailure(path: string): string | undefined {
  const why = writeBackFailed.get(path);
  if (why !== undefined) return why;
  let fd: number;
  try {
    fd = openSync(writeBackFailedPathOf(path), noFollow.read | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? undefined : `its marker cannot be read (${code})`;
  }
  try {
    if (!fstatSync(fd).isFile()) return 'its marker is not a regular file';
    return readFileSync(fd, 'utf8').trim() || 'failed';
  } finally {
    closeSync(fd);
  }
}

/**
 * fdatasync `fd`, a descriptor of the file that will be `path` (its part file, or the file), for a pass whose data must
 * reach the disk. A failure is kept as a failed background writeback is, before it is thrown: the kernel reported it
 * this once, and a pass tried again would read the file back from the page cache, sync it on a new descriptor, get 0
 * and call data on disk that never reached it. Every later pass over the file fails on it instead.
 *
 * On libuv's thread pool, not on the receiver's loop: a sync waits for the disk, and on ext4 for a sync running beside
 * it (another copy's writeback), and every transfer of the streamer would wait with it. Beside four other copies'
 * writebacks, an 8 MiB frozen pass held the loop for 160 ms with fdatasyncSync.
 */
export async function syncKeepingFailure(fd: number, path: string): Promise<void> {
  try {
    await syncOnPool(fd, 'data');
  } catch (err) {
    keepWriteBackFailure(path, `a pass's fdatasync: ${(err as Error).message}`);
    throw err;
  }
}

/**
 * The passes' syncs running at once: each holds one of libuv's four pool threads for as long as the disk takes, and
 * the background writebacks hold one more (write-backs.ts), so that a thread stays free for the reads, opens and
 * lookups of the other transfers when several copies' frozen passes end together.
 */
const passSyncs = createSlots(2);

/** fdatasync (`data`) or fsync (`all`: a folder's) `fd` on libuv's pool, at most two of the passes' at once. */
export async function syncOnPool(fd: number, what: 'data' | 'all'): Promise<void> {
  const release = await passSyncs.acquire();
  try {
    await new Promise<void>((resolve, reject) =>
      (what === 'data' ? fdatasync : fsync)(fd, (err) => (err ? reject(err) : resolve())),
    );
  } finally {
    release();
  }
}

/** The file is written again from its first byte: no earlier writeback of it counts any more. */
function clearWriteBackFailure(path: string): void {
  writeBackFailed.delete(path);
  rmSync(writeBackFailedPathOf(path), { force: true });
}

/** The receiver's own files beside a file of the copy: no file of a manifest may end so (manifest.ts). */
export const receiverSuffixes = ['.haul-part', '.haul-sums', '.haul-writeback-failed'] as const;

const chunkLength = (size: number, k: number) => Math.min(CHUNK, size - k * CHUNK);

function readSums(path: string, size: number): Buffer | undefined {
  if (regularFileSize(sumsPathOf(path)) === undefined || regularFileSize(partPathOf(path)) === undefined)
    return undefined;
  const fd = openSync(sumsPathOf(path), noFollow.read);
  try {
    const n = fstatSync(fd).size;
    const buf = Buffer.alloc(n);
    readSync(fd, buf, 0, n, 0);
    if (n < HEADER || !buf.subarray(0, 8).equals(MAGIC) || Number(buf.readBigUInt64LE(8)) !== size)
      return undefined;
    return buf;
  } finally {
    closeSync(fd);
  }
}

/**
 * What an earlier reception left beside a file that needs none: the sums of a finished file (a receiver that died
 * between a finish's rename and its unlink), the part and sums of a file now empty. A local disk's copy is the CT's
 * private area, and a later migration would copy them back as data.
 */
export function dropLeftovers(path: string): void {
  // A folder by such a name is not a reception's: it stays.
  for (const p of [partPathOf(path), sumsPathOf(path)]) if (regularFileSize(p) !== undefined) unlinkSync(p);
}

/** The finished file is here: a regular file (a link does not count) of the right size, with no part file beside it. */
export function isFinished(path: string, size: number): boolean {
  return regularFileSize(path) === size && regularFileSize(partPathOf(path)) === undefined;
}

/**
 * Prefixes this process verified by reading part files back, each with what its two files looked like then (inode,
 * size, modification and change times). A transfer offered again is answered from it at once: its sender gave up
 * waiting for the first answer while a large part file was read back (100 GiB from a disk takes minutes), and each
 * new offer read it all again. Only this process writes part files here, and opening one for writing forgets its
 * entry: an entry whose files look the same was not written since. A new process reads back again (a machine crash
 * may have lost page-cache data).
 */
const readBack = new Map<string, { stamp: string; prefix: number }>();
const maxReadBack = 10_000;

function stampOf(path: string): string | undefined {
  try {
    const [p, s] = [partPathOf(path), sumsPathOf(path)].map((f) => lstatSync(f, { bigint: true }));
    return [p!, s!].map((st) => `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`).join('/');
  } catch {
    return undefined;
  }
}

/**
 * How many bytes from the start of `path` (a file of `size` bytes) are already here and verified: the whole size
 * when the finished file exists, else the longest prefix of chunks whose data still matches its recorded sum. The
 * part file is read back a chunk at a time through libuv's pool, so the streamer's other transfers go on meanwhile.
 * `onRead` is told of each chunk read back (and the read waits for it). None of a file whose data failed to reach
 * the disk (writeBackFailure): what reads back is the page cache's, and a full pass then sends it again from its
 * first byte, which clears the failure.
 */
export async function verifiedPrefix(
  path: string,
  size: number,
  onRead?: (bytes: number) => void | Promise<void>,
): Promise<number> {
  if (writeBackFailure(path) !== undefined) return 0;
  if (isFinished(path, size)) return size;
  const sums = readSums(path, size);
  if (!sums) return 0;
  const stamp = stampOf(path);
  const known = readBack.get(path);
  if (stamp !== undefined && known?.stamp === stamp) return known.prefix;
  const fh = await open(partPathOf(path), noFollow.read);
  let prefix = 0;
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    for (let k = 0; k * CHUNK < size; k++) {
      const at = HEADER + k * SLOT;
      if (at + SLOT > sums.length) break;
      const len = chunkLength(size, k);
      if (sums.readUInt32LE(at + 4) !== len) break;
      if ((await fh.read(buf, 0, len, k * CHUNK)).bytesRead !== len) break;
      await onRead?.(len);
      if (chunkDigest(buf.subarray(0, len)) !== sums.readUInt32LE(at)) break;
      prefix += len;
    }
  } finally {
    await fh.close();
  }
  if (stamp !== undefined && stamp === stampOf(path)) {
    readBack.delete(path);
    readBack.set(path, { stamp, prefix });
    if (readBack.size > maxReadBack) readBack.delete(readBack.keys().next().value!);
  }
  return prefix;
}

/**
 * Page-cache writes of at most 64 KiB. Linux (6.x, large folios) sizes new page-cache folios by the write: a 1 MiB
 * write asks for 1 MiB folios, and once memory is fragmented (after small files were written and freed, as after
 * unpacking a tar) that means compaction. Measured here: 1 GiB in 1 MiB writes ≈ 1.2–1.7 kernel CPU-s after such
 * a workload, in 64 KiB writes ≈ 0.2.
 */
export const WRITE_SLICE = 64 * 1024;

/**
 * Write `length` bytes of `data` from `at` at file position `position`, all of them: in slices of WRITE_SLICE, each
 * written again from where a short write left it. Node's writeSync returns what the one write(2) took, and a disk or
 * a quota or a file size limit that fills up mid-slice takes part of it without an error; the next write then
 * reports why (ENOSPC, EDQUOT, EFBIG), or, taking nothing, is refused here. Before, a short write went unnoticed: the
 * chunk's sum was recorded, the prefix advanced, and the finished file held zeros where bytes never came.
 */
export function writeAllAt(fd: number, data: Buffer, at: number, length: number, position: number): void {
  let done = 0;
  while (done < length) {
    const n = writeSync(fd, data, at + done, Math.min(WRITE_SLICE, length - done), position + done);
    if (n <= 0) throw new Error(`write at ${position + done} took no bytes`);
    done += n;
  }
}

/**
 * Writes are synchronous, on the event loop, on purpose: measured here, the same page-cache writes issued from
 * libuv's thread pool took several times the kernel time, and a 64 KiB page-cache write blocks for microseconds.
 * A disk that falls behind slows the reads, which pushes back on the sender through TCP.
 */
export class PartFile {
  private readonly fd: number;
  private readonly sumsFd: number;
  private readonly slot = Buffer.alloc(SLOT);
  private readonly arrived = new Set<number>();
  private closed = false;
  readonly path: string;
  readonly size: number;
  /** Bytes from the start that are written and verified. */
  prefix: number;

  /** Open for writing, keeping a verified prefix of `prefix` bytes (0: start over). */
  constructor(path: string, size: number, mode: number, prefix: number) {
    this.path = path;
    this.size = size;
    this.prefix = prefix;
    readBack.delete(path); // written from now on
    if (prefix === 0) {
      rmSync(partPathOf(path), { force: true });
      rmSync(sumsPathOf(path), { force: true });
      clearWriteBackFailure(path);
    }
    // Never through a link: one planted at the part file's name would have the chunks written wherever it points.
    const flags = prefix > 0 ? noFollow.update : noFollow.create;
    this.fd = openSync(partPathOf(path), flags, mode);
    try {
      this.sumsFd = openSync(sumsPathOf(path), flags, 0o600);
    } catch (err) {
      closeSync(this.fd);
      throw err;
    }
    if (prefix === 0) {
      const h = Buffer.alloc(HEADER);
      MAGIC.copy(h);
      h.writeBigUInt64LE(BigInt(size), 8);
      try {
        writeAllAt(this.sumsFd, h, 0, HEADER, 0);
      } catch (err) {
        this.close(); // a full disk: both descriptors go with the failure, not with the process
        throw err;
      }
    }
  }

  /**
   * Write a verified chunk, then record its sum (after the data, so a sum never vouches for bytes that were not
   * written) and advance the prefix.
   */
  write(offset: number, data: Buffer, digest: number): void {
    writeAllAt(this.fd, data, 0, data.length, offset);
    this.slot.writeUInt32LE(digest, 0);
    this.slot.writeUInt32LE(data.length, 4);
    writeAllAt(this.sumsFd, this.slot, 0, SLOT, HEADER + (offset / CHUNK) * SLOT);
    if (offset < this.prefix) return;
    this.arrived.add(offset);
    while (this.arrived.delete(this.prefix)) this.prefix = Math.min(this.size, this.prefix + CHUNK);
  }

  get complete(): boolean {
    return this.prefix >= this.size;
  }

  /**
   * Give the file its name. `durable`: its data reaches the disk first (the caller syncs the folder after the
   * rename); without it the data may still be in the page cache, which the target's boot fence covers.
   */
  async finish(durable: boolean): Promise<void> {
    try {
      ftruncateSync(this.fd, this.size);
      if (durable) await syncKeepingFailure(this.fd, this.path);
    } finally {
      // Closed whatever happened: the caller has let go of this file, and a failed sync must not keep its descriptors.
      this.close();
    }
    renameSync(partPathOf(this.path), this.path);
    unlinkSync(sumsPathOf(this.path));
  }

  /** Both descriptors closed, the second also when the first's close throws (what it throws is thrown on). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      closeSync(this.fd);
    } finally {
      closeSync(this.sumsFd);
    }
  }
}
