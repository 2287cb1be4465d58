/**
 * npm run soak — the safety promise over time: migrations back and forth between emulated nodes on a 3-server
 * JetStream cluster while a seeded chaos loop kill -9s services and nats-servers and starts them again. Each
 * migration's end is checked against the data-safety invariants; at the end the event log is audited for lost
 * events and every stream and bucket for its replicas. Writes bench/results/soak.json (`--help` for the options).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { lastBesidesSeal } from '@haul/test';
import { BenchArgError } from './lib/bench-args.ts';
import { parseSoakArgs, soakHelp, type SoakOptions } from './lib/soak-args.ts';
import {
  deadLetterCount,
  readDeadLetters,
  readMigrations,
  readWholeLog,
  waitHealthy,
} from './lib/soak-audit.ts';
import { runChaos, type Kill } from './lib/soak-chaos.ts';
import { compareEventLogs, isTerminal, startEventTap, type EventTap } from './lib/soak-events.ts';
import { countOutcomes, describeEvents, startMigrations, type Driver } from './lib/soak-migrations.ts';
import { summarize } from './lib/soak-report.ts';
import { createRng } from './lib/soak-rng.ts';
import { serviceKinds } from './lib/soak-services.ts';
import { maxPerNode, startSoakWorld, type SoakWorld } from './lib/soak-world.ts';

let opts: SoakOptions | 'help';
try {
  opts = parseSoakArgs(process.argv.slice(2));
} catch (err) {
  if (!(err instanceof BenchArgError)) throw err;
  console.error(`soak: ${err.message}`);
  process.exit(2);
}
if (opts === 'help') {
  console.log(soakHelp);
  process.exit(0);
}
const o = opts;
const t0 = Date.now();
const now = () => Date.now() - t0;
const say = (s: string) => console.log(`[${(now() / 1000).toFixed(1).padStart(7)}s] ${s}`);

const interrupt = new AbortController();
for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.on(sig, () => {
    if (interrupt.signal.aborted) {
      console.error('soak: stopping at once (processes are killed by PID on exit)');
      process.exit(130);
    }
    say(`${sig}: stopping the chaos and every process the soak started (again to force)`);
    interrupt.abort();
  });

const unexpectedExits: Record<string, number> = {};
const startFailures: Record<string, number> = {};
const kills: Kill[] = [];
/** nats-server kills skipped because a replica was still behind (see beforeKill). */
let natsKillsSkipped = 0;
let world: SoakWorld | undefined;
let exitCode = 1;
try {
  say(
    `soak: ${o.minutes} min, seed ${o.seed}, ${o.nodes} nodes, ${o.cts} CTs, ${o.coordinators} coordinator(s), ` +
      `${o.parallel} at once, deadline ${o.deadlineS}s, chaos ${o.chaos ? 'on' : 'off'}`,
  );
  world = await startSoakWorld(
    o,
    {
      onUnexpectedExit(name, code, tail) {
        unexpectedExits[name] = (unexpectedExits[name] ?? 0) + 1;
        say(`${name} exited by itself (code ${code}); restarting it. Last lines:\n  ${tail.join('\n  ')}`);
      },
      onStartFailure(name, err) {
        startFailures[name] = (startFailures[name] ?? 0) + 1;
        say(`${name} did not start: ${err.message.split('\n')[0]}; trying again`);
      },
    },
    say,
  );
  const w = world;
  const tap = startEventTap(w.nc, (err) => say(`event follower failed (${err.message}); following again`));
  const chaosStop = new AbortController();
  const chaos = o.chaos
    ? runChaos({
        rng: createRng(o.seed, 'chaos'),
        victims: w.services,
        gapS: o.killGapS,
        downS: o.downS,
        signal: chaosStop.signal,
        now,
        // One nats-server down at a time and only once every replica caught up: quorum always stays. A replica
        // still behind after 60 s counts as the one failure the R3 groups may have: no nats-server is killed then
        // (killing one anyway was a second failure, which stalled a node's command consumer for minutes).
        beforeKill: async (v) => {
          if (v.kind !== 'nats' || (await waitHealthy(w.nc, 60_000)).ok || chaosStop.signal.aborted)
            return true;
          natsKillsSkipped++;
          say(`not killing ${v.name}: some replica is still behind after 60s`);
          return false;
        },
        onKill: (k) => {
          kills.push(k);
          say(`kill -9 ${k.name} (pid ${k.pid}), down for ${(k.downMs / 1000).toFixed(1)}s`);
        },
        onBack: (k) => say(`${k.name} is back ${((k.backAfterMs ?? 0) / 1000).toFixed(1)}s after its kill`),
      })
    : Promise.resolve([]);
  const driver = startMigrations({
    world: w,
    tap,
    seed: o.seed,
    parallel: o.parallel,
    deadlineMs: o.deadlineS * 1000,
    maxPerNode,
    kills,
    now,
    say,
  });
  await delay(o.minutes * 60_000, undefined, { signal: interrupt.signal }).catch(() => {});
  driver.stop();
  chaosStop.abort();
  await chaos;
  say(`chaos stopped after ${kills.length} kills; waiting for ${driver.inFlight()} running migration(s)`);
  if (!interrupt.signal.aborted)
    await Promise.race([driver.done, new Promise((r) => interrupt.signal.addEventListener('abort', r))]);
  const results = await audit(w, tap, driver);
  writeResults(results);
  exitCode = results.ok ? 0 : results.interrupted ? 130 : 1;
} catch (err) {
  say(`soak failed: ${(err as Error).stack ?? String(err)}`);
} finally {
  const keepLogs = o.keep || exitCode !== 0;
  if (world && keepLogs) say(`service logs kept in ${world.logDir}`);
  await world?.stop({ keepLogs });
}
process.exit(exitCode);

async function audit(w: SoakWorld, tap: EventTap, driver: Driver) {
  say('auditing: replicas, the event log, each migration');
  const { ok: healthy, health } = await waitHealthy(w.nc, interrupt.signal.aborted ? 5_000 : 120_000);
  await tap.stop();
  const whole = await readWholeLog(w.nc);
  const perMigration = await readMigrations(w.eventLog, tap.byMigration.keys());
  const loss = compareEventLogs(tap.seen, whole.messages, perMigration, w.refusedSeqs);
  // Nothing expires or is deleted in a soak's time: sequences 1..last all hold a message.
  const holes = whole.lastSeq - whole.count;
  // An event after the terminal one (a late step outcome, a second terminal) is a violation of its migration; the
  // coordinator's seal of the log is not an event of the migration.
  for (const r of driver.records) {
    const last = lastBesidesSeal(perMigration.get(r.migrationId) ?? []);
    if (!r.outcome || r.outcome === 'stuck' || !last || isTerminal(last)) continue;
    r.broken.push(`after the run its log ends with ${last.type} (seq ${last.seq}), not its terminal event`);
    r.events = describeEvents((await w.eventLog.read(r.migrationId)).events.map((e) => e.event));
    say(`${r.migrationId} CT ${r.ctid}: VIOLATION: ${r.broken.at(-1)}`);
  }
  const violations = driver.records.filter((r) => r.broken.length > 0);
  const stuck = driver.records.filter((r) => r.outcome === 'stuck');
  const replicasAtEnd = Object.fromEntries(Object.entries(health).map(([k, v]) => [k, v.replicas]));
  const interrupted = interrupt.signal.aborted;
  const eventsLost = loss.lost.length;
  const deadLetters = await deadLetterCount(w.nc);
  const parked = await readDeadLetters(w.nc);
  const ok =
    !interrupted &&
    healthy &&
    parked.other.length === 0 &&
    violations.length === 0 &&
    stuck.length === 0 &&
    eventsLost === 0 &&
    holes === 0 &&
    driver.anomalies.length === 0 &&
    Object.values(replicasAtEnd).every((r) => r === 3);
  const killCount = Object.fromEntries(
    serviceKinds.map((k) => [k, kills.filter((x) => x.kind === k).length]),
  );
  return {
    minutes: o.minutes,
    seed: o.seed,
    nodes: o.nodes,
    cts: o.cts,
    coordinators: o.coordinators,
    parallel: o.parallel,
    deadlineS: o.deadlineS,
    chaos: o.chaos,
    startedAt: new Date(t0).toISOString(),
    wallS: Math.round(now() / 1000),
    interrupted,
    ok,
    migrations: countOutcomes(driver.records),
    kills: killCount,
    violations: violations.length,
    stuck: stuck.length,
    eventsLost,
    replicasAtEnd,
    ...summarize(driver.records),
    violationDetails: violations,
    stuckDetails: stuck,
    anomalies: driver.anomalies,
    events: {
      observed: loss.observed,
      atEnd: loss.atEnd,
      unobserved: loss.unobserved,
      lost: loss.lost,
      reordered: loss.reordered,
      refusedByReaders: loss.refused,
      streamHoles: holes,
      invalid: w.invalidEvents,
      followerRestarts: tap.restarts(),
    },
    replicaHealthAtEnd: { healthy, streams: health },
    deadLetters,
    deadLetterDetails: parked,
    rejections: driver.rejections,
    unansweredRequests: driver.unanswered,
    unexpectedExits,
    startFailures,
    natsKillsSkipped,
    killLog: kills,
    perMigration: driver.records.map((r) => ({
      id: r.migrationId,
      ct: r.ctid,
      from: r.source,
      to: r.target,
      mode: r.mode,
      ...(r.preDump ? { preDump: r.preDump } : {}),
      sharedDisks: r.sharedDisks,
      outcome: r.outcome ?? 'unfinished',
      ...(r.durationS !== undefined ? { durationS: r.durationS } : {}),
      ...(r.downtimeMs !== undefined ? { downtimeMs: r.downtimeMs } : {}),
      ...(r.rollbackReason ? { rollbackReason: r.rollbackReason } : {}),
      ...(r.longestQuietS !== undefined ? { longestQuietS: r.longestQuietS } : {}),
      kills: r.killsDuring,
    })),
  };
}

function writeResults(r: Awaited<ReturnType<typeof audit>>): void {
  const file = resolve(process.cwd(), o.out);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(r, null, 2) + '\n');
  const m = r.migrations;
  say(
    `${r.ok ? 'PASS' : 'FAIL'}: ${m.completed} completed, ${m.rolledBack} rolled back, ${r.stuck} stuck, ` +
      `${r.violations} violations, ${r.eventsLost} events lost, ${r.anomalies.length} anomalies, ` +
      `${r.deadLetters} dead letters (${r.deadLetterDetails.misdelivered.length} commands misdelivered by the server, refused), kills ${JSON.stringify(r.kills)}, replicas ${JSON.stringify(r.replicasAtEnd)}` +
      `${r.replicaHealthAtEnd.healthy ? '' : ' (some replica still behind)'} → ${file}`,
  );
}
