import { closeSync, existsSync, openSync, readSync, writeSync, fstatSync, fsyncSync } from 'node:fs';
import { writeFileAtomic } from '../lib/atomic.ts';
import { crypto } from '../lib/lazy.ts';

/**
 * The emulator's delta format (real ploop1 deltas need the kernel). A 16-byte header, then records of
 * [u32 LE block index][4096 bytes]; a later record for the same block wins. Reading a disk walks the chain from
 * the top down, so the first delta that has a block gives its content, as with a real ploop device.
 */
export const BLOCK = 4096;
const MAGIC = Buffer.from('HAULDLT1');
const HEADER = 16;

export function createDelta(path: string, sizeSectors: number): void {
  const h = Buffer.alloc(HEADER);
  MAGIC.copy(h, 0);
  h.writeUInt32LE(BLOCK, 8);
  h.writeUInt32LE(Math.min(0xffffffff, Math.ceil((sizeSectors * 512) / BLOCK)), 12);
  writeFileAtomic(path, h);
}

export function isDelta(path: string): boolean {
  if (!existsSync(path)) return false;
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(8);
    return readSync(fd, b, 0, 8, 0) === 8 && b.equals(MAGIC);
  } finally {
    closeSync(fd);
  }
}

/** Bytes read per read(2) when a delta is read whole: records of one block each would be a call per 4 KiB. */
const READ_CHUNK = 1024 * (4 + BLOCK);

/**
 * Block index → content of one delta file. Each content is a view of the chunk it was read in (no copy per block), so
 * a chunk stays in memory while any of its blocks is still in the map: at most the size of the file, as before.
 */
export function readDelta(path: string): Map<number, Buffer> {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const head = Buffer.alloc(HEADER);
    if (readSync(fd, head, 0, HEADER, 0) !== HEADER || !head.subarray(0, 8).equals(MAGIC))
      throw new Error(`${path}: not a delta`);
    const blocks = new Map<number, Buffer>();
    const rec = 4 + BLOCK;
    const whole = Math.floor((size - HEADER) / rec) * rec; // a torn last record is not a block
    for (let off = 0; off < whole;) {
      const chunk = Buffer.allocUnsafeSlow(Math.min(READ_CHUNK, whole - off));
      for (let got = 0; got < chunk.length;) {
        const n = readSync(fd, chunk, got, chunk.length - got, HEADER + off + got);
        if (n === 0) throw new Error(`${path}: shorter than it was a moment ago`);
        got += n;
      }
      for (let r = 0; r < chunk.length; r += rec)
        blocks.set(chunk.readUInt32LE(r), chunk.subarray(r + 4, r + rec));
      off += chunk.length;
    }
    return blocks;
  } finally {
    closeSync(fd);
  }
}

/** Append one block write to a delta (what the running CT's I/O does to the device's top delta). */
export function appendBlock(path: string, index: number, data: Buffer): void {
  const rec = Buffer.alloc(4 + BLOCK);
  rec.writeUInt32LE(index, 0);
  data.copy(rec, 4, 0, Math.min(BLOCK, data.length));
  const fd = openSync(path, 'a');
  try {
    writeSync(fd, rec);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Rewrite `target` as target ∪ source (source wins): the data move of a ploop merge. */
export function mergeInto(target: string, source: string): number {
  const merged = readDelta(target);
  const incoming = readDelta(source);
  for (const [i, b] of incoming) merged.set(i, b);
  const head = Buffer.alloc(HEADER);
  const fd = openSync(target, 'r');
  readSync(fd, head, 0, HEADER, 0);
  closeSync(fd);
  const parts: Buffer[] = [head];
  for (const i of [...merged.keys()].sort((a, b) => a - b)) {
    const idx = Buffer.alloc(4);
    idx.writeUInt32LE(i, 0);
    parts.push(idx, merged.get(i)!);
  }
  writeFileAtomic(target, Buffer.concat(parts));
  return incoming.size;
}

/** The merged view of a chain (base first): block → content, top deltas winning. */
export function readChain(files: string[]): Map<number, Buffer> {
  const view = new Map<number, Buffer>();
  for (const f of files) for (const [i, b] of readDelta(f)) view.set(i, b);
  return view;
}

/** Content checksum of a disk's view: SHA-256 over each block's index (u32 LE) and bytes, in index order. */
export function viewChecksum(view: Map<number, Buffer>): { sha256: string; blocks: number } {
  const h = crypto().createHash('sha256');
  for (const i of [...view.keys()].sort((a, b) => a - b)) {
    const idx = Buffer.alloc(4);
    idx.writeUInt32LE(i, 0);
    h.update(idx).update(view.get(i)!);
  }
  return { sha256: h.digest('hex'), blocks: view.size };
}
