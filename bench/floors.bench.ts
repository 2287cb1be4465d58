/**
 * npm run bench:floors — what this machine allows beneath two of haul's frozen-window goals (downtime ≤ 1 s, ≤ 5 ms
 * of control overhead per step), measured the same way on any machine, so a run on a VZ host can be set beside
 * this one's (docs/decisions.md, section 9, says what the first found here).
 *
 * - Memory: a restore reads the CT's memory into fresh memory. 256 MiB filled on huge pages (the tunable the
 *   emulated CT's init runs with, withHugePages), timed inside a new process: after --idle-ms of quiet, and right
 *   after another process freed as much. A guest that reports its free memory to its host (free page reporting)
 *   pays the host's backing again after the quiet; a host does not.
 * - The bus: every step is an intent's append and an outcome's append (compare-and-set on the migration's subject),
 *   a command's publish and its delivery. One compare-and-set append at a time, each timed from publish to ack, on a
 *   nats-server of its own into a stream made like the event stream.
 *
 * Every round is reported, with the median. Writes bench/results/floors.json (or --out).
 */
import { spawn } from 'node:child_process';
import { availableParallelism, loadavg, release } from 'node:os';
import { setTimeout as quiet } from 'node:timers/promises';
import { connectBus, encodeJson } from '@haul/bus';
import { withHugePages } from '@haul/host-emulators';
import type { StepCommand } from '@haul/schemas';
import { startNatsServer, stepIntended } from '@haul/test';
import { optionsOrExit } from './lib/bench-args.ts';
import { casAppendRoundTripsMs } from './lib/control-stream.ts';
import { percentile, round } from './lib/control-proc.ts';
import { floorsHelp, parseFloorsArgs } from './lib/floors-args.ts';
import { commitNow, series, writeResults } from './lib/results.ts';

const fillMiB = 256;
/** The child's program: allocate and fill, print the milliseconds that took. */
const fillProgram = `const t = performance.now(); Buffer.allocUnsafe(${fillMiB} << 20).fill(1); process.stdout.write(String(performance.now() - t));`;

/** One fill in a new process, as the emulated CT's init gets its memory; its own milliseconds. */
function fillOnce(): Promise<number> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['-e', fillProgram], {
      env: { ...process.env, GLIBC_TUNABLES: withHugePages(process.env['GLIBC_TUNABLES']) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', fail);
    child.once('close', (code) => {
      const ms = Number(out);
      if (code === 0 && out.trim() !== '' && Number.isFinite(ms)) done(ms);
      else fail(new Error(`the fill exited ${code}: ${err || out}`));
    });
  });
}

async function memoryFills(rounds: number, idleMs: number) {
  const afterIdle: number[] = [];
  const afterFree: number[] = [];
  for (let i = 0; i < rounds; i++) {
    // The quiet is the condition measured (how long the freed memory stays backed), not a wait for an event.
    await quiet(idleMs);
    afterIdle.push(await fillOnce());
    afterFree.push(await fillOnce());
    console.error(
      `[floors] fill ${i + 1}/${rounds}: ${round(afterIdle.at(-1)!, 1)} ms after idle, ${round(afterFree.at(-1)!, 1)} ms after a free`,
    );
  }
  return { idleMs, afterIdle: series(afterIdle), afterFree: series(afterFree) };
}

/** An intent as the coordinator appends it: the size of the bus's usual message. */
function typicalEvent(): Uint8Array {
  const command = {
    commandId: 'm-0123456789abcdef01234567:snapshotOrigin:1:1',
    migrationId: 'm-0123456789abcdef01234567',
    node: 'node-a',
    executor: 'agent',
    attempt: 1,
    step: 'snapshotOrigin',
    args: {
      ddxml: '/vz/shared/ct101-data0/DiskDescriptor.xml',
      guid: '{6f555502-a7a8-4e87-85b4-2874caa8cd11}',
    },
    timeoutMs: 120_000,
  } as StepCommand;
  return encodeJson(stepIntended(command));
}

async function busRoundTrips(appends: number) {
  const server = await startNatsServer();
  const nc = await connectBus({ servers: server.url, name: 'bench-floors' });
  try {
    const payload = typicalEvent();
    const ms = await casAppendRoundTripsMs(nc, payload, appends);
    const at = (p: number) => round(percentile(ms, p), 2);
    console.error(`[floors] compare-and-set append: p50 ${at(50)} ms, p99 ${at(99)} ms (${appends})`);
    return {
      appends,
      payloadBytes: payload.length,
      p50Ms: at(50),
      p90Ms: at(90),
      p99Ms: at(99),
      maxMs: round(Math.max(...ms), 2),
      roundsMs: ms.map((m) => round(m, 2)),
    };
  } finally {
    await nc.close();
    await server.stop();
  }
}

const o = optionsOrExit(parseFloorsArgs, floorsHelp);
const ranCommit = commitNow();
const load = { before: loadavg().map((l) => round(l)) };
const memory = await memoryFills(o.fillRounds, o.idleMs);
const bus = await busRoundTrips(o.appends);
writeResults(o.out, {
  date: new Date().toISOString(),
  commit: ranCommit,
  machine: {
    cpus: availableParallelism(),
    node: process.version,
    kernel: release(),
    loadavg: { ...load, after: loadavg().map((l) => round(l)) },
  },
  timing:
    `memory: ${fillMiB} MiB allocated and filled in a new process with glibc's huge-page tunable, timed inside it, ` +
    'after the quiet and then at once; bus: one compare-and-set append at a time, publish to ack, after one ' +
    'uncounted append, on a nats-server of its own',
  memoryFill256MiB: memory,
  casAppendRoundTrip: bus,
});
