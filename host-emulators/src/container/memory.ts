import { createHash } from 'node:crypto';

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

/** The CT's memory: seeded initial content (a 64 KiB pattern tiled, each page stamped with its index). */
export function initialMemory(bytes: number, seed: number): Buffer {
  const mem = Buffer.allocUnsafe(bytes);
  const rng = new Rng(seed ^ 0x5bd1e995);
  const tile = Buffer.allocUnsafe(64 * 1024);
  for (let i = 0; i < tile.length; i += 4) tile.writeUInt32LE(rng.next(), i);
  for (let off = 0; off < bytes; off += tile.length)
    tile.copy(mem, off, 0, Math.min(tile.length, bytes - off));
  for (let p = 0; p < bytes / PAGE; p++) mem.writeUInt32LE(p, p * PAGE);
  return mem;
}

export const memoryChecksum = (mem: Buffer): string => createHash('sha256').update(mem).digest('hex');
