/**
 * npm run bench:control — how many migrations one coordinator runs. N migrations over M emulated nodes, one
 * coordinator (its own process, from its bundle) on one nats-server; the node agents and image streamers run their
 * own code in this process over a null host that answers every host step after --delay-ms. Reports how many ended,
 * the wall time, the dispatch latency (StepIntended → the executor takes the command off its queue), the event rate
 * against the raw JetStream compare-and-set append rate of the same server, the coordinator's CPU and memory, and a
 * replay: the status of --replay finished migrations rebuilt from the log (EventLog.replaySeals: each log's last
 * message, its seal, where the seal stands for the log unread; beside it, replays that read every message) against a
 * raw read of the same stream.
 * Writes bench/results/control.json (or --out). HAUL_BENCH_COORDINATOR_ARGS: node options for the coordinator's
 * process (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { JsMsg } from '@nats-io/jetstream';
import { connectBus, ensureTopology, insecureTrust, signatureHeaders } from '@haul/bus';
import { createValidators, type MigrationEvent } from '@haul/schemas';
import { createTestIdentities, repoRoot, startNatsServer, startService } from '@haul/test';
import { optionsOrExit } from './lib/bench-args.ts';
import { controlHelp, parseControlArgs } from './lib/control-args.ts';
import { nodeName, startExecutors } from './lib/control-executors.ts';
import { runLoad, type LoadResult } from './lib/control-load.ts';
import { commitNow, writeResults } from './lib/results.ts';
import { cpuSecondsOf, memoryOf, percentile, round } from './lib/control-proc.ts';
import {
  cloneFinished,
  publicKeyOf,
  replayStatuses,
  resigner,
  type StoredMessage,
} from './lib/control-replay.ts';
import { awaitSeals, lastSeqOf, rawCasAppendsPerSec, readStream } from './lib/control-stream.ts';

const dec = new TextDecoder();

const countBy = (xs: readonly string[]): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const x of xs) out[x] = (out[x] ?? 0) + 1;
  return out;
};
const replayRounds = 3;
const coordinatorNodeArgs = (process.env['HAUL_BENCH_COORDINATOR_ARGS'] ?? '').split(' ').filter(Boolean);

/** What the stream holds after the load: each command's intent time, and each finished migration's log. */
function collect() {
  const intents = new Map<string, number>();
  const executors = new Map<string, string>();
  const logs = new Map<string, StoredMessage[]>();
  const finished = new Set<string>();
  const all: Uint8Array[] = [];
  const onMsg = (m: JsMsg) => {
    const e = JSON.parse(dec.decode(m.data)) as MigrationEvent;
    all.push(m.data);
    if (e.type === 'StepIntended') {
      intents.set(e.data.commandId, Date.parse(e.time));
      executors.set(e.data.commandId, e.data.executor);
    }
    if (e.type === 'MigrationCompleted' || e.type === 'MigrationRolledBack') finished.add(e.migrationId);
    const log = logs.get(e.migrationId) ?? [];
    log.push({ data: m.data, signer: m.headers?.get(signatureHeaders.signer) ?? '', type: e.type });
    logs.set(e.migrationId, log);
  };
  const sealed = () => [...logs.values()].filter((l) => l.some((m) => m.type === 'MigrationSealed')).length;
  const finishedLogs = () => new Map([...logs].filter(([mid]) => finished.has(mid)));
  /** An event of the median size, as the payload of the raw appends. */
  const typical = () => [...all].sort((a, b) => a.length - b.length)[Math.floor(all.length / 2)]!;
  return { intents, executors, onMsg, finishedLogs, typical, sealed };
}

const median = (xs: number[]) => percentile(xs, 50);
/** The same statuses, in whatever order each reader rebuilt them. */
const sameJson = (a: readonly { migrationId: string }[], b: readonly { migrationId: string }[]) => {
  const byId = (xs: readonly { migrationId: string }[]) =>
    JSON.stringify([...xs].sort((x, y) => x.migrationId.localeCompare(y.migrationId)));
  return byId(a) === byId(b);
};
const o = optionsOrExit(parseControlArgs, controlHelp);
const ranCommit = commitNow();
const dir = mkdtempSync(join(tmpdir(), 'haul-control-'));
const server = await startNatsServer();
const nc = await connectBus({ servers: server.url, name: 'bench-control' });
try {
  await ensureTopology(nc);
  console.error(
    `[control] ${o.migrations} migrations over ${o.nodes} nodes, host steps answered after ${o.delayMs} ms`,
  );
  const entry = o.coordinator
    ? relative(repoRoot, resolve(o.coordinator))
    : 'services/coordinator/src/main.ts';
  // Signing on, as in a cluster: what is measured includes signing every command and event and checking them.
  const ids = createTestIdentities(
    join(dir, 'secrets'),
    Array.from({ length: o.nodes }, (_, i) => nodeName(i)),
  );
  const coordinator = startService(
    'coordinator',
    entry,
    {
      PATH: process.env['PATH'],
      ...ids.env('coordinator'),
      HAUL_NATS_URL: server.url,
      HAUL_MAX_PER_NODE: String(o.migrations * 2),
    },
    coordinatorNodeArgs,
  );
  await coordinator.waitForLine(/coordinator started/, 60_000);
  const executors = await startExecutors(server.url, dir, o.nodes, o.delayMs, ids);

  const seq0 = await lastSeqOf(nc);
  const cpu0 = cpuSecondsOf(coordinator.pid);
  const ownCpu0 = process.cpuUsage();
  const serverCpu0 = cpuSecondsOf(server.pid);
  const scheduler = ids.trust('scheduler');
  const load: LoadResult = await runLoad(
    nc,
    executors.nodes,
    o.migrations,
    { stallMs: o.stallS * 1000, timeoutMs: o.timeoutS * 1000 },
    (s, b) => scheduler.sign(s, b),
  );
  const cpu = cpuSecondsOf(coordinator.pid) - cpu0;
  const ownCpu = process.cpuUsage(ownCpu0);
  const serverCpu = cpuSecondsOf(server.pid) - serverCpu0;
  const memory = memoryOf(coordinator.pid);
  const events = (await lastSeqOf(nc)) - seq0;
  const terminal = load.completed + load.rolledBack;
  console.error(
    `[control] ${terminal}/${o.migrations} ended in ${round(load.wallSeconds)} s (${events} events); coordinator ${round(cpu)} CPU-s, peak RSS ${round(memory.peakRssMb)} MB`,
  );
  // The coordinator seals each finished log just after its end: stopped before, it would leave logs unsealed that
  // the replay then reads the slow way (and warn that its connection is draining).
  const seals = await awaitSeals(nc, seq0, terminal, 60_000);
  // A coordinator buried in work may not stop in time: it has been measured, so it is killed then.
  await Promise.race([coordinator.kill('SIGTERM'), delay(10_000, undefined, { ref: false })]);
  await coordinator.kill('SIGKILL');
  await executors.stop();

  const stream = collect();
  await readStream(nc, stream.onMsg);
  const timed = [...executors.received].flatMap(([cid, r]) => {
    const intended = stream.intents.get(cid);
    return intended === undefined ? [] : [{ ...r, intended, commandId: cid }];
  });
  const dispatch = timed.map((t) => t.at - t.intended);
  const spread = (xs: number[]) => ({ p50: median(xs), p99: percentile(xs, 99) });
  const raw = await rawCasAppendsPerSec(nc, stream.typical());
  const eventsPerSec = events / load.wallSeconds;
  console.error(
    `[control] ${round(eventsPerSec)} events/s; raw compare-and-set appends ${round(raw.appendsPerSec)}/s; dispatch p50 ${median(dispatch)} ms`,
  );

  let replay: Record<string, unknown> = { skipped: true };
  let replayRatio = NaN;
  if (o.replay > 0) {
    const migrations = await cloneFinished(
      nc,
      stream.finishedLogs(),
      o.replay,
      resigner(ids),
      publicKeyOf(ids, 'coordinator'),
    );
    const rawReads: number[] = [];
    const lastReads: number[] = [];
    const replays: number[] = [];
    const wholeReplays: number[] = [];
    const folded: number[] = [];
    const unverified: number[] = [];
    const oneByOne: number[] = [];
    let sameStatuses = true;
    let rebuilt = 0;
    let fromSnapshots = 0;
    let terminalStatuses = 0;
    let streamEvents = 0;
    for (let r = 0; r < replayRounds; r++) {
      const read = await readStream(nc);
      rawReads.push(read.seconds);
      streamEvents = read.messages;
      lastReads.push((await readStream(nc, undefined, true)).seconds);
      const rep = await replayStatuses(nc, createValidators(), ids.trust('ops'));
      replays.push(rep.seconds);
      // The same statuses from the snapshots with every message read (each log's chain compared with its seal),
      // folded from the events (no snapshot), by a reader that checks every message's signature (no seals), and by
      // one that checks none: what each saving saves, and what the checks that remain cost, side by side. Every
      // status taken from a snapshot must equal the one its events fold to.
      const whole = await replayStatuses(nc, createValidators(), ids.trust('ops'), 'snapshots');
      wholeReplays.push(whole.seconds);
      const fold = await replayStatuses(nc, createValidators(), ids.trust('ops'), 'folded');
      folded.push(fold.seconds);
      const each = await replayStatuses(nc, createValidators(), ids.trust('ops'), 'each');
      oneByOne.push(each.seconds);
      unverified.push((await replayStatuses(nc, createValidators(), insecureTrust(), 'folded')).seconds);
      sameStatuses &&=
        sameJson(rep.statuses, each.statuses) &&
        sameJson(whole.statuses, each.statuses) &&
        sameJson(fold.statuses, each.statuses);
      rebuilt = rep.statuses.length;
      fromSnapshots = Math.min(rep.fromSnapshots, whole.fromSnapshots);
      terminalStatuses = rep.statuses.filter(
        (s) => s.phase === 'completed' || s.phase === 'rolled-back',
      ).length;
    }
    replayRatio = median(replays) / median(rawReads);
    const ratio = (xs: number[]) => round(median(xs) / median(rawReads), 3);
    replay = {
      migrations,
      events: streamEvents,
      statusesRebuilt: rebuilt,
      statusesFromSnapshots: fromSnapshots,
      sealedInTheRun: stream.sealed(),
      sealedBeforeTheCoordinatorStopped: seals,
      sameStatusesAsCheckingEverySignature: sameStatuses,
      terminalStatuses,
      rawReadSeconds: rawReads.map((s) => round(s, 3)),
      replaySeconds: replays.map((s) => round(s, 3)),
      rawReadOfLastMessagesSeconds: lastReads.map((s) => round(s, 3)),
      replayRatioVsRawReadOfLastMessages: round(median(replays) / median(lastReads), 3),
      replayReadingEveryMessageSeconds: wholeReplays.map((s) => round(s, 3)),
      replayReadingEveryMessageRatioVsRawRead: ratio(wholeReplays),
      replayFoldingEveryLogSeconds: folded.map((s) => round(s, 3)),
      replayFoldingEveryLogRatioVsRawRead: ratio(folded),
      replayCheckingEverySignatureSeconds: oneByOne.map((s) => round(s, 3)),
      replayCheckingEverySignatureRatioVsRawRead: ratio(oneByOne),
      replayFoldingWithoutSignatureChecksSeconds: unverified.map((s) => round(s, 3)),
      replayFoldingWithoutSignatureChecksRatioVsRawRead: ratio(unverified),
    };
    console.error(`[control] replay of ${rebuilt} migrations: ${round(replayRatio)} × a raw read`);
  }

  const per1000 = 1000 / Math.max(1, terminal);
  const warnings = coordinator.lines.filter((l) => /"level":(40|50|60)/.test(l));
  const eventsRatio = eventsPerSec / raw.appendsPerSec;
  const results = {
    date: new Date().toISOString(),
    commit: ranCommit,
    coordinatorBundle: o.coordinator ?? 'services/coordinator/dist/main.mjs',
    machine: { cpus: availableParallelism(), node: process.version },
    migrations: o.migrations,
    nodes: o.nodes,
    delayMs: o.delayMs,
    accepted: load.accepted,
    refused: load.refused,
    terminal,
    completed: load.completed,
    rolledBack: load.rolledBack,
    rollbackReasons: load.rollbackReasons,
    stepFailures: load.stepFailures,
    stalled: load.stalled,
    wallSeconds: round(load.wallSeconds),
    migrationsPerMinute: round((terminal / load.wallSeconds) * 60, 1),
    dispatchMs: {
      p50: median(dispatch),
      p99: percentile(dispatch, 99),
      max: Math.max(...dispatch),
      commands: dispatch.length,
      // The two parts: the coordinator's (intent → the command stored in its queue) and the executor's (stored →
      // taken off the queue, or for an agent its migration's turn: mostly waiting behind earlier ones).
      intentToQueuedMs: spread(timed.map((t) => t.storedAt - t.intended)),
      queuedToReceivedMs: spread(timed.map((t) => t.at - t.storedAt)),
      // By executor: an agent's commands are received as their migration's turn comes, a streamer's as delivered.
      byExecutor: Object.fromEntries(
        (['agent', 'streamer'] as const).map((x) => {
          const mine = timed.filter((t) => stream.executors.get(t.commandId) === x);
          return [x, { commands: mine.length, ...spread(mine.map((t) => t.at - t.intended)) }];
        }),
      ),
    },
    events,
    eventsPerSec: round(eventsPerSec),
    rawCasAppendsPerSec: round(raw.appendsPerSec),
    eventsPerSecRatioVsRawAppend: round(eventsRatio, 3),
    // The coordinator's own ceiling: the events it handled per second of its CPU, i.e. its rate if it had a whole core
    // and never waited for the executors or the server. Its events/s cannot exceed this however fast they are.
    eventsPerCoordinatorCpuSecond: round(events / cpu),
    eventsPerCoordinatorCpuSecondRatioVsRawAppend: round(events / cpu / raw.appendsPerSec, 3),
    coordinator: {
      cpuSeconds: round(cpu * per1000),
      rssMb: round(memory.peakRssMb, 1),
      cpuSecondsMeasured: round(cpu),
      rssMbAtEnd: round(memory.rssMb, 1),
      warnings: warnings.length,
      // What they said, each kind counted (its message and error, migration ids left out): a warning is a finding,
      // not a number.
      warningsByMessage: countBy(
        warnings.map((l) => {
          const j = JSON.parse(l) as { msg?: string; err?: { message?: string } };
          return [j.msg, j.err?.message]
            .filter(Boolean)
            .join(': ')
            .replaceAll(/m-[0-9a-f]{24}/g, 'm-…');
        }),
      ),
    },
    executors: {
      died: executors.died,
      // This process during the load: the node agents and image streamers, and the requests and the counting.
      cpuSeconds: round((ownCpu.user + ownCpu.system) / 1e6),
    },
    natsServerCpuSeconds: round(serverCpu),
    replay,
    replayRatioVsRawRead: round(replayRatio, 3),
    goals: {
      allTerminal: terminal === o.migrations,
      eventsPerSecRatioVsRawAppendAtLeast0_5: eventsRatio >= 0.5,
      replayRatioVsRawReadAtMost2: replayRatio <= 2,
    },
  };
  writeResults(o.out, results);
} finally {
  await nc.drain();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
