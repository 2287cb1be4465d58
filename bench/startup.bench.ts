/**
 * npm run bench:startup — what a process start costs, in a running world (nats-server, the services, a running CT on
 * node-a). Two of haul's start-up targets: an emulated host tool call in at most 60 ms, a service ready in at most
 * 0.5 s.
 *
 * - Tool calls: each emulated tool as the node agent calls it, on node-a, one call at a time: the wall time from
 *   spawn to exit. Beside them `node -e 0`, Node's own start on this machine, timed the same way: the floor for any
 *   tool written in Node.
 * - Services: each service stopped (SIGTERM, awaited) and started again from its bundle, as the tests and the demo
 *   start it: the wall time from spawn to the line it logs once it serves.
 *
 * Every round is reported, with the median. Writes bench/results/startup.json (or --out).
 */
import { spawn } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { startRunningWorld, type World } from '@haul/test';
import { commitNow, series, writeResults } from './lib/results.ts';
import { round } from './lib/control-proc.ts';
import { optionsOrExit } from './lib/bench-args.ts';
import { startupHelp, parseStartupArgs } from './lib/startup-args.ts';

/**
 * Wall milliseconds from spawn to exit of one command; its exit code must be `expect`. Its output goes to pipes this
 * process reads, as the node agent runs the host tools (a tool writing to a pipe pays for it as it does there).
 */
function timedRun(cmd: string, args: string[], env: NodeJS.ProcessEnv, expect = 0): Promise<number> {
  return new Promise((done, fail) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.resume();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', fail);
    child.once('close', (code) => {
      const ms = performance.now() - t0;
      if (code === expect) done(ms);
      else fail(new Error(`${cmd} ${args.join(' ')} exited ${code}, not ${expect}: ${stderr}`));
    });
  });
}

async function toolCalls(w: World, runs: number) {
  const env = w.cluster.envFor('node-a');
  const calls: Record<string, [string, string[]]> = {
    'node -e 0': [process.execPath, ['-e', '0']],
    'vzctl status': ['vzctl', ['status', w.ctid]],
    'ploop info': ['ploop', ['info', join(w.shared[0]!, 'DiskDescriptor.xml')]],
    'criu -V': ['criu', ['-V']],
  };
  const out: Record<string, ReturnType<typeof series>> = {};
  for (const [name, [cmd, args]] of Object.entries(calls)) {
    await timedRun(cmd, args, env); // a first call, not counted: the page cache warm for every method alike
    const ms: number[] = [];
    for (let i = 0; i < runs; i++) ms.push(await timedRun(cmd, args, env));
    out[name] = series(ms);
    console.error(`[startup] ${name}: median ${out[name].medianMs} ms`);
  }
  return out;
}

async function servicesReady(w: World, runs: number) {
  const restarts: Record<string, { name: string; start: () => Promise<unknown> }> = {
    coordinator: { name: 'coordinator', start: () => w.startCoordinator() },
    'node-agent': { name: 'agent-node-a', start: () => w.startAgent('node-a') },
    'image-streamer': { name: 'streamer-node-a', start: () => w.startStreamer('node-a') },
  };
  const out: Record<string, ReturnType<typeof series>> = {};
  for (const [service, { name, start }] of Object.entries(restarts)) {
    const ms: number[] = [];
    for (let i = 0; i < runs; i++) {
      await w.services.get(name)!.kill('SIGTERM');
      const t0 = performance.now();
      await start();
      ms.push(performance.now() - t0);
    }
    out[service] = series(ms);
    console.error(`[startup] ${service} ready: median ${out[service].medianMs} ms`);
  }
  return out;
}

const o = optionsOrExit(parseStartupArgs, startupHelp);
const ranCommit = commitNow();
const load = { before: loadavg().map((l) => round(l)) };
const w = await startRunningWorld({ sharedDisks: 1, memoryMb: 16 });
try {
  const tools = await toolCalls(w, o.toolRuns);
  const services = await servicesReady(w, o.serviceRuns);
  const toolWorst = Math.max(
    ...Object.entries(tools)
      .filter(([name]) => name !== 'node -e 0')
      .map(([, s]) => s.medianMs),
  );
  const serviceWorst = Math.max(...Object.values(services).map((s) => s.medianMs));
  const results = {
    date: new Date().toISOString(),
    commit: ranCommit,
    machine: {
      cpus: availableParallelism(),
      node: process.version,
      loadavg: { ...load, after: loadavg().map((l) => round(l)) },
    },
    timing:
      'wall time: a tool call from spawn to exit, its stdout and stderr read from pipes (one at a time, after one ' +
      'uncounted call each); a service from ' +
      'spawn to its "started" log line, after the previous one exited (SIGTERM)',
    toolCalls: tools,
    servicesReady: services,
    goals: {
      toolCallMedianAtMost60Ms: toolWorst <= 60,
      serviceReadyMedianAtMost500Ms: serviceWorst <= 500,
    },
  };
  writeResults(o.out, results);
} finally {
  await w.stop();
}
