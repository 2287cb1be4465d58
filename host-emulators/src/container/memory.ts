import { closeSync, openSync } from 'node:fs';
import { inLanes, readFully } from './lanes.ts';
import { crypto } from '../lib/lazy.ts';

export const PAGE = 4096;

/** xorshift128: a small seeded generator whose state travels in the dump, so a restored CT continues the same run. */
export class Rng {
  s: [number, number, number, number];
  constructor(seedOrState: number | [number, number, number, number]) {
    if (Array.isArray(seedOrState)) this.s = [...seedOrState];
    else {
      let x = seedOrState >>> 0 || 0x9e3779b9;
      const next = () => (x = (Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0);
      this.s = [next(), next(), next(), next()];
    }
  }
  next(): number {
    let t = this.s[3];
    const s0 = this.s[0];
    this.s = [s0, this.s[0], this.s[1], this.s[2]];
    t ^= t << 11;
    t ^= t >>> 8;
    this.s[0] = (t ^ s0 ^ (s0 >>> 19)) >>> 0;
    return this.s[0];
  }
  below(n: number): number {
    return this.next() % n;
  }
}

/** Bytes faulted in per read of /dev/zero. */
const FAULT_PIECE = 8 << 20;

/**
 * The CT's memory, every page of it already faulted in (zeroes), by several threads at once: a fresh start's memory,
 * before its initial content is written. On a VM the first touch of each page costs a fault in the guest and often
 * one in the host: 0.45-0.65 s of CPU for 256 MiB here even on huge pages. It faults it in from libuv's pool threads
 * (a read of /dev/zero into each 8 MiB piece; the pool has four), as many at once as this machine has cores, up to
 * four: 256 MiB in 0.33-0.48 s on two cores instead of 0.47-0.63 s, with the same CPU. A restore does not use it:
 * its reads of the images fault the memory in themselves, from as many threads (restoreMemory in images.ts).
 */
export async function faultedMemory(bytes: number): Promise<Buffer> {
  const mem = Buffer.allocUnsafe(bytes);
  const zero = openSync('/dev/zero', 'r');
  try {
    await inLanes(Math.ceil(bytes / FAULT_PIECE), (i) => {
      const off = i * FAULT_PIECE;
      const len = Math.min(FAULT_PIECE, bytes - off);
      return readFully(zero, mem, off, len, null, `/dev/zero ended within ${len} bytes at ${off}`);
    });
  } finally {
    closeSync(zero);
  }
  return mem;
}

/** The CT's memory: seeded initial content (a 64 KiB pattern tiled, each page stamped with its index). */
export function initialMemory(bytes: number, seed: number, mem: Buffer = Buffer.allocUnsafe(bytes)): Buffer {
  if (mem.length !== bytes) throw new Error(`memory of ${mem.length} bytes, not ${bytes}`);
  const rng = new Rng(seed ^ 0x5bd1e995);
  const tile = Buffer.allocUnsafe(64 * 1024);
  for (let i = 0; i < tile.length; i += 4) tile.writeUInt32LE(rng.next(), i);
  for (let off = 0; off < bytes; off += tile.length)
    tile.copy(mem, off, 0, Math.min(tile.length, bytes - off));
  for (let p = 0; p < bytes / PAGE; p++) mem.writeUInt32LE(p, p * PAGE);
  return mem;
}

/** Bytes of a page's digest: the first 16 of its SHA-256. */
const DIGEST = 16;

/**
 * The memory's checksum as a digest of per-page digests: SHA-256 over the pages' 16-byte digests in page order. A
 * page written since its digest was taken is marked stale and only stale pages are hashed again, so the checksum of
 * a running CT costs the pages it wrote plus 1 MiB of digests per 256 MiB (≈ 2 ms), not a pass over all of the
 * memory (≈ 190 ms for 256 MiB). Every page starts stale.
 */
export class PageDigests {
  readonly pages: number;
  private readonly mem: Buffer;
  /** 16 bytes per page, in page order: what the checksum hashes. */
  private readonly digests: Buffer;
  /** One bit per page: its digest is out of date. */
  private readonly staleBits: Uint8Array;
  /** The stale pages, each once (its bit set ⇔ the page is listed), so a refresh costs the stale pages only. */
  private readonly staleList: number[];

  constructor(mem: Buffer) {
    this.mem = mem;
    if (mem.length % PAGE !== 0) throw new Error(`memory of ${mem.length} bytes is not whole pages`);
    this.pages = mem.length / PAGE;
    this.digests = Buffer.alloc(this.pages * DIGEST);
    this.staleBits = new Uint8Array(Math.ceil(this.pages / 8)).fill(0xff);
    this.staleList = Array.from({ length: this.pages }, (_, p) => p);
  }

  /** Page p was written: its digest is taken again at the next refresh. */
  markStale(p: number): void {
    const byte = this.staleBits[p >> 3]!;
    const bit = 1 << (p & 7);
    if (byte & bit) return;
    this.staleBits[p >> 3] = byte | bit;
    this.staleList.push(p);
  }

  /** How many pages' digests are out of date. */
  get stale(): number {
    return this.staleList.length;
  }

  /** Take the digests of the stale pages, at most `limit` of them (all by default); returns how many stay stale. */
  refresh(limit = Infinity): number {
    const list = this.staleList;
    const { hash } = crypto();
    const n = Math.min(limit, list.length);
    for (let i = list.length - n; i < list.length; i++) {
      const p = list[i]!;
      hash('sha256', this.mem.subarray(p * PAGE, p * PAGE + PAGE), 'buffer').copy(
        this.digests,
        p * DIGEST,
        0,
        DIGEST,
      );
      this.staleBits[p >> 3] = this.staleBits[p >> 3]! & ~(1 << (p & 7));
    }
    list.length -= n;
    return list.length;
  }

  /** The memory's checksum now: its stale pages' digests are taken first. */
  checksum(): string {
    this.refresh();
    return crypto().createHash('sha256').update(this.digests).digest('hex');
  }
}

/** The checksum of a memory computed from scratch: equal to a PageDigests' kept up to date over the same memory. */
export const memoryChecksum = (mem: Buffer): string => new PageDigests(mem).checksum();
