/**
 * npm run bench:streamer — move the same ~1 GiB set of CRIU-like image files from one folder to another over
 * loopback, side by side, several rounds: (a) a plain file copy over one TCP connection without integrity, (b)
 * P.Haul's way, tar over a socket, (c) haul's image streamer end to end (offer over NATS, TCP, per-chunk CRC-32,
 * resumable part files). Wall time until both ends are done, and CPU seconds of each end. Writes bench/results/streamer.json.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectBus, ensureTopology } from '@haul/bus';
import { freePort, startNatsServer, startService } from '@haul/test';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const rounds = Number(process.env['HAUL_BENCH_ROUNDS'] ?? 5);
const totalMiB = Number(process.env['HAUL_BENCH_MIB'] ?? 1024);
const TICK = 100; // clock ticks per second (Linux USER_HZ)

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

/** Run a shell pipeline; resolve with its wall time and the CPU seconds of everything it ran (bash's cutime/cstime). */
function timed(cmd: string): {
  done: Promise<{ cpu: number; transfer?: [number, number] }>;
  started: Promise<void>;
  go: () => void;
} {
  const child = spawn(
    'bash',
    [
      '-c',
      `${cmd}\nrc=$?; read -r -a s < /proc/$$/stat; echo "CPU $(( s[13] + s[14] + s[15] + s[16] ))" >&2; exit $rc`,
    ],
    { stdio: ['pipe', 'ignore', 'pipe'], cwd: root },
  );
  let err = '';
  let startedResolve!: () => void;
  const started = new Promise<void>((r) => (startedResolve = r));
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString();
    if (err.includes('listening')) startedResolve();
  });
  const done = new Promise<{ cpu: number; transfer?: [number, number] }>((resolve, reject) =>
    child.once('exit', (code) => {
      const m = /CPU (\d+)/.exec(err);
      const t = /TRANSFER (\S+) (\S+)/.exec(err);
      if (code !== 0 || !m) reject(new Error(`${cmd} failed (${code}): ${err}`));
      else
        resolve({
          cpu: Number(m[1]) / TICK,
          ...(t ? { transfer: [Number(t[1]), Number(t[2])] as [number, number] } : {}),
        });
    }),
  );
  return { done, started, go: () => child.stdin.end('go\n') };
}

const procCpu = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / TICK;
};

type Run = { seconds: number; cpuSeconds: number; senderCpu: number; receiverCpu: number };
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const work = mkdtempSync(join(tmpdir(), 'haul-bench-'));
process.once('exit', () => rmSync(work, { recursive: true, force: true }));
const server = await startNatsServer();
const src = join(work, 'src');
const bytes = makeImages(src);
const node = process.execPath;
const receiverRoot = join(work, 'dst');
mkdirSync(receiverRoot, { recursive: true });
{
  // The coordinator creates the topology in a cluster; here nothing else would, so the benchmark does.
  const nc = await connectBus({ servers: server.url, name: 'bench-topology' });
  await ensureTopology(nc);
  await nc.close();
}
const streamer = startService(
  'streamer-b',
  'services/image-streamer/src/main.ts',
  {
    ...process.env,
    HAUL_NODE: 'node-b',
    HAUL_NATS_URL: server.url,
    HAUL_STREAM_ROOTS: receiverRoot,
    HAUL_LOG_LEVEL: 'info',
  },
  (process.env['HAUL_BENCH_RECEIVER_ARGS'] ?? '').split(' ').filter(Boolean),
);
await streamer.waitForLine(/image streamer started/, 30_000);
/**
 * A baseline: start the receiving pipeline, clear the previous method's output (see below), then time the sender
 * until both ends are done ({port} filled in).
 */
async function baseline(recvCmd: string, sendCmd: string, ready: () => void): Promise<Run> {
  const port = String(await freePort());
  const recv = timed(recvCmd.replaceAll('{port}', port));
  await recv.started;
  ready();
  const t0 = performance.now();
  const send = timed(sendCmd.replaceAll('{port}', port));
  const [s, r] = await Promise.all([send.done, recv.done]);
  return {
    seconds: (performance.now() - t0) / 1000,
    cpuSeconds: s.cpu + r.cpu,
    senderCpu: s.cpu,
    receiverCpu: r.cpu,
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

/**
 * Each method gets `ready`, called once its processes are up and right before its timed part: it deletes the
 * previous method's output and warms the page cache (above), so every method writes into memory in the same state.
 */
const methods: Record<string, (dst: string, ready: () => void) => Promise<Run>> = {
  raw_tcp: (dst, ready) =>
    baseline(
      `${node} bench/lib/raw-recv.mjs {port} ${dst}`,
      `${node} bench/lib/raw-send.mjs 127.0.0.1 {port} ${src}`,
      ready,
    ),
  tar: (dst, ready) => {
    mkdirSync(dst, { recursive: true });
    return baseline(
      `${node} bench/lib/pipe-recv.mjs {port} | tar -xf - -C ${dst}`,
      `tar -cf - -C ${src} . | ${node} bench/lib/pipe-send.mjs 127.0.0.1 {port}`,
      ready,
    );
  },
  async haul(dst, ready) {
    const before = procCpu(streamer.pid);
    const send = timed(`${node} --import tsx bench/lib/haul-send.ts ${server.url} ${src} ${dst}`);
    await send.started;
    ready();
    send.go();
    const s = await send.done;
    const r = procCpu(streamer.pid) - before;
    // Measured inside the sender around transfer(): the offer over NATS, the TCP stream, the receiver's verification
    // and the final "done". The sender process's own start (tsx, NATS connect) is left out; the baselines' node
    // start-up is in theirs (about 0.05 s).
    const [seconds, senderCpu] = s.transfer!;
    return { seconds, cpuSeconds: senderCpu + r, senderCpu, receiverCpu: r };
  },
};

const results: Record<string, Run[]> = { raw_tcp: [], tar: [], haul: [] };
try {
  // Round 0 warms up (page cache of the source files, JIT, the streamer) and is not counted.
  let previous: string | undefined;
  for (let round = 0; round <= rounds; round++) {
    // Rotate the order every round, so no method always runs after another's writes and deletions.
    const order = Object.entries(methods);
    for (const [name, run] of [
      ...order.slice(round % order.length),
      ...order.slice(0, round % order.length),
    ]) {
      const dst = join(receiverRoot, `${name}-${round}`);
      const prev = previous;
      const r = await run(dst, () => {
        if (prev) rmSync(prev, { recursive: true, force: true });
        warmPageCache();
      });
      previous = dst;
      if (round === 0) continue;
      results[name]!.push(r);
      console.log(
        `round ${round} ${name.padEnd(8)} ${(bytes / 1e6 / r.seconds).toFixed(0).padStart(6)} MB/s  ${r.seconds.toFixed(2)} s  CPU sender ${r.senderCpu.toFixed(2)} s, receiver ${r.receiverCpu.toFixed(2)} s`,
      );
    }
  }
  const summary = Object.fromEntries(
    Object.entries(results).map(([k, runs]) => {
      const seconds = median(runs.map((r) => r.seconds));
      return [
        k,
        {
          seconds,
          cpuSeconds: median(runs.map((r) => r.cpuSeconds)),
          senderCpuSeconds: median(runs.map((r) => r.senderCpu)),
          receiverCpuSeconds: median(runs.map((r) => r.receiverCpu)),
          mbPerSec: bytes / 1e6 / seconds,
        },
      ];
    }),
  ) as Record<
    'raw_tcp' | 'tar' | 'haul',
    {
      seconds: number;
      cpuSeconds: number;
      senderCpuSeconds: number;
      receiverCpuSeconds: number;
      mbPerSec: number;
    }
  >;
  const out = {
    bytes,
    rounds,
    machine: { cpus: (await import('node:os')).cpus().length, node: process.version },
    methods: summary,
    ratioVsRawTcp: summary.haul.mbPerSec / summary.raw_tcp.mbPerSec,
    ratioVsTar: summary.haul.mbPerSec / summary.tar.mbPerSec,
    haulCpuSecondsPerGB: {
      sender: summary.haul.senderCpuSeconds / (bytes / 1e9),
      receiver: summary.haul.receiverCpuSeconds / (bytes / 1e9),
    },
  };
  mkdirSync(join(here, 'results'), { recursive: true });
  writeFileSync(join(here, 'results', 'streamer.json'), JSON.stringify(out, null, 2) + '\n');
  console.log(`\nmedians of ${rounds} rounds, ${(bytes / 1e6).toFixed(0)} MB:`);
  for (const [k, v] of Object.entries(summary))
    console.log(
      `  ${k.padEnd(8)} ${v.mbPerSec.toFixed(0).padStart(6)} MB/s  CPU ${v.cpuSeconds.toFixed(2)} s (sender ${v.senderCpuSeconds.toFixed(2)}, receiver ${v.receiverCpuSeconds.toFixed(2)})`,
    );
  console.log(
    `  haul ÷ raw TCP = ${out.ratioVsRawTcp.toFixed(2)}   haul ÷ tar = ${out.ratioVsTar.toFixed(2)}   haul CPU-s/GB: sender ${out.haulCpuSecondsPerGB.sender.toFixed(2)}, receiver ${out.haulCpuSecondsPerGB.receiver.toFixed(2)}`,
  );
  console.log('wrote bench/results/streamer.json');
} finally {
  await streamer.kill();
  await server.stop();
  rmSync(work, { recursive: true, force: true });
}
