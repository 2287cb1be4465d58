/**
 * npm run bench:streamer — move the same ~1 GiB set of CRIU-like image files from one folder to another over
 * loopback, every method in every round, side by side:
 *   native   the physical limit: C (bench/lib/native-copy.c, built here with the system's cc; without one it is
 *            skipped and the JSON says why), sendfile(2) on the sending end, read(2) + write(2) on the receiving end
 *   raw_tcp  the same plain copy in Node, written as well as Node allows (no integrity check)
 *   tar      P.Haul's way: tar writing into / reading from the TCP socket
 *   haul     haul's image streamer: offer over NATS, TCP, per-chunk CRC-32, resumable part files (plaintext:
 *            HAUL_INSECURE=1)
 *   haul_tls the same over mutual TLS with per-node certificates (made here with the openssl CLI), as a secure
 *            cluster runs it; `tlsCost` in the JSON is haul_tls ÷ haul
 * Every method is timed the same way: its processes are started and ready first (not timed); the timed part runs
 * from the "go" (the bench's clock) to the sender's "DONE" (its CLOCK_MONOTONIC reading once the receiver
 * acknowledged that every file is written); the CPU of each end is that of its process tree in the same interval,
 * read from /proc. Writes every round and the medians to bench/results/streamer.json.
 * HAUL_BENCH_ROUNDS (5), HAUL_BENCH_MIB (1024), HAUL_BENCH_METHODS (all, e.g. "native,haul"), and node options for
 * haul's two ends (HAUL_BENCH_SENDER_ARGS, HAUL_BENCH_RECEIVER_ARGS, e.g. --cpu-prof) change the run.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { connectBus, ensureTopology } from '@haul/bus';
import { onExit, startNatsServer, startService } from '@haul/test';
import { WRITE_SLICE } from '../services/image-streamer/src/part-file.ts';
import { makeTestPki } from '../services/image-streamer/test/certs.ts';
import { median } from './lib/results.ts';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const rounds = Number(process.env['HAUL_BENCH_ROUNDS'] ?? 5);
const totalMiB = Number(process.env['HAUL_BENCH_MIB'] ?? 1024);
const only = process.env['HAUL_BENCH_METHODS']?.split(',');
const TICK = 100; // clock ticks per second (Linux USER_HZ): the resolution of the CPU times below is 0.01 s
const writeKiB = WRITE_SLICE / 1024;
const cache = join(root, 'node_modules', '.cache', 'haul-bench');

/** A realistic mix: three iterations of big pages-*.img plus the small images CRIU writes next to them. */
function makeImages(dir: string): number {
  const sizes = [0.55, 0.2, 0.15, 0.1].map((f) => Math.floor(f * totalMiB * 1024 * 1024));
  const block = randomBytes(8 * 1024 * 1024);
  let total = 0;
  sizes.forEach((size, i) => {
    const d = join(dir, String(i + 1));
    mkdirSync(d, { recursive: true });
    const buf = Buffer.allocUnsafe(size);
    for (let off = 0; off < size; off += block.length)
      block.copy(buf, off, 0, Math.min(block.length, size - off));
    buf.writeUInt32LE(i, 0);
    writeFileSync(join(d, 'pages-1.img'), buf);
    total += size;
    for (const name of [
      'pagemap-1.img',
      'inventory.img',
      'core-1.img',
      'mm-1.img',
      'pstree.img',
      'fdinfo-2.img',
      'ids-1.img',
      'tty-info.img',
    ]) {
      const small = randomBytes(512 + ((name.length * 997) % 30000));
      writeFileSync(join(d, name), small);
      total += small.length;
    }
  });
  return total;
}

/** Every regular file below `dir` and its size, by relative path. */
function sizesOf(dir: string): Record<string, number> {
  const out: Record<string, number> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out[relative(dir, p)] = statSync(p).size;
    }
  };
  walk(dir);
  return out;
}

/**
 * CPU seconds of a process and all its descendants so far: utime + stime of each live one, plus cutime + cstime
 * (the children it has reaped, so a tar that already exited still counts). Nothing is counted twice: a child's
 * time moves into its parent's cutime only once it is gone.
 */
function treeCpu(pid: number): number {
  const procs = new Map<number, { ppid: number; ticks: number }>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    procs.set(Number(name), { ppid: Number(f[1]), ticks });
  }
  let total = 0;
  const tree = new Set([pid]);
  // /proc lists parents before their children only mostly; go over it until nothing joins.
  for (let grew = true; grew;) {
    grew = false;
    for (const [p, s] of procs)
      if (!tree.has(p) && tree.has(s.ppid)) {
        tree.add(p);
        grew = true;
      }
  }
  for (const p of tree) total += procs.get(p)?.ticks ?? 0;
  return total / TICK;
}

/** A benchmark program: its stderr lines, a way to wait for one, "go" on stdin, and quit (stdin closed). */
type Program = {
  pid: number;
  waitFor: (re: RegExp) => Promise<RegExpExecArray>;
  go: () => void;
  quit: () => Promise<void>;
};

/** The programs running now: killed if the bench ends early (an error, Ctrl-C). */
const running = new Set<ChildProcess>();

function program(cmd: string, args: string[], env: Record<string, string> = {}): Program {
  const child: ChildProcess = spawn(cmd, args, {
    stdio: ['pipe', 'ignore', 'pipe'],
    cwd: root,
    env: { ...process.env, ...env },
  });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let err = '';
  let ended: Error | undefined;
  const waiters: { re: RegExp; resolve: (m: RegExpExecArray) => void; reject: (e: Error) => void }[] = [];
  const settle = () => {
    for (const w of [...waiters]) {
      const m = w.re.exec(err);
      if (!m && !ended) continue;
      waiters.splice(waiters.indexOf(w), 1);
      if (m) w.resolve(m);
      else w.reject(ended!);
    }
  };
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    settle();
  });
  const exited = new Promise<void>((resolve, reject) =>
    child.once('exit', (code, signal) => {
      ended = new Error(`${cmd} ${args.join(' ')} ended (${code ?? signal}): ${err}`);
      settle();
      if (code === 0) resolve();
      else reject(ended);
    }),
  );
  exited.catch(() => {}); // a failure surfaces through waitFor or quit
  return {
    pid: child.pid!,
    waitFor: (re) =>
      new Promise((resolve, reject) => {
        waiters.push({ re, resolve, reject });
        settle();
      }),
    go: () => child.stdin!.write('go\n'),
    quit: () => {
      child.stdin!.end();
      return exited;
    },
  };
}

type Round = { seconds: number; mbPerSec: number; senderCpuSeconds: number; receiverCpuSeconds: number };

/** One method's processes, started and ready: which tree is each end, who gets "go", who prints "DONE". */
type Launched = {
  senderPid: number;
  receiverPid: number;
  starter: Program;
  finisher: Program;
  programs: Program[];
};

const work = mkdtempSync(join(tmpdir(), 'haul-bench-'));
// However the bench ends (a signal too), its copies are killed and its folder removed, as the harness's own.
onExit(() => {
  for (const c of running) c.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});
const src = join(work, 'src');
const bytes = makeImages(src);
const srcSizes = sizesOf(src);
const node = process.execPath;
const receiverRoot = join(work, 'dst');
mkdirSync(receiverRoot, { recursive: true });
mkdirSync(cache, { recursive: true });

/** The C baseline, compiled with the system's cc; undefined (and why) when there is none. */
function buildNative(): { bin?: string; skipped?: string } {
  const bin = join(cache, 'native-copy');
  try {
    execFileSync('cc', ['-O2', '-o', bin, join(here, 'lib', 'native-copy.c')], { stdio: 'pipe' });
    return { bin };
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    return {
      skipped:
        e.code === 'ENOENT'
          ? 'no C compiler: `cc` is not on PATH (Debian: apt-get install gcc)'
          : `cc failed: ${e.stderr?.toString() ?? e.message}`,
    };
  }
}

/** haul's sending end from an esbuild bundle, as haul's programs run (docs/decisions.md §2): no tsx at run time. */
async function buildHaulSender(): Promise<string> {
  const out = join(cache, 'haul-send.mjs');
  await build({
    entryPoints: [join(here, 'lib', 'haul-send.ts')],
    outfile: out,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'warning',
    external: ['pino', 'pino-pretty'],
    banner: {
      js: "import { createRequire as __haulCreateRequire } from 'node:module'; const require = __haulCreateRequire(import.meta.url);",
    },
  });
  return out;
}

const native = buildNative();
const haulSender = await buildHaulSender();
const senderArgs = (process.env['HAUL_BENCH_SENDER_ARGS'] ?? '').split(' ').filter(Boolean);
const server = await startNatsServer();
{
  // The coordinator creates the topology in a cluster; here nothing else would, so the benchmark does.
  const nc = await connectBus({ servers: server.url, name: 'bench-topology' });
  await ensureTopology(nc);
  await nc.close();
}
const pki = makeTestPki(['streamer@node-s', 'streamer@node-t']);
/** A receiving streamer: node-b plaintext (haul), node-t mutual TLS (haul_tls). */
const receivingStreamer = (nodeName: string, env: Record<string, string>) =>
  startService(
    `streamer-${nodeName}`,
    'services/image-streamer/src/main.ts',
    {
      ...process.env,
      HAUL_NODE: nodeName,
      HAUL_NATS_URL: server.url,
      HAUL_STREAM_ROOTS: receiverRoot,
      HAUL_LOG_LEVEL: 'info',
      ...env,
    },
    (process.env['HAUL_BENCH_RECEIVER_ARGS'] ?? '').split(' ').filter(Boolean),
  );
const streamer = receivingStreamer('node-b', { HAUL_INSECURE: '1' });
// Its bus as the plaintext pair's (insecure: this nats-server has no users; the bench times the data path), its data
// connections mutual TLS: a streamer given certificate files uses them, insecure or not (tlsOf).
const tlsStreamer = receivingStreamer('node-t', { HAUL_INSECURE: '1', ...pki.env('streamer@node-t') });
await streamer.waitForLine(/image streamer started/, 30_000);
await tlsStreamer.waitForLine(/image streamer started/, 30_000);

/** Sender listens, receiver connects on "go" (native, raw_tcp). */
async function listenerSends(send: [string, string[]], recv: (port: string) => [string, string[]]) {
  const sender = program(...send);
  const port = (await sender.waitFor(/listening (\d+)/))[1]!;
  const receiver = program(...recv(port));
  await receiver.waitFor(/ready/);
  return {
    senderPid: sender.pid,
    receiverPid: receiver.pid,
    starter: receiver,
    finisher: sender,
    programs: [sender, receiver],
  };
}

const methods: Record<string, ((dst: string) => Promise<Launched>) | { skipped: string }> = {
  native: native.bin
    ? (dst) =>
        listenerSends([native.bin!, ['send', src]], (port) => [
          native.bin!,
          ['recv', '127.0.0.1', port, dst, String(writeKiB)],
        ])
    : { skipped: native.skipped! },
  raw_tcp: (dst) =>
    listenerSends([node, [join(here, 'lib', 'raw-send.mjs'), src]], (port) => [
      node,
      [join(here, 'lib', 'raw-recv.mjs'), '127.0.0.1', port, dst, String(writeKiB)],
    ]),
  async tar(dst) {
    mkdirSync(dst, { recursive: true });
    const receiver = program(node, [join(here, 'lib', 'pipe-recv.mjs'), dst]);
    const port = (await receiver.waitFor(/listening (\d+)/))[1]!;
    const sender = program(node, [join(here, 'lib', 'pipe-send.mjs'), '127.0.0.1', port, src]);
    await sender.waitFor(/ready/);
    return {
      senderPid: sender.pid,
      receiverPid: receiver.pid,
      starter: sender,
      finisher: sender,
      programs: [sender, receiver],
    };
  },
  haul: (dst) => haulSends(dst),
  haul_tls: (dst) => haulSends(dst, true),
};

/** haul's sending end on "go", to the long-lived receiving streamer (node-b plaintext, node-t mutual TLS). */
async function haulSends(dst: string, tls = false): Promise<Launched> {
  const nodes = tls ? ['node-s', 'node-t'] : ['node-a', 'node-b'];
  const env = tls ? pki.env('streamer@node-s') : {};
  const sender = program(node, [...senderArgs, haulSender, server.url, src, dst, ...nodes], env);
  await sender.waitFor(/ready/);
  return {
    senderPid: sender.pid,
    receiverPid: (tls ? tlsStreamer : streamer).pid,
    starter: sender,
    finisher: sender,
    programs: [sender],
  };
}

/**
 * Hand every method the same memory to write into. On this VM the guest returns free memory to the host in
 * 2 MiB blocks a couple of seconds after it is freed (free page reporting); filling such memory again costs the
 * writer several times the kernel time of filling memory freed a moment ago — and which of the two a method gets
 * depends on the size of the page-cache folios its writes ask for and on what the method before it freed (a tar of
 * small files leaves small blocks). Writing and deleting a scratch file larger than the transfer, in 1 MiB
 * writes, right before each timed part leaves large recently freed blocks for whoever writes next.
 */
function warmPageCache(): void {
  const scratch = join(receiverRoot, '.page-cache-warmup');
  const block = Buffer.alloc(1024 * 1024, 1);
  const fd = openSync(scratch, 'w');
  for (let written = 0; written < bytes * 1.25; written += block.length) writeSync(fd, block);
  closeSync(fd);
  rmSync(scratch);
}

/** One timed run: processes up, the previous output deleted and the page cache warmed, then go … DONE. */
async function timedRun(
  launch: (dst: string) => Promise<Launched>,
  dst: string,
  previous?: string,
): Promise<Round> {
  const l = await launch(dst);
  try {
    if (previous) rmSync(previous, { recursive: true, force: true });
    warmPageCache();
    const s0 = treeCpu(l.senderPid);
    const r0 = treeCpu(l.receiverPid);
    const t0 = process.hrtime.bigint();
    l.starter.go();
    const t1 = BigInt((await l.finisher.waitFor(/DONE (\d+)/))[1]!);
    const senderCpuSeconds = treeCpu(l.senderPid) - s0;
    const receiverCpuSeconds = treeCpu(l.receiverPid) - r0;
    const seconds = Number(t1 - t0) / 1e9;
    return {
      seconds: round(seconds, 4),
      mbPerSec: round(bytes / 1e6 / seconds, 1),
      senderCpuSeconds: round(senderCpuSeconds, 2),
      receiverCpuSeconds: round(receiverCpuSeconds, 2),
    };
  } finally {
    await Promise.all(l.programs.map((p) => p.quit()));
  }
}

/** The copy must be whole: every file there with its size (contents are haul's tests' job). */
function checkCopy(name: string, dst: string): void {
  const got = sizesOf(dst);
  for (const [p, size] of Object.entries(srcSizes))
    if (got[p] !== size) throw new Error(`${name}: ${p} has ${got[p]} bytes, expected ${size}`);
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;
const GB = bytes / 1e9;

function summarise(runs: Round[]) {
  const m = {
    seconds: median(runs.map((r) => r.seconds)),
    senderCpuSeconds: median(runs.map((r) => r.senderCpuSeconds)),
    receiverCpuSeconds: median(runs.map((r) => r.receiverCpuSeconds)),
    cpuSeconds: round(median(runs.map((r) => r.senderCpuSeconds + r.receiverCpuSeconds)), 2),
  };
  return {
    median: {
      ...m,
      mbPerSec: round(bytes / 1e6 / m.seconds, 1),
      cpuSecondsPerGB: {
        sender: round(m.senderCpuSeconds / GB, 3),
        receiver: round(m.receiverCpuSeconds / GB, 3),
        total: round(m.cpuSeconds / GB, 3),
      },
    },
    rounds: runs,
  };
}
type Summary = ReturnType<typeof summarise>;

/** a ÷ b for throughput and for CPU per byte (each end and both), from the medians. */
const ratios = (a: Summary, b: Summary) => ({
  throughput: round(a.median.mbPerSec / b.median.mbPerSec, 3),
  cpuPerByte: {
    sender: round(a.median.senderCpuSeconds / b.median.senderCpuSeconds, 3),
    receiver: round(a.median.receiverCpuSeconds / b.median.receiverCpuSeconds, 3),
    total: round(a.median.cpuSeconds / b.median.cpuSeconds, 3),
  },
  /** Both ends' CPU of a ÷ b's, round by round (the methods of a round ran back to back). */
  cpuPerByteByRound: a.rounds.map((r, i) => {
    const o = b.rounds[i]!;
    return round(
      (r.senderCpuSeconds + r.receiverCpuSeconds) / (o.senderCpuSeconds + o.receiverCpuSeconds),
      3,
    );
  }),
});

const load = () => loadavg().map((x) => Math.round(x * 100) / 100);
const loadBefore = load();
const results: Record<string, Round[]> = {};
const runnable = Object.entries(methods).filter(
  (e): e is [string, (dst: string) => Promise<Launched>] =>
    typeof e[1] === 'function' && (!only || only.includes(e[0])),
);
try {
  // Round 0 warms up (page cache of the source files, JIT, the streamer) and is not counted.
  let previous: string | undefined;
  for (let round = 0; round <= rounds; round++) {
    // Rotate the order every round, so no method always runs after another's writes and deletions.
    const order = [...runnable.slice(round % runnable.length), ...runnable.slice(0, round % runnable.length)];
    for (const [name, launch] of order) {
      const dst = join(receiverRoot, `${name}-${round}`);
      const r = await timedRun(launch, dst, previous);
      checkCopy(name, dst);
      previous = dst;
      if (round === 0) continue;
      (results[name] ??= []).push(r);
      console.log(
        `round ${round} ${name.padEnd(8)} ${r.mbPerSec.toFixed(0).padStart(6)} MB/s  ${r.seconds.toFixed(2)} s  CPU sender ${r.senderCpuSeconds.toFixed(2)} s, receiver ${r.receiverCpuSeconds.toFixed(2)} s`,
      );
    }
  }
  const summary: Record<string, Summary | { skipped: string }> = {};
  for (const [name, m] of Object.entries(methods)) {
    if (typeof m !== 'function') summary[name] = m;
    else if (results[name]) summary[name] = summarise(results[name]);
  }
  const measured = (k: string) => {
    const s = summary[k];
    return s && 'median' in s ? s : undefined;
  };
  const versus: Record<string, Record<string, ReturnType<typeof ratios>>> = {};
  for (const a of Object.keys(summary))
    for (const b of ['native', 'raw_tcp', 'tar']) {
      const sa = measured(a);
      const sb = measured(b);
      if (a !== b && sa && sb) (versus[a] ??= {})[`vs_${b}`] = ratios(sa, sb);
    }
  const out = {
    bytes,
    rounds,
    writeKiB,
    timing:
      'processes started and ready before the timed part, for every method; wall time from "go" to the sender\'s ' +
      'DONE (after the receiver acknowledged every file written); CPU of each end = its process tree (/proc, ' +
      'including reaped children) over the same interval, 0.01 s resolution; medians of the rounds after a warm-up',
    machine: {
      cpus: cpus().length,
      node: process.version,
      kernel: release(),
      loadavg: { before: loadBefore, after: load() },
    },
    methods: summary,
    ratios: versus,
    haulCpuSecondsPerGB: measured('haul')?.median.cpuSecondsPerGB,
    // What mutual TLS on the data connection costs, haul with TLS ÷ haul without.
    tlsCost:
      measured('haul_tls') && measured('haul') ? ratios(measured('haul_tls')!, measured('haul')!) : null,
    // The goal: haul's CPU per byte, both ends, at most 1.2 × the native copy's.
    goal: {
      haulCpuVsNative: versus['haul']?.['vs_native']?.cpuPerByte.total ?? null,
      atMost: 1.2,
      met: (versus['haul']?.['vs_native']?.cpuPerByte.total ?? Infinity) <= 1.2,
    },
  };
  mkdirSync(join(here, 'results'), { recursive: true });
  writeFileSync(join(here, 'results', 'streamer.json'), JSON.stringify(out, null, 2) + '\n');
  console.log(
    `\nmedians of ${rounds} rounds, ${(bytes / 1e6).toFixed(0)} MB, load ${loadBefore.join(' ')} → ${load().join(' ')}:`,
  );
  for (const [k, v] of Object.entries(summary)) {
    if (!('median' in v)) {
      console.log(`  ${k.padEnd(8)} skipped: ${v.skipped}`);
      continue;
    }
    const m = v.median;
    const cpg = m.cpuSecondsPerGB;
    const vn = versus[k]?.['vs_native'];
    console.log(
      `  ${k.padEnd(8)} ${m.mbPerSec.toFixed(0).padStart(6)} MB/s  CPU-s/GB sender ${cpg.sender.toFixed(2)}, receiver ${cpg.receiver.toFixed(2)}, both ${cpg.total.toFixed(2)}` +
        (vn
          ? `  ÷ native: CPU ${vn.cpuPerByte.total.toFixed(2)}×, throughput ${vn.throughput.toFixed(2)}×`
          : ''),
    );
  }
  if (out.tlsCost)
    console.log(
      `  TLS ÷ plaintext: throughput ${out.tlsCost.throughput.toFixed(2)}×, CPU per byte ${out.tlsCost.cpuPerByte.total.toFixed(2)}× (sender ${out.tlsCost.cpuPerByte.sender.toFixed(2)}×, receiver ${out.tlsCost.cpuPerByte.receiver.toFixed(2)}×)`,
    );
  console.log('wrote bench/results/streamer.json');
} finally {
  await streamer.kill();
  await tlsStreamer.kill();
  rmSync(pki.dir, { recursive: true, force: true });
  await server.stop();
  rmSync(work, { recursive: true, force: true });
}
