import { readFileSync } from 'node:fs';

/** Decode CRIU's stats-dump / stats-restore (magics, length, protobuf stats_entry; host-tools.md §4.3). */
export type DumpStats = {
  frozenUs: number;
  memdumpUs: number;
  pagesScanned: number;
  pagesSkipped: number;
  pagesWritten: number;
};

function fields(path: string, which: 1 | 2): Map<number, number> {
  const b = readFileSync(path);
  if (b.length < 12 || b.readUInt32LE(0) !== 0x55105940 || b.readUInt32LE(4) !== 0x57093306)
    throw new Error(`${path}: not a CRIU stats image`);
  let i = 12;
  const end0 = 12 + b.readUInt32LE(8);
  const varint = (): number => {
    let v = 0;
    let mul = 1;
    for (;;) {
      const x = b[i++];
      if (x === undefined) throw new Error(`${path}: truncated`);
      v += (x & 0x7f) * mul;
      mul *= 128;
      if (!(x & 0x80)) return v;
    }
  };
  const out = new Map<number, number>();
  while (i < end0) {
    const tag = varint();
    if ((tag & 7) !== 2) throw new Error(`${path}: unexpected wire type`);
    const len = varint();
    if (tag >> 3 !== which) {
      i += len;
      continue;
    }
    const end = i + len;
    while (i < end) {
      const t = varint();
      if ((t & 7) === 0) out.set(t >> 3, varint());
      else if ((t & 7) === 2) i += varint();
      else throw new Error(`${path}: unsupported wire type`);
    }
  }
  return out;
}

export function readDumpStats(path: string): DumpStats {
  const f = fields(path, 1);
  return {
    frozenUs: f.get(2) ?? 0,
    memdumpUs: f.get(3) ?? 0,
    pagesScanned: f.get(5) ?? 0,
    pagesSkipped: f.get(6) ?? 0,
    pagesWritten: f.get(7) ?? 0,
  };
}

export function readRestoreTimeUs(path: string): number {
  return fields(path, 2).get(4) ?? 0;
}
