import {
  closeSync,
  existsSync,
  openSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  writeFileSync,
  writevSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { inLanes, readFully } from './lanes.ts';
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

/** Pages per read of the oldest image: a longer run of consecutive pages is read in pieces of this many (8 MiB). */
const RUN_PAGES = 2048;

type Image = { dir: string; indices: Uint32Array };

/** Every page of the memory is in some image of the chain, and no image names a page beyond it; else throws. */
function checkCoverage(images: Image[], pages: number): void {
  const covered = new Uint8Array(pages);
  let found = 0;
  for (const { dir, indices } of images)
    for (const p of indices) {
      if (p >= pages) throw new Error(`${dir}: page ${p} beyond the CT's memory`);
      if (covered[p]) continue;
      covered[p] = 1;
      found++;
    }
  if (found !== pages)
    throw new Error(`restore: ${pages - found} of ${pages} pages are in no image of the chain`);
}

/**
 * Rebuild memory from a dump: the oldest image of the chain first, then each newer one over it, so each page ends as
 * the newest image that has it holds it. Throws when a page is in no image, or an image is shorter than its pagemap
 * says.
 *
 * The memory is fresh, not faulted in: the reads of the oldest image (a chain's first dump holds every page) fault it
 * in. They run from libuv's pool threads, runs of consecutive pages in pieces of 8 MiB, as many at once as this
 * machine has cores (up to four), so the faults run on every core: on a VM the first touch of fresh memory costs a
 * fault in the hypervisor too, most of a restore's time (docs/decisions.md, 9). A real restore spreads them the same
 * way: criu restores each task's memory in the task's own process and forks its children right after, which restore
 * theirs side by side (criu/cr-restore.c 1641, 1657; criu/mem.c 1345–1387 at 2cf8f13). The newer images, a few MiB
 * of scattered pages each, are read a MiB at a time and copied page by page (overlay).
 */
export async function restoreMemory(
  dir: string,
  bytes: number,
): Promise<{ mem: Buffer; pagesRestored: number }> {
  if (bytes % PAGE !== 0) throw new Error(`memory of ${bytes} bytes is not whole pages`);
  const images = imageChain(dir)
    .flatMap((d) => {
      const pm = readPagemap(d);
      return pm ? [{ dir: d, indices: pm.indices }] : [];
    })
    .reverse();
  checkCoverage(images, bytes / PAGE);
  const mem = Buffer.allocUnsafe(bytes);
  const [oldest, ...newer] = images;
  if (oldest) await readInLanes(oldest, mem);
  const chunk = Buffer.allocUnsafe(OVERLAY_CHUNK);
  for (const image of newer) await overlay(image, mem, chunk);
  return { mem, pagesRestored: bytes / PAGE };
}

/** The runs of consecutive pages of an image, each at most RUN_PAGES: its first page, its place in the image. */
function runsOf(indices: Uint32Array): { to: number; at: number; pages: number }[] {
  const runs = [];
  for (let i = 0; i < indices.length;) {
    const p = indices[i]!;
    let n = 1;
    while (i + n < indices.length && n < RUN_PAGES && indices[i + n] === p + n) n++;
    runs.push({ to: p, at: i, pages: n });
    i += n;
  }
  return runs;
}

/** Read an image's pages into memory from several pool threads at once, a run at a time each (inLanes). */
async function readInLanes({ dir, indices }: Image, mem: Buffer): Promise<void> {
  const runs = runsOf(indices);
  const fd = openSync(join(dir, 'pages-1.img'), 'r');
  try {
    await inLanes(runs.length, (i) => {
      const r = runs[i]!;
      return readFully(fd, mem, r.to * PAGE, r.pages * PAGE, r.at * PAGE, endsEarly(dir));
    });
  } finally {
    closeSync(fd);
  }
}

const endsEarly = (dir: string): string => `${dir}/pages-1.img ends before the pages its pagemap names`;

/** Bytes of a newer image read at a time by overlay: one buffer for all of them, fresh memory costing faults. */
const OVERLAY_CHUNK = 1 << 20;

/**
 * Copy a newer image's pages over memory: its pages file read a MiB at a time into one buffer, each page copied from
 * there to its place. A read per run of pages (most are a page long) cost a system call each, and reading each image
 * whole into memory of its own a fault per page of it: 100-120 ms for the 27 MiB of the demo's newer images.
 */
async function overlay({ dir, indices }: Image, mem: Buffer, chunk: Buffer): Promise<void> {
  const fd = openSync(join(dir, 'pages-1.img'), 'r');
  try {
    const perChunk = chunk.length / PAGE;
    for (let i = 0; i < indices.length; i += perChunk) {
      const n = Math.min(perChunk, indices.length - i);
      await readFully(fd, chunk, 0, n * PAGE, i * PAGE, endsEarly(dir));
      for (let k = 0; k < n; k++) chunk.copy(mem, indices[i + k]! * PAGE, k * PAGE, (k + 1) * PAGE);
    }
  } finally {
    closeSync(fd);
  }
}
