import { closeSync, constants, ftruncateSync, openSync } from 'node:fs';
import { noFollow, regularFileSize } from './confine.ts';
import { syncKeepingFailure, writeAllAt } from './part-file.ts';

/**
 * A file of a disk copy updated in place by a later pass (an update offer): the extents a pass sends are written
 * where they belong in the copy an earlier pass left, and the file is then cut or extended to its new size. No part
 * file and no sums: an interrupted update pass is sent again whole, and each write carries the newest bytes of its
 * extent, so writing them twice is harmless. A missing file is created (never through a link), and then the pass
 * must send all of it (`created`).
 */
export class UpdateFile {
  private readonly fd: number;
  private readonly path: string;
  private closed = false;
  /**
   * The file was not here: this pass made it. Only what the pass writes of it is its data then (the rest reads as
   * zeros), so the pass must send all of it (Reception.finishUpdate, `uncovered` over the whole size).
   */
  readonly created: boolean;

  constructor(path: string, mode: number) {
    this.path = path;
    // A missing file is made new (O_EXCL): anything else at its name that is not a regular file (a FIFO, a device)
    // is refused, not opened and written to.
    this.created = regularFileSize(path) === undefined;
    const flags = this.created ? (noFollow.create & ~constants.O_TRUNC) | constants.O_EXCL : noFollow.update;
    this.fd = openSync(path, flags, mode);
  }

  /** The byte ranges this pass wrote, [start, end), in the order they came. */
  private readonly written: [number, number][] = [];

  write(offset: number, data: Buffer): void {
    writeAllAt(this.fd, data, 0, data.length, offset);
    this.written.push([offset, offset + data.length]);
  }

  /**
   * The first of the manifest's `extents` ([start, end) byte ranges) that this pass has not written whole, or
   * undefined: a sender that ends the pass before sending every extent it declared leaves the copy's older bytes
   * there, and the pass must not be done.
   */
  uncovered(extents: readonly (readonly number[])[]): [number, number] | undefined {
    const got = mergeRanges(this.written);
    let i = 0;
    for (const [s = 0, e = 0] of [...extents].sort((a, b) => (a[0] ?? 0) - (b[0] ?? 0))) {
      if (e <= s) continue;
      while (i < got.length && got[i]![1] <= s) i++;
      const g = got[i];
      if (!g || g[0] > s || g[1] < e) return [s, e];
    }
    return undefined;
  }

  /** Give the file its size; `durable`: its data reaches the disk before this settles. */
  async finish(size: number, durable: boolean): Promise<void> {
    ftruncateSync(this.fd, size);
    try {
      if (durable) await syncKeepingFailure(this.fd, this.path);
    } finally {
      this.close();
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }
}

/** `ranges` ([start, end)) sorted and joined where they overlap or touch. */
function mergeRanges(ranges: readonly [number, number][]): [number, number][] {
  const out: [number, number][] = [];
  for (const [s, e] of [...ranges].sort((a, b) => a[0] - b[0])) {
    const last = out.at(-1);
    if (last && s <= last[1]) last[1] = Math.max(last[1], e);
    else out.push([s, e]);
  }
  return out;
}
