/**
 * The emulated container's "init": a real process that owns the CT's memory pages, dirties random pages at a set
 * rate and writes blocks to its ploop disks, all from a seeded generator, and answers the emulated criu and vzctl
 * over a local socket. Started by `vzctl start` (fresh) or by `criu restore` (memory rebuilt from the images).
 */
import { createServer, type Socket } from 'node:net';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { emuEnv, paths } from '../lib/emu-env.ts';
import { BLOCK, blockDigest } from '../ploop/delta.ts';
import { readRegistry } from '../ploop/devices.ts';
import { syncDevice, withDeviceIo } from '../ploop/ops.ts';
import { cacheWrite } from '../ploop/page-cache.ts';
import { restoreMemory, writePageImages } from './images.ts';
import { readCtState, writeCtState } from '../vzctl/ct-state.ts';
import { faultedMemory, initialMemory, PageDigests, PAGE, Rng } from './memory.ts';
import type { CtConfig, CtCoreImage, CtRequest, CtStatus, DumpReply } from './protocol.ts';

const args = JSON.parse(process.argv[2] ?? '{}') as {
  config: CtConfig;
  socket: string;
  restoreDir?: string;
  readyFd?: number;
};
const env = emuEnv();
let config = args.config;
let rng: Rng;
let mem: Buffer;
/** The pages' digests, kept up to date by the workload: the memory checksum is a digest of them (memory.ts). */
let digests: PageDigests;
let dirtied = 0;
let diskWrites = 0;
/**
 * Memory checksum right after a restore, once verified equal to the dump's (or the CT ends): a proof seam for tests.
 */
let restoredSha256: string | undefined;
/** A restored CT's checksum at the dump (its core image), still to be compared with the memory it read. */
let toVerify: string | undefined;
/** Every block write, as `<disk index> <block> <sha256>`: tests replay it to prove no write was lost or stray. */
const journal = join(env.root, 'var', 'log', `ct-${args.config.ctid}.writes`);

if (args.restoreDir) {
  const core = JSON.parse(readFileSync(findCore(args.restoreDir), 'utf8')) as CtCoreImage;
  config = { ...args.config, ...core.config, diskBases: args.config.diskBases };
  // Compared right after the CT says it is ready (verifyRestore), not before: see there.
  toVerify = core.memSha256;
  rng = new Rng(core.rng);
  dirtied = core.dirtied;
  diskWrites = core.diskWrites;
} else {
  rng = new Rng(config.seed);
}

/** The CT's memory in place: read from the dump's images, or its initial content; see boot. */
async function fillMemory(bytes: number): Promise<void> {
  if (args.restoreDir) {
    // Read into fresh memory, faulted in by the reads themselves (restoreMemory).
    mem = (await restoreMemory(args.restoreDir, bytes)).mem;
    digests = new PageDigests(mem);
  } else {
    mem = initialMemory(bytes, config.seed, await faultedMemory(bytes));
    // All pages' digests before the CT says it is ready (≈ 0.3 s for 256 MiB), so no freeze ever takes them all.
    digests = new PageDigests(mem);
    digests.refresh();
  }
}

function findCore(dir: string): string {
  const f = readdirSync(dir).find((n) => /^core-\d+\.img$/.test(n));
  if (!f) throw new Error(`no core image in ${dir}`);
  return join(dir, f);
}

const pages = (config.memoryMb * 1024 * 1024) / PAGE;

/**
 * The memory's checksum (the digest of its pages' digests, memory.ts), computed once per state of the memory: every
 * write to it counts in `dirtied`, so an equal count is the same memory. A final dump asks for it twice with the CT
 * frozen (the proof-seam line and the core image); the workload keeps the page digests up to date, so it costs
 * ≈ 2 ms for 256 MiB, where a SHA-256 of all of the memory cost ≈ 190 ms of the frozen window.
 */
let checksumAt: { dirtied: number; sha256: string } | undefined;
function checksum(): string {
  if (checksumAt?.dirtied !== dirtied) checksumAt = { dirtied, sha256: digests.checksum() };
  return checksumAt.sha256;
}

/**
 * A restored CT checks the memory it read against the dump's checksum: all pages' digests (≈ 0.3 s for 256 MiB).
 * This runs right after the CT said it is ready, so it is not part of the restore's time: it is the emulator's
 * instrumentation, which real criu does not have (a real restore has no memory checksum to compare), and a restore
 * that waited for it would look slower than criu's. The workload waits for it (work), so it sees the memory as
 * read. Different: the CT ends (status 1, the reason in its log) and every check of the restored memory fails.
 */
function verifyRestore(expected: string): void {
  const sum = checksum();
  if (sum !== expected) {
    process.stderr.write(`restore: memory checksum ${sum} differs from the dump's ${expected}\n`);
    shutdown(1);
  }
  restoredSha256 = sum;
  toVerify = undefined;
}
let dirty = new Uint8Array(pages);
let tracking = false;
let frozen = false;

/**
 * The CT's freezer cgroup as the kernel shows it: `freezer.state` THAWED or FROZEN (what `vzctl status` reads to say
 * `paused`, and what criu --freeze-cgroup writes), `tasks` the CT's pids.
 */
const cgroup = paths.freezerCg(env, config.ctid);
mkdirSync(cgroup, { recursive: true });
writeFileSync(`${cgroup}/tasks`, `${process.pid}\n`);
let freezerFrozen = false;
function setFreezer(f: boolean): void {
  freezerFrozen = f;
  writeFileSync(`${cgroup}/freezer.state`, f ? 'FROZEN\n' : 'THAWED\n');
}
/** The tasks stopped (or run again), by the freezer. */
function setFrozen(f: boolean): void {
  frozen = f;
  setFreezer(f);
}

/**
 * criu's seize of the tasks (seizeCt): while its connection is open, a final dump holds the tasks stopped with the
 * freezer thawed again, as real criu does once it has seized them (criu/seize.c freeze_processes, 658–662: the tasks
 * are held by ptrace alone). `vzctl status` then says `running`, not `paused`. When the connection closes while they
 * are still held (criu killed), they run again: the kernel lets a dead tracer's tasks go.
 */
let tracer: Socket | undefined;
function seized(c: Socket): void {
  tracer = c;
  c.on('close', () => {
    if (tracer !== c) return;
    tracer = undefined;
    // Stopped by the seize alone (not frozen by the freezer, nor stopped as criu -s leaves them): they run again.
    if (frozen && !freezerFrozen) {
      frozen = false;
      last = Date.now();
    }
  });
}
setFrozen(false);

/**
 * The CT's ve cgroup (private: `<mount>/<ctid>`, libvzctl lib/cgroup.c get_cgroup_name) with the values vz-cpt saves
 * as vz_*.img beside a dump (`cgget -n -v -r ve.<name>`, scripts/vz-cpt.in v7.0.360 lines 73–90).
 */
const veCgroup = paths.veCg(env, config.ctid);
mkdirSync(veCgroup, { recursive: true });
for (const [name, value] of Object.entries({
  've.clock_bootbased': `${Math.round(process.uptime())} 0`,
  've.clock_monotonic': `${Math.round(process.uptime())} 0`,
  've.iptables_mask': '18446744073709551615',
  've.os_release': '3.10.0',
  've.features': '0',
  've.aio_max_nr': '65536',
  've.pid_max': '4194304',
}))
  writeFileSync(join(veCgroup, name), `${value}\n`);
/**
 * A new VE's own sysctls, as the emulated kernel starts them: the kernel's default core pattern ("core") and address
 * space randomization (2), fs.fsync-enable at 2, FSYNC_FILTERED, "the default" of a Container: take the Host's
 * setting (vzkernel's documentation of the per-CT sync behaviour, "fs.fsync-enable sysctl values"), only when the host
 * kernel has it (`<root>/proc/sys/fs/fsync-enable`), and fs.odirect_enable at 2 as well (the emulator's choice, by
 * analogy: its vzkernel default was not read). A restore sets the saved ones after (vzctl restore, as vz-rst-action).
 */
const veSysctls = dirname(paths.veSysctl(env, config.ctid, 'kernel.core_pattern'));
mkdirSync(veSysctls, { recursive: true });
for (const [name, value] of Object.entries({
  'kernel.core_pattern': 'core',
  'kernel.randomize_va_space': '2',
  'fs.odirect_enable': '2',
  ...(existsSync(join(env.root, 'proc', 'sys', 'fs', 'fsync-enable')) ? { 'fs.fsync-enable': '2' } : {}),
}))
  writeFileSync(paths.veSysctl(env, config.ctid, name), `${value}\n`);
/**
 * The CT's memory cgroup with its limits (what vz-cpt-action saves at pre-dump, vz-cpt-action.in 98–103): the CT's
 * memory, without swap (memsw = the same limit).
 */
const memoryCg = paths.memoryCg(env, config.ctid);
mkdirSync(memoryCg, { recursive: true });
for (const f of ['memory.limit_in_bytes', 'memory.memsw.limit_in_bytes'])
  writeFileSync(join(memoryCg, f), `${config.memoryMb * 1024 * 1024}\n`);
let last = Date.now();
let owedPages = 0;
let owedWrites = 0;

/** One tick of the workload: dirty pages and write disk blocks for the time that passed. */
function work(): void {
  // A restored CT's memory is compared with the dump's before the workload writes to it (and its time is owed).
  if (toVerify !== undefined) return;
  const now = Date.now();
  const dt = (now - last) / 1000;
  last = now;
  if (frozen) return;
  owedPages += config.dirtyPagesPerSec * dt;
  for (; owedPages >= 1; owedPages--) {
    const p = rng.below(pages);
    const off = p * PAGE + 8 + rng.below(PAGE - 16);
    mem.writeUInt32LE(rng.next(), off);
    mem.writeUInt32LE(++dirtied, p * PAGE + 4);
    dirty[p] = 1;
    digests.markStale(p);
  }
  digests.refresh();
  owedWrites += config.diskWritesPerSec * dt;
  const n = Math.floor(owedWrites);
  owedWrites -= n;
  if (n > 0 && config.diskBases.length > 0) writeBlocks(n);
}

/** This tick's block writes, each disk's under one take of its device's I/O lock (a sync waits less for it). */
function writeBlocks(n: number): void {
  const byDisk = new Map<number, { block: number; data: Buffer }[]>();
  for (let k = 0; k < n; k++) {
    const w = nextWrite();
    byDisk.set(w.disk, [...(byDisk.get(w.disk) ?? []), w]);
  }
  for (const [disk, writes] of byDisk) writeTo(disk, writes);
}

function nextWrite(): { disk: number; block: number; data: Buffer } {
  const disk = rng.below(config.diskBases.length);
  const block = rng.below(Math.max(1, config.diskBlocks));
  const data = Buffer.allocUnsafe(BLOCK);
  const a = rng.next();
  const b = rng.next();
  for (let i = 0; i < BLOCK; i += 8) {
    data.writeUInt32LE((a ^ i) >>> 0, i);
    data.writeUInt32LE(b, i + 4);
  }
  return { disk, block, data };
}

function writeTo(disk: number, writes: { block: number; data: Buffer }[]): void {
  const base = config.diskBases[disk]!;
  const dev = readRegistry(env.clusterDir).devices.find((d) => d.node === env.node && d.deltas[0] === base);
  if (!dev || dev.readonly) return;
  // Into the page cache, as a write to a file system does: the top delta gets it at writeback or a sync.
  withDeviceIo(env, dev.dev, () => {
    for (const w of writes) cacheWrite(env, dev.dev, w.block, w.data);
    journalLines += writes.length;
    appendFileSync(journal, writes.map((w) => `${disk} ${w.block} ${blockDigest(w.data)}\n`).join(''));
  });
  diskWrites += writes.length;
}

/** Lines in the write journal: the position of the disks' content at a freeze, for tests to compare a copy with. */
let journalLines = existsSync(journal) ? readFileSync(journal, 'utf8').split('\n').length - 1 : 0;

/**
 * The kernel's flusher: dirty pages older than the writeback interval go to the disks. Not stopped by a freeze of
 * the CT's tasks (it is not one of them); stopped by nothing but the device going away.
 */
function writeback(): void {
  for (const base of config.diskBases) {
    const dev = readRegistry(env.clusterDir).devices.find((d) => d.node === env.node && d.deltas[0] === base);
    if (dev && !dev.readonly) syncDevice(env, dev.dev);
  }
}

let timer: NodeJS.Timeout | undefined;
let flusher: NodeJS.Timeout | undefined;

/**
 * criu asks for the CT's pages. A final dump (leaveFrozen) leaves the CT's tasks stopped throughout, until criu
 * thaws or ends them, or dies (seized: the freezer thawed again once criu has seized them). A pre-dump freezes the CT only while it takes the list of pages to dump and clears the dirty map (the
 * soft-dirty clear), then thaws it, and only then writes the pages to the images, as real criu does. Its pre-dump
 * moves the pages into page pipes with the tasks frozen (criu/pie/parasite.c dump_pages, line 89: vmsplice of the
 * task's own pages), does not write them then (criu/mem.c __parasite_dump_pages_seized, line 625: xfer_pages only
 * when not a pre-dump) and resets the dirty tracking (line 636); then criu/cr-dump.c cr_pre_dump_finish thaws the
 * tree and stops TIME_FROZEN (lines 1855–1857: pstree_switch_state(root_item, TASK_ALIVE), timing_stop) before it
 * writes the pipes to the images (page_xfer_dump_pages, line 1885).
 *
 * So a page the CT writes after the thaw can reach the images in that later state, not as at the freeze (the pipes
 * hold the pages themselves, not copies); here the write below blocks the CT's event loop, so the workload's writes
 * of that span come right after it, counted from the thaw. Either way such a page is dirty again: the next dump
 * sends it again, and the final dump, frozen throughout, sends every page written since the last pre-dump's freeze,
 * so the restored memory is the memory at the final freeze.
 */
function dump(req: Extract<CtRequest, { op: 'dump' }>): DumpReply {
  const t0 = process.hrtime.bigint();
  work();
  setFrozen(true);
  const t1 = process.hrtime.bigint();
  let idx: Uint32Array;
  if (req.incremental && tracking) {
    const list: number[] = [];
    for (let p = 0; p < pages; p++) if (dirty[p]) list.push(p);
    idx = Uint32Array.from(list);
  } else {
    idx = new Uint32Array(pages);
    for (let p = 0; p < pages; p++) idx[p] = p;
  }
  dirty = new Uint8Array(pages);
  tracking = req.track || tracking;
  const collected = process.hrtime.bigint();
  if (!req.leaveFrozen) {
    setFrozen(false);
    // The workload continues from the thaw: the frozen span dirtied nothing.
    last = Date.now();
  } else if (tracer) setFreezer(false); // held by the seize alone from now on

  const bytes = writePageImages(req.dir, req.pid, idx, mem);
  const t2 = process.hrtime.bigint();
  // Proof seam: the memory checksum at each final dump (the CT stays frozen), for tests to compare after restore.
  if (req.leaveFrozen)
    appendFileSync(
      join(env.root, 'var', 'log', `ct-${config.ctid}.dumps`),
      JSON.stringify({
        pid: process.pid,
        memSha256: checksum(),
        journalLines,
        at: new Date().toISOString(),
      }) + '\n',
    );
  const us = (a: bigint, b: bigint) => Number((b - a) / 1000n);
  const thawed = req.leaveFrozen ? t2 : collected;
  return {
    pagesScanned: pages,
    pagesWritten: idx.length,
    pagesSkipped: pages - idx.length,
    bytes,
    frozenUs: us(t0, thawed),
    memdumpUs: us(t1, thawed),
    memwriteUs: us(collected, t2),
  };
}

function handle(req: CtRequest): unknown {
  switch (req.op) {
    case 'status':
      return { pid: process.pid, frozen, tracking, pages, dirtied, diskWrites } satisfies CtStatus;
    case 'freeze':
      work();
      setFrozen(true);
      return {};
    case 'thaw':
      setFrozen(false);
      last = Date.now();
      return {};
    case 'seize':
      return {};
    case 'checksum':
      work();
      return {
        memSha256: checksum(),
        dirtied,
        diskWrites,
        frozen,
        ...(restoredSha256 ? { restoredSha256 } : {}),
      };
    case 'state':
      return {
        config,
        rng: rng.s,
        memSha256: checksum(),
        dirtied,
        diskWrites,
      } satisfies CtCoreImage;
    case 'dump':
      return dump(req);
    case 'exit':
      setImmediate(() => shutdown());
      return {};
  }
}

/** The CT's tasks end: with status 0, or 1 when its restored memory was not the dump's. */
function shutdown(code = 0): never {
  clearInterval(timer);
  clearInterval(flusher);
  // The tasks are gone, and with them the CT's cgroup (unless a newer init of this CT already owns it).
  try {
    if (Number(readFileSync(`${cgroup}/tasks`, 'utf8')) === process.pid) {
      rmSync(cgroup, { recursive: true, force: true });
      rmSync(veCgroup, { recursive: true, force: true });
      rmSync(veSysctls, { recursive: true, force: true });
      rmSync(memoryCg, { recursive: true, force: true });
    }
  } catch {
    /* already gone */
  }
  // The tasks are gone: this node no longer runs the CT (vzctl status reads this state).
  try {
    const st = readCtState(env, config.ctid);
    if (st.pid === process.pid) writeCtState(env, config.ctid, {});
  } catch {
    /* best effort */
  }
  server.close();
  try {
    unlinkSync(args.socket);
  } catch {
    /* gone */
  }
  process.exit(code);
}

const server = createServer((c: Socket) => {
  let buf = '';
  c.on('data', (d) => {
    buf += d.toString();
    const nl = buf.indexOf('\n');
    if (nl < 0) return;
    let reply: string;
    let req: CtRequest | undefined;
    try {
      req = JSON.parse(buf.slice(0, nl)) as CtRequest;
      reply = JSON.stringify({ ok: true, value: handle(req) });
    } catch (e) {
      reply = JSON.stringify({ ok: false, error: (e as Error).message });
    }
    buf = '';
    // A seize is held for as long as its connection: answered, not ended.
    if (req?.op === 'seize') {
      seized(c);
      c.write(reply + '\n');
    } else c.end(reply + '\n');
  });
  c.on('error', () => {});
});
process.on('SIGTERM', () => shutdown());

/**
 * The tasks exist (in their cgroups) while their memory is filled, as under a real restore; then the workload runs
 * and the CT answers. A restore whose images cannot fill the memory ends the CT before it says it is ready.
 */
async function boot(): Promise<void> {
  await fillMemory(pages * PAGE);
  // The workload runs from now: the fill is no time of its own (a restored CT did not run while it was restored).
  last = Date.now();
  timer = setInterval(work, 10);
  if (config.writebackMs > 0) flusher = setInterval(writeback, config.writebackMs);
  if (existsSync(args.socket)) unlinkSync(args.socket);
  server.listen(args.socket, () => {
    if (args.readyFd !== undefined) writeSync(args.readyFd, `ready ${process.pid}\n`);
    if (toVerify !== undefined) verifyRestore(toVerify);
  });
}
boot().catch((e: unknown) => {
  // The stack, then the message last: whoever reads the log's tail (launchContainer) gets the reason.
  if (e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  shutdown(1);
});
