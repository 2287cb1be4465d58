import {
  closeSync,
  existsSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  readlinkSync,
  writeFileSync,
  writevSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { PAGE } from './memory.ts';

/**
 * The emulator's page images (real CRIU images are protobuf; see host-emulators/README.md): `pagemap-<pid>.img` is
 * a magic and the u32 LE page indices, `pages-1.img` the pages in that order. The `parent` link chains
 * incremental dumps exactly as CRIU does.
 */
const PAGEMAP_MAGIC = 0x48504d31; // "HPM1"

/**
 * Write a dump's page images. The pages go to `pages-1.img` straight from the CT's memory, a run of consecutive
 * pages per buffer (as CRIU's page pipes hold runs of the task's own pages, not copies): no copy of them is made,
 * so a first dump of 256 MiB does not first allocate and fill 256 MiB more (on a VM, fresh memory costs a page fault
 * per 4 KiB touched: about 1 s per 256 MiB on the CI machine). The CT's event loop is blocked meanwhile, so the
 * memory cannot change under the write.
 */
export function writePageImages(dir: string, pid: number, indices: Uint32Array, mem: Buffer): number {
  const map = Buffer.alloc(8 + indices.length * 4);
  map.writeUInt32LE(PAGEMAP_MAGIC, 0);
  map.writeUInt32LE(indices.length, 4);
  Buffer.from(indices.buffer, indices.byteOffset, indices.byteLength).copy(map, 8);
  writeFileSync(join(dir, `pagemap-${pid}.img`), map);
  const fd = openSync(join(dir, 'pages-1.img'), 'w');
  try {
    let runs: Buffer[] = [];
    for (let i = 0; i < indices.length;) {
      const p = indices[i]!;
      let n = 1;
      while (i + n < indices.length && indices[i + n] === p + n) n++;
      if ((p + n) * PAGE > mem.length) throw new Error(`dump: page ${p + n - 1} beyond the CT's memory`);
      runs.push(mem.subarray(p * PAGE, (p + n) * PAGE));
      if (runs.length === IOV_MAX) runs = writeAll(fd, runs);
      i += n;
    }
    writeAll(fd, runs);
  } finally {
    closeSync(fd);
  }
  return map.length + indices.length * PAGE;
}

/** Buffers per writev(2) (Linux's UIO_MAXIOV). */
const IOV_MAX = 1024;

/** Write every buffer, in order, at the file's position (a short write goes on from where it stopped); returns []. */
function writeAll(fd: number, bufs: Buffer[]): Buffer[] {
  const rest = [...bufs];
  while (rest.length > 0) {
    let done = writevSync(fd, rest);
    if (done === 0) throw new Error('dump: writev wrote nothing');
    while (rest.length > 0 && done >= rest[0]!.length) done -= rest.shift()!.length;
    if (done > 0) rest[0] = rest[0]!.subarray(done);
  }
  return [];
}

function readPagemap(dir: string): { pid: number; indices: Uint32Array } | undefined {
  const name = readdirSync(dir).find((f) => /^pagemap-\d+\.img$/.test(f));
  if (!name) return undefined;
  const b = readFileSync(join(dir, name));
  if (b.readUInt32LE(0) !== PAGEMAP_MAGIC) throw new Error(`${dir}/${name}: not a pagemap image`);
  const n = b.readUInt32LE(4);
  const indices = new Uint32Array(n);
  for (let i = 0; i < n; i++) indices[i] = b.readUInt32LE(8 + i * 4);
  return { pid: Number(/pagemap-(\d+)\.img/.exec(name)![1]), indices };
}

/** The image dirs of a dump, newest first, following `parent` links (which must resolve). */
export function imageChain(dir: string): string[] {
  const chain: string[] = [];
  let cur: string | undefined = resolve(dir);
  while (cur) {
    if (!existsSync(cur)) throw new Error(`image dir ${cur} does not exist (broken parent chain)`);
    chain.push(cur);
    const link = join(cur, 'parent');
    let target: string | undefined;
    try {
      target = readlinkSync(link);
    } catch {
      target = undefined;
    }
    cur = target === undefined ? undefined : resolve(cur, target);
    if (chain.length > 64) throw new Error('parent chain too long');
  }
  return chain;
}

/**
 * Rebuild memory from a dump: each page from the newest image that has it. Throws when a page is missing. Pages
 * that follow each other both in memory and in an image are read in one call, as CRIU's page reader does with its
 * pagemap entries (one iovec per run of pages, criu/pagemap.c); a page at a time cost 65,536 reads for 256 MiB.
 */
export function restoreMemory(
  dir: string,
  bytes: number,
  // Not zeroed: a page no image filled is an error below, never read.
  mem: Buffer = Buffer.allocUnsafe(bytes),
): { mem: Buffer; pagesRestored: number } {
  if (mem.length !== bytes) throw new Error(`memory of ${mem.length} bytes, not ${bytes}`);
  const pages = bytes / PAGE;
  const filled = new Uint8Array(pages);
  let count = 0;
  for (const d of imageChain(dir)) {
    const pm = readPagemap(d);
    if (!pm) continue;
    const fd = openSync(join(d, 'pages-1.img'), 'r');
    try {
      count += readRuns(d, fd, pm.indices, mem, filled);
    } finally {
      closeSync(fd);
    }
  }
  if (count !== pages)
    throw new Error(`restore: ${pages - count} of ${pages} pages are in no image of the chain`);
  return { mem, pagesRestored: count };
}

/** Read the pages of one image that no newer image had, a run of consecutive pages per read; returns how many. */
function readRuns(dir: string, fd: number, indices: Uint32Array, mem: Buffer, filled: Uint8Array): number {
  let count = 0;
  let i = 0;
  while (i < indices.length) {
    const p = indices[i]!;
    if (p >= filled.length) throw new Error(`${dir}: page ${p} beyond the CT's memory`);
    if (filled[p]) {
      i++;
      continue;
    }
    let n = 1;
    while (i + n < indices.length && indices[i + n] === p + n && p + n < filled.length && !filled[p + n]) n++;
    readSync(fd, mem, p * PAGE, n * PAGE, i * PAGE);
    filled.fill(1, p, p + n);
    count += n;
    i += n;
  }
  return count;
}
