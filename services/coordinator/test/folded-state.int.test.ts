import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import {
  connectBus,
  createEventLog,
  decodeJson,
  ensureTopology,
  eventFactory,
  limits,
  sendCommand,
  stepTimeoutsMs,
  subjects,
  type EventLog,
  type StoredEvent,
} from '@haul/bus';
import {
  CommandRejectedError,
  decide,
  decideUntilStable,
  errorCodes,
  fold,
  initialState,
  type DecideMeta,
  type MigrationState,
} from '@haul/domain';
import { createValidators, executorServices, type MigrationEvent, type StepCommand } from '@haul/schemas';
import { awaitEvent, startNatsServer, tempIdentities, type NatsServer } from '@haul/test';
import { createCoordinator } from '../src/app.ts';
import { createProcessManager } from '../src/process-manager.ts';

const validators = createValidators();
const silent = pino({ level: 'silent' });
/** No resync during a test: whatever the process manager reads, it reads because of what happened. */
const settings = { node: 'coordinator', frozenLeaseMs: 60_000, maxAttempts: 3, resyncMs: 3_600_000 };
const shared = '/shared/ct101/DiskDescriptor.xml';

let server: NatsServer;
let nc: NatsConnection;
let real: EventLog;
/** Signing on, as in a cluster: the coordinator's log signs as the coordinator, each executor's as itself. */
const ids = tempIdentities();
const trust = ids.trust('coordinator');
const executorLogs = new Map<string, EventLog>();
/** The log as the executor of `cmd` appends to it (signed with its key). */
const executorLog = (cmd: StepCommand): EventLog => {
  const name = `${cmd.executor}@${cmd.node}`;
  let l = executorLogs.get(name);
  if (!l) executorLogs.set(name, (l = createEventLog(nc, validators, ids.trust(name))));
  return l;
};
before(async () => {
  server = await startNatsServer();
  nc = await connectBus({ servers: server.url, name: 'folded-state-test' });
  await ensureTopology(nc);
  real = createEventLog(nc, validators, trust);
});
after(async () => {
  await nc?.drain();
  await server?.stop();
});

/** The event log, with every read recorded (which migration, and after which sequence). */
function countingReads(): { eventLog: EventLog; reads: { migrationId: string; afterSeq?: number }[] } {
  const reads: { migrationId: string; afterSeq?: number }[] = [];
  const eventLog: EventLog = {
    ...real,
    read(migrationId, opts) {
      reads.push(opts?.afterSeq === undefined ? { migrationId } : { migrationId, afterSeq: opts.afterSeq });
      return real.read(migrationId, opts);
    },
  };
  return { eventLog, reads };
}

const metaAt = (now: number): DecideMeta => ({
  ...createProcessManager(nc, validators, real, settings, silent, trust).meta(),
  now: new Date(now).toISOString(),
});

/** MigrationRequested of a new migration, as the API appends it (compare-and-set on an empty subject). */
async function request(mid: string, now = Date.now()): Promise<StoredEvent> {
  const [requested] = decide(
    {
      kind: 'RequestMigration',
      migrationId: mid,
      request: {
        requestId: `r-${mid}`,
        ctid: '101',
        source: 'node-a',
        target: 'node-b',
        sharedDisks: [shared],
      },
      imageRoots: { source: '/img/a', target: '/img/b' },
      meta: metaAt(now),
    },
    initialState(),
  );
  const { seq } = await real.append(requested!, { expectedLastSeq: 0 });
  return { seq, event: requested! };
}

/** What a healthy host answers to each step (a null host). */
function resultOf(cmd: StepCommand): unknown {
  switch (cmd.step) {
    case 'preflightSource':
    case 'preflightTarget':
      return {
        configPresent: true,
        running: cmd.step === 'preflightSource',
        criuVersion: '3.17',
        memTrack: true,
        cpuFlags: [],
        imageDir: (cmd.args as { imageDir: string }).imageDir,
        disks: [{ ddxml: shared, shared: true }],
        freeBytes: 1e12,
      };
    case 'preDump':
    case 'finalDump':
      return { pagesWritten: 1, bytes: 4096, durationMs: 1 };
    case 'streamImages':
    case 'copyLocalDisk':
      return { bytes: 0, files: 0, durationMs: 1, mbPerSec: 0 };
    default:
      return { actions: [] };
  }
}

/** An executor's outcome of a command, with `body` (its result or its error). */
const outcomeOf = (
  cmd: StepCommand,
  type: 'StepSucceeded' | 'StepFailed',
  body: { result: unknown } | { error: unknown },
): MigrationEvent =>
  eventFactory({ service: executorServices[cmd.executor], node: cmd.node })(
    cmd.migrationId,
    type,
    { commandId: cmd.commandId, step: cmd.step, node: cmd.node, attempt: cmd.attempt, ...body } as never,
    `${cmd.commandId}:result`,
  );

/** The outcome an executor appends for a command (no compare-and-set, as agents and streamers append). */
const succeeded = (cmd: StepCommand): MigrationEvent =>
  outcomeOf(cmd, 'StepSucceeded', { result: resultOf(cmd) });

describe('the coordinator keeps each active migration folded', () => {
  it("runs a whole migration from the events its consumer delivers, without reading the log once, its commands in their intents' order", async () => {
    // Given a coordinator whose event log counts reads, and executors that answer every command it sends with success
    const { eventLog, reads } = countingReads();
    const own = await connectBus({ servers: server.url, name: 'folded-state-coordinator' });
    const coordinator = createCoordinator(own, validators, { ...settings, maxMigrationsPerNode: 2 }, silent, {
      eventLog,
      trust,
    });
    await coordinator.start();
    const mid = 'm-folded-whole';
    let answering = Promise.resolve();
    const answered = new Set<string>();
    /** The commands as the server took them (the order they are stored in). */
    const sentOrder: string[] = [];
    const commands = nc.subscribe(subjects.commandsAll, {
      callback: (_err, msg) => {
        const cmd = decodeJson(msg.data) as StepCommand;
        if (answered.has(cmd.commandId)) return;
        answered.add(cmd.commandId);
        sentOrder.push(cmd.commandId);
        answering = answering.then(() =>
          executorLog(cmd)
            .append(succeeded(cmd))
            .then(() => undefined),
        );
      },
    });
    try {
      // When a migration is requested
      await request(mid);

      // Then it completes, and the coordinator never read its log: every event came from its consumer
      const end = await awaitEvent(real, mid, (e) => e.type === 'MigrationCompleted', 60_000);
      assert.equal(end.type, 'MigrationCompleted');
      const { events } = await real.read(mid);
      assert.ok(events.length >= 25, `${events.length} events`);
      assert.deepEqual(reads, []);
      // And the commands, a decision's published at once (the frozen window's five), reached the server in the order
      // of their intents
      const intended = events.flatMap((e) =>
        e.event.type === 'StepIntended' ? [e.event.data.commandId] : [],
      );
      assert.deepEqual(sentOrder, intended);
    } finally {
      commands.unsubscribe();
      await answering;
      await coordinator.stop();
      await own.drain();
    }
  });
});

/** A requested migration whose preflight commands (and the lock's) the process manager intended. */
async function preflighted(mid: string) {
  const { eventLog, reads } = countingReads();
  const pm = createProcessManager(nc, validators, eventLog, settings, silent, trust);
  const requested = await request(mid);
  pm.received(requested.seq);
  await pm.deliver(requested);
  const { events, lastSeq } = await real.read(mid);
  const intents = events.flatMap((e) => (e.event.type === 'StepIntended' ? [e.event.data] : []));
  assert.deepEqual(
    intents.map((c) => c.step),
    ['preflightTarget', 'preflightSource', 'lockSource'],
  );
  return { pm, reads, intents, lastSeq };
}

describe('an event that is not the next one of its migration', () => {
  it('is folded without a read when every sequence before it reached the coordinator', async () => {
    const { pm, reads, intents } = await preflighted('m-folded-next');
    try {
      // When both outcomes are delivered, each one the next of its migration
      for (const cmd of intents) {
        const event = succeeded(cmd);
        const { seq } = await executorLog(cmd).append(event);
        pm.received(seq);
        await pm.deliver({ seq, event });
      }
      // Then the next step is decided, and the log was not read
      const { events } = await real.read('m-folded-next');
      assert.equal(events.at(-1)?.event.type, 'StepIntended');
      assert.deepEqual(reads, []);
    } finally {
      pm.stop();
    }
  });

  it('makes the process manager read the part of the log it missed, and only that part', async () => {
    const { pm, reads, intents, lastSeq } = await preflighted('m-folded-gap');
    try {
      // Given the target's outcome and the lock's went to another coordinator (this one never received them)
      await executorLog(intents[0]!).append(succeeded(intents[0]!));
      await executorLog(intents[2]!).append(succeeded(intents[2]!));
      // When the source's outcome is delivered
      const event = succeeded(intents[1]!);
      const { seq } = await executorLog(intents[1]!).append(event);
      pm.received(seq);
      await pm.deliver({ seq, event });

      // Then the process manager read the log after what it had folded, and decided from all three outcomes
      assert.deepEqual(reads, [{ migrationId: 'm-folded-gap', afterSeq: lastSeq }]);
      const { events } = await real.read('m-folded-gap');
      const last = events.at(-1)?.event;
      assert.equal(last?.type === 'StepIntended' && last.data.step, 'preDump');
    } finally {
      pm.stop();
    }
  });

  it('is not folded over an earlier event of its migration that came first and is not settled yet (still judged, or handed back)', async () => {
    const mid = 'm-folded-unsettled';
    const { pm, reads, intents, lastSeq } = await preflighted(mid);
    try {
      // Given the three outcomes reached the coordinator in order, the target's first, which is still being judged
      // (a judge reading back over the network) or failed its judging and was handed back
      const stored = [];
      for (const cmd of intents) {
        const event = succeeded(cmd);
        const { seq } = await executorLog(cmd).append(event);
        pm.received(seq, mid);
        stored.push({ seq, event });
      }
      // When the two later ones are delivered before it
      for (const d of stored.slice(1)) {
        await pm.deliver(d);
        pm.settled(d.seq, mid);
      }

      // Then the process manager read the log after what it had folded (which holds the target's outcome), and
      // decided from all three outcomes; before, it folded the later two over it, and the target's preflight stayed
      // in flight in its state for good (the sequence past it), to time out in the coordinator alone
      assert.deepEqual(reads, [{ migrationId: mid, afterSeq: lastSeq }]);
      const { events } = await real.read(mid);
      const last = events.at(-1)?.event;
      assert.equal(last?.type === 'StepIntended' && last.data.step, 'preDump');
      // And the earlier one, delivered at last, is folded already: nothing more is read or decided
      await pm.deliver(stored[0]!);
      assert.equal(reads.length, 1);
      assert.equal((await real.read(mid)).events.length, events.length);
    } finally {
      pm.stop();
    }
  });

  it('a MigrationRequested delivered again (a hand-back, or a process before this one) is not taken for a new migration: the whole log is read', async () => {
    const mid = 'm-folded-again';
    const { pm: first, intents } = await preflighted(mid);
    first.stop();
    // Given the migration went on past its preflight (its outcomes in the log), and a process manager that holds
    // nothing of it
    for (const cmd of intents) await executorLog(cmd).append(succeeded(cmd));
    const { eventLog, reads } = countingReads();
    const pm = createProcessManager(nc, validators, eventLog, settings, silent, trust);
    try {
      // When its MigrationRequested is delivered again
      const { events } = await real.read(mid);
      const requested = events[0]!;
      assert.equal(requested.event.type, 'MigrationRequested');
      pm.received(requested.seq, mid);
      await pm.deliver(requested, true);
      pm.settled(requested.seq, mid);

      // Then the process manager read the whole log first (before, it folded the request alone, decided the
      // preflight again from it, lost the compare-and-set and read after the request), and went on from there
      assert.deepEqual(reads[0], { migrationId: mid });
      const after = (await real.read(mid)).events;
      assert.equal(after.filter((e) => e.event.type === 'MigrationRequested').length, 1);
      const last = after.at(-1)?.event;
      assert.equal(last?.type === 'StepIntended' && last.data.step, 'preDump');
    } finally {
      pm.stop();
    }
  });
});

describe('two coordinators deciding the same steps from the same point', () => {
  it('sends no command of its own for an intent another coordinator appended first with its own data', async () => {
    // Given a requested migration, and another coordinator (the same identity, its quick steps' timeout configured
    // longer) that decided the preflight from the same point and appended its first intent
    const mid = 'm-folded-two';
    const requested = await request(mid);
    const theirs = metaAt(Date.now());
    const { events: decided } = decideUntilStable(
      { kind: 'Advance', meta: { ...theirs, timeoutsMs: { ...theirs.timeoutsMs, quick: 99_000 } } },
      fold([requested.event], initialState()),
    );
    const first = decided[0]!;
    assert.equal(first.type === 'StepIntended' && first.data.timeoutMs, 99_000);
    const other = createEventLog(nc, validators, ids.trust('coordinator'));
    await other.append(first, { expectedLastSeq: requested.seq });
    const sent: StepCommand[] = [];
    const commands = nc.subscribe(subjects.commandsAll, {
      callback: (_err, msg) => void sent.push(decodeJson(msg.data) as StepCommand),
    });
    const pm = createProcessManager(nc, validators, real, settings, silent, trust);
    try {
      // When this coordinator's process manager gets the request and decides (its first append a duplicate)
      pm.received(requested.seq, mid);
      await pm.deliver(requested);
      pm.settled(requested.seq, mid);
      await nc.flush();

      // Then every command it sent is exactly its intent in the log: the other coordinator's copy is not sent in
      // this coordinator's version (before, it was: its executor refused it as intended nowhere)
      const { events } = await real.read(mid);
      const intents = new Map(
        events.flatMap((e) =>
          e.event.type === 'StepIntended' ? [[e.event.data.commandId, e.event.data]] : [],
        ),
      );
      assert.equal(intents.size, 3, 'the preflight, once each');
      assert.ok(sent.length > 0, 'it sent the intents it appended');
      for (const cmd of sent) assert.deepEqual(cmd, intents.get(cmd.commandId), cmd.commandId);
      assert.ok(
        sent.some((c) => c.commandId === (first.data as StepCommand).commandId),
        "the other coordinator's intent sent as the log holds it (that coordinator may have died)",
      );
    } finally {
      commands.unsubscribe();
      pm.stop();
    }
  });
});

describe('two coordinators deciding differently from the same point', () => {
  it("sends the other's intents it read after losing the compare-and-set, though deciding again adds none of its own", async () => {
    // Given a migration whose source is locked and whose first pre-dump is over its timeout (5 s, intended 10 s ago,
    // the steps before it on its agent answered then too: a step is timed from the end of the one before it)
    const mid = 'm-folded-raced';
    const past = Date.now() - 10_000;
    const meta = { ...metaAt(past), timeoutsMs: { ...stepTimeoutsMs, criu: 5000 } };
    const requested = await request(mid, past);
    const log: MigrationEvent[] = [requested.event];
    let seq = requested.seq;
    for (let preDump = false; !preDump;) {
      const { events } = decideUntilStable({ kind: 'Advance', meta }, fold(log, initialState()));
      for (const e of events) {
        seq = (await real.append(e, { expectedLastSeq: seq })).seq;
        log.push(e);
      }
      const intents = events.flatMap((e) => (e.type === 'StepIntended' ? [e.data] : []));
      assert.ok(intents.length > 0, `the migration goes on: ${log.map((e) => e.type).join(', ')}`);
      preDump = intents.some((c) => c.step === 'preDump');
      for (const c of preDump ? [] : intents) {
        const outcome = { ...succeeded(c), time: new Date(past).toISOString() };
        seq = (await executorLog(c).append(outcome)).seq;
        log.push(outcome);
      }
    }
    // And another coordinator whose timer gave the pre-dump up, from the same point, right before this one's own
    // decision is appended: it appended its decision and died before sending its commands
    let theirs: StepCommand[] | undefined;
    const racing: EventLog = {
      ...real,
      async append(e, opts) {
        if (!theirs) {
          const { events } = decideUntilStable(
            { kind: 'Tick', meta: metaAt(Date.now()) },
            fold(log, initialState()),
          );
          theirs = events.flatMap((x) => (x.type === 'StepIntended' ? [x.data] : []));
          let at = seq;
          for (const x of events) at = (await real.append(x, { expectedLastSeq: at })).seq;
        }
        return real.append(e, opts);
      },
    };
    const sent: StepCommand[] = [];
    const commands = nc.subscribe(subjects.commandsAll, {
      callback: (_err, msg) => void sent.push(decodeJson(msg.data) as StepCommand),
    });
    const pm = createProcessManager(nc, validators, racing, settings, silent, trust);
    try {
      // When this coordinator decides something else from that point (an operator's cancel), loses the
      // compare-and-set, reads the other's decision and decides again
      await pm
        .step(mid, () => ({ kind: 'Cancel', reason: 'an operator', meta: pm.meta() }))
        .catch((err: unknown) => assert.ok(err instanceof CommandRejectedError, String(err)));
      await nc.flush();

      // Then the other's commands were sent, as the log holds them (before, they waited for a resync of the migration)
      assert.ok(theirs && theirs.length > 0, 'the other coordinator intended steps');
      for (const c of theirs)
        assert.deepEqual(
          sent.find((x) => x.commandId === c.commandId),
          c,
          `${c.commandId} sent (sent: ${sent.map((x) => x.commandId).join(', ')})`,
        );
    } finally {
      commands.unsubscribe();
      pm.stop();
    }
  });
});

/** The outcome an executor appends for a command its host work failed (a tool's exit, worth another attempt). */
const failed = (cmd: StepCommand): MigrationEvent =>
  outcomeOf(cmd, 'StepFailed', { error: { code: errorCodes.toolFailed, message: 'injected', exitCode: 1 } });

/**
 * Drive `mid` with process manager `pm` (a coordinator of its own) until it is stuck: the preflights and the lock
 * succeed, every other command fails on every attempt (the pre-dump, then the rollback's first action).
 */
async function driveToStuck(
  pm: ReturnType<typeof createProcessManager>,
  mid: string,
): Promise<MigrationState> {
  const healthy = new Set(['preflightSource', 'preflightTarget', 'lockSource']);
  for (let round = 0; round < 30; round++) {
    const s = await pm.tick(mid);
    if (s.stuck || s.terminal) return s;
    for (const { command: cmd } of Object.values(s.steps).filter((r) => r.status === 'intended'))
      await executorLog(cmd).append(healthy.has(cmd.step) ? succeeded(cmd) : failed(cmd));
  }
  throw new Error(`${mid}: not stuck after 30 rounds`);
}

describe("an operator's input to a coordinator whose folded state lags behind the log", () => {
  it('takes a retry of a migration another coordinator drove until it got stuck', async () => {
    // Given a coordinator that holds a migration folded at its preflight, and another coordinator that drove it on
    // since (its consumer got the events): the pre-dump failed on every attempt, then the rollback's removal of the
    // source's image folder
    const mid = 'm-folded-stale-retry';
    const { pm, reads, lastSeq } = await preflighted(mid);
    const other = createProcessManager(nc, validators, real, settings, silent, trust);
    try {
      const stuck = await driveToStuck(other, mid);
      assert.equal(stuck.terminal, undefined);
      assert.equal(stuck.stuck?.action, 'removeFiles:source-images', JSON.stringify(stuck.stuck));

      // When an operator's retry reaches the coordinator whose state is behind
      const state = await pm.step(mid, () => ({ kind: 'Retry', reason: 'folder fixed', meta: pm.meta() }));

      // Then it is decided on the log read after what that coordinator held, and taken (before, it was refused as
      // HAUL_NOT_STUCK on the state held, though the operator's status showed the migration stuck)
      assert.deepEqual(reads, [{ migrationId: mid, afterSeq: lastSeq }]);
      assert.equal(state.stuck, undefined);
      const { events } = await real.read(mid);
      assert.equal(events.filter((e) => e.event.type === 'RetryRequested').length, 1);
      const last = events.at(-1)?.event;
      assert.equal(last?.type === 'StepIntended' && last.data.step, 'removeFiles');
    } finally {
      pm.stop();
      other.stop();
    }
  });
});

/** The coordinator's timeout of a step of `mid` (HAUL_STEP_TIMEOUT), within 20 s. */
const timedOut = (mid: string) =>
  awaitEvent(real, mid, (e) => e.type === 'StepFailed' && e.data.error.code === 'HAUL_STEP_TIMEOUT', 20_000);

it('gives up a step at its deadline from the step’s own timer, with no tick of every migration', async () => {
  // Given a migration whose preflight steps were intended now, with a timeout of 1.5 s
  const mid = 'm-folded-deadline';
  const intendedAt = Date.now();
  const requested = await request(mid, intendedAt);
  const { events: intents } = decideUntilStable(
    { kind: 'Advance', meta: { ...metaAt(intendedAt), timeoutsMs: { ...stepTimeoutsMs, quick: 1500 } } },
    fold([requested.event], initialState()),
  );
  const delivered: StoredEvent[] = [requested];
  let seq = requested.seq;
  for (const e of intents) {
    seq = (await real.append(e, { expectedLastSeq: seq })).seq;
    delivered.push({ seq, event: e });
    // and their commands sent then, as the coordinator that intended them sends them
    if (e.type === 'StepIntended') await sendCommand(nc, validators, trust, e.data);
  }
  const pm = createProcessManager(nc, validators, real, settings, silent, trust);
  try {
    // When the process manager has folded them (nothing to decide: both steps are in flight)
    for (const d of delivered) {
      pm.received(d.seq);
      await pm.deliver(d);
    }

    // Then, with no more events and no resync, the timeout is recorded once the deadline has passed
    const failed = await timedOut(mid);
    assert.ok(Date.parse(failed.time) > intendedAt + 1500, failed.time);
  } finally {
    pm.stop();
  }
});

/**
 * Intents a coordinator appended `ago` ms ago (a 3 s timeout) and died before it sent their commands; another
 * coordinator's process manager takes the migration over and sends them, and then `alsoBy` more, each finding them
 * sent (every coordinator adopts every admitted migration). Resolves with the timeout's time and the first take-over's.
 */
async function takenOverAfter(
  mid: string,
  ago: number,
  alsoBy = 0,
): Promise<{ failedAt: number; tookOver: number }> {
  const intendedAt = Date.now() - ago;
  const requested = await request(mid, intendedAt);
  const { events: intents } = decideUntilStable(
    { kind: 'Advance', meta: { ...metaAt(intendedAt), timeoutsMs: { ...stepTimeoutsMs, quick: 3000 } } },
    fold([requested.event], initialState()),
  );
  let seq = requested.seq;
  for (const e of intents) seq = (await real.append(e, { expectedLastSeq: seq })).seq;
  const pms = Array.from({ length: 1 + alsoBy }, () =>
    createProcessManager(nc, validators, real, settings, silent, trust),
  );
  const tookOver = Date.now();
  try {
    for (const pm of pms) await pm.adopt(mid);
    const failed = await timedOut(mid);
    return { failedAt: Date.parse(failed.time), tookOver };
  } finally {
    for (const pm of pms) pm.stop();
  }
}

it('gives up a step whose command a coordinator that died never sent only its timeout after this one sent it', async () => {
  // Given intents appended 2.5 s ago, their commands never sent; when another coordinator takes the migration over
  const { failedAt, tookOver } = await takenOverAfter('m-folded-late-send', 2500);
  // Then the timeout is recorded once its send is 3 s old, not 3 s after the intent (half a second after the
  // take-over before: the agent would have had no time to run the step)
  assert.ok(failedAt > tookOver + 3000, `${failedAt - tookOver} ms after the take-over`);
});

it('gives it up no earlier from a coordinator that found the command sent by the one that took over', async () => {
  // Given intents appended 2.5 s ago, their commands never sent; when one coordinator takes the migration over and
  // sends them, and another adopts it after (its sends are duplicates: it does not know when they were stored)
  const { failedAt, tookOver } = await takenOverAfter('m-folded-late-send-2', 2500, 1);
  // Then no coordinator records the timeout before the first send is 3 s old (the second counted from the intent
  // before, and gave the step up half a second after the take-over)
  assert.ok(failedAt > tookOver + 3000, `${failedAt - tookOver} ms after the take-over`);
});

it("counts from the intent a command intended longer ago than the command stream's duplicate window", async () => {
  // Given intents appended longer ago than the stream remembers message ids: their commands may have been stored
  // then, and a store now says nothing of when their executor could have begun
  const { failedAt, tookOver } = await takenOverAfter('m-folded-old-send', limits.duplicateWindowMs + 1000);
  // Then the step is given up at once, from its intent
  assert.ok(failedAt < tookOver + 3000, `${failedAt - tookOver} ms after the take-over`);
});
