import { closeSync, fstatSync, fsyncSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { writeFileAtomic } from '../lib/atomic.ts';
import { crypto } from '../lib/lazy.ts';

/**
 * The emulator's delta format (real ploop1 deltas need the kernel). A 16-byte header, then records of
 * [u32 LE block index][4096 bytes]; a later record for the same block wins. A disk's view is its chain read base
 * first, each delta's records over the ones below: the top-most delta that has a block gives its content, as with a
 * real ploop device.
 */
export const BLOCK = 4096;
/** One record: the block's index (u32 LE), then its bytes. */
export const RECORD = 4 + BLOCK;
const MAGIC = Buffer.from('HAULDLT1');
const HEADER = 16;

export function createDelta(path: string, sizeSectors: number): void {
  const h = Buffer.alloc(HEADER);
  MAGIC.copy(h, 0);
  h.writeUInt32LE(BLOCK, 8);
  h.writeUInt32LE(Math.min(0xffffffff, Math.ceil((sizeSectors * 512) / BLOCK)), 12);
  writeFileAtomic(path, h);
}

/** Bytes read per read(2) when a delta is read whole: records of one block each would be a call per 4 KiB. */
const READ_CHUNK = 1024 * RECORD;

/**
 * The one buffer every whole read of a delta in this process reads into. Fresh memory is what a whole read cost:
 * a 1 GiB delta read into a fresh buffer per chunk (the whole file kept in memory) took 4.6-6.4 s on this project's
 * two-core VM, mostly faulting in the buffers' pages, and 0.8 s when the same pages were taken again.
 */
let chunk: Buffer | undefined;

/** The length of a delta's whole records (after its header): a record torn by a crash is not a block. */
const wholeRecords = (size: number): number => Math.floor(Math.max(0, size - HEADER) / RECORD) * RECORD;

/** Reads a delta's header from `fd`; throws unless it is one. */
function checkHeader(fd: number, path: string): void {
  const head = Buffer.alloc(HEADER);
  if (readSync(fd, head, 0, HEADER, 0) !== HEADER || !head.subarray(0, 8).equals(MAGIC))
    throw new Error(`${path}: not a delta`);
}

/**
 * Each chunk of a delta's whole records, in file order, as a view of the shared read buffer: `fn` keeps no view and
 * reads no delta itself (the next chunk, or its read, overwrites the buffer).
 */
function eachChunk(path: string, fn: (records: Buffer) => void): void {
  const fd = openSync(path, 'r');
  try {
    checkHeader(fd, path);
    const whole = wholeRecords(fstatSync(fd).size);
    chunk ??= Buffer.allocUnsafeSlow(READ_CHUNK);
    for (let off = 0; off < whole;) {
      const len = Math.min(READ_CHUNK, whole - off);
      for (let got = 0; got < len;) {
        const n = readSync(fd, chunk, got, len - got, HEADER + off + got);
        if (n === 0) throw new Error(`${path}: shorter than it was a moment ago`);
        got += n;
      }
      fn(chunk.subarray(0, len));
      off += len;
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Each whole record of a delta, in file order: a later record for the same block comes later, and wins. `block` is a
 * view of a buffer that the next chunk overwrites: `fn` copies what it keeps.
 */
export function eachRecord(path: string, fn: (index: number, block: Buffer) => void): void {
  eachChunk(path, (recs) => {
    for (let r = 0; r < recs.length; r += RECORD) fn(recs.readUInt32LE(r), recs.subarray(r + 4, r + RECORD));
  });
}

/**
 * Append whole records to a delta (each piece `fill` writes, in order) and sync them. A torn last record (a crash in
 * the middle of an append) is cut off first, or every record after it would be read at the wrong offset. The caller
 * holds what keeps other writers of the file out (the device's I/O lock, the descriptor's lock): the records go at
 * the end the file had when it was opened. Returns where the appended records start and end.
 */
export function appendTo(
  path: string,
  fill: (write: (records: Buffer) => void) => void,
): { start: number; end: number } {
  const fd = openSync(path, 'r+');
  try {
    checkHeader(fd, path);
    const size = fstatSync(fd).size;
    const start = HEADER + wholeRecords(size);
    if (start < size) ftruncateSync(fd, start);
    let end = start;
    fill((records) => {
      for (let at = 0; at < records.length;) at += writeSync(fd, records, at, records.length - at, end + at);
      end += records.length;
    });
    fsyncSync(fd);
    return { start, end };
  } finally {
    closeSync(fd);
  }
}

/** Append whole records (`[u32 LE index][block]` each) to a delta and sync them (appendTo). */
export const appendRecords = (path: string, records: Buffer): { start: number; end: number } =>
  appendTo(path, (write) => write(records));

/**
 * The data move of a ploop merge: `source`'s records appended to `target`, where they win over its older records of
 * the same blocks; returns where they went in `target` (for the write tracker of a device that has it as its top).
 * In place, as ploop merges (lib/merge.c writes each of the child's clusters into the parent delta with PWRITE).
 * Neither file is ever held in memory whole.
 */
export const mergeInto = (target: string, source: string): { start: number; end: number } =>
  appendTo(target, (write) => eachChunk(source, write));

/** The merged view of a chain (base first) as each block's SHA-256 (hex), top deltas winning. */
export function chainDigests(files: string[]): Map<number, string> {
  const view = new Map<number, string>();
  for (const f of files) eachRecord(f, (i, b) => view.set(i, blockDigest(b)));
  return view;
}

/** A block's SHA-256 (hex), as the emulated CT's write journal records it. */
export const blockDigest = (block: Buffer): string => crypto().hash('sha256', block, 'hex');

/** Content checksum of a disk's view: SHA-256 over each block's index (u32 LE) and SHA-256 (hex), in index order. */
export function viewChecksum(view: Map<number, string>): { sha256: string; blocks: number } {
  const h = crypto().createHash('sha256');
  const idx = Buffer.alloc(4);
  for (const i of [...view.keys()].sort((a, b) => a - b)) {
    idx.writeUInt32LE(i, 0);
    h.update(idx).update(view.get(i)!);
  }
  return { sha256: h.digest('hex'), blocks: view.size };
}
