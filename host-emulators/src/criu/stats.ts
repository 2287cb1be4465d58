import { writeFileSync } from 'node:fs';

/**
 * `stats-dump` / `stats-restore` as CRIU writes them (host-tools.md §4.3): u32 0x55105940, u32 0x57093306, u32 len,
 * then a protobuf stats_entry whose field 1 (dump) or 2 (restore) is an embedded message of varint fields.
 */
function varint(n: number): number[] {
  const out: number[] = [];
  let v = BigInt(Math.max(0, Math.round(n)));
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return out;
}

function message(fields: [number, number][]): number[] {
  return fields.flatMap(([f, v]) => [...varint((f << 3) | 0), ...varint(v)]);
}

function write(path: string, which: 1 | 2, inner: number[]): void {
  const entry = [...varint((which << 3) | 2), ...varint(inner.length), ...inner];
  const head = Buffer.alloc(12);
  head.writeUInt32LE(0x55105940, 0);
  head.writeUInt32LE(0x57093306, 4);
  head.writeUInt32LE(entry.length, 8);
  writeFileSync(path, Buffer.concat([head, Buffer.from(entry)]));
}

export type DumpStats = {
  freezingTime: number;
  frozenTime: number;
  memdumpTime: number;
  memwriteTime: number;
  pagesScanned: number;
  pagesSkippedParent: number;
  pagesWritten: number;
};

export function writeDumpStats(path: string, s: DumpStats): void {
  write(
    path,
    1,
    message([
      [1, s.freezingTime],
      [2, s.frozenTime],
      [3, s.memdumpTime],
      [4, s.memwriteTime],
      [5, s.pagesScanned],
      [6, s.pagesSkippedParent],
      [7, s.pagesWritten],
      [9, 0],
    ]),
  );
}

export function writeRestoreStats(
  path: string,
  s: { pagesCompared: number; forkingTime: number; restoreTime: number; pagesRestored: number },
): void {
  write(
    path,
    2,
    message([
      [1, s.pagesCompared],
      [2, 0],
      [3, s.forkingTime],
      [4, s.restoreTime],
      [5, s.pagesRestored],
    ]),
  );
}
