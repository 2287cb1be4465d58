import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import {
  connectBus,
  createEventLog,
  ensureTopology,
  insecureTrust,
  limits,
  maxFrozenLeaseMs,
  sendCommand,
  subjects,
  BusUnavailableError,
  type EventLog,
} from '@haul/bus';
import { errorCodes } from '@haul/domain';
import { createValidators, type HostResult, type MigrationEvent, type StepCommand } from '@haul/schemas';
import {
  awaitEvent,
  outcomeOf,
  startNatsServer,
  stepIntended,
  stepSucceeded,
  stepTimedOut,
  type NatsServer,
} from '@haul/test';
import { createNodeAgent, type NodeAgent } from '../src/app.ts';
import { createCommandMarkers } from '../src/markers.ts';
import type { AgentHost } from '../src/host.ts';
import { CommandFailedError } from '../src/adapters/exec.ts';

/**
 * A node agent's commands of different migrations run side by side, each migration's one at a time in its log's
 * order (the command queue's lanes, dispatch-order.ts runsBefore). The agent runs in this process over a host whose
 * only step (lockSource) ends when the test says so.
 */
const validators = createValidators();
const trust = insecureTrust();
const dir = mkdtempSync(join(tmpdir(), 'haul-lanes-'));
let server: NatsServer;
let nc: NatsConnection;
let eventLog: EventLog;
let agent: NodeAgent;

/** The agent's log lines, and the waits for one holding every one of some texts (for at most 30 s). */
const lines: string[] = [];
const waits: { texts: string[]; seen: () => void }[] = [];
const holds = (line: string, texts: string[]) => texts.every((t) => line.includes(t));
const logged = (...texts: string[]) =>
  new Promise<void>((seen, fail) => {
    if (lines.some((l) => holds(l, texts))) return seen();
    const timer = setTimeout(() => fail(new Error(`not logged within 30 s: ${texts.join(' … ')}`)), 30_000);
    waits.push({ texts, seen: () => (clearTimeout(timer), seen()) });
  });
const logStream = {
  write(line: string) {
    lines.push(line);
    for (const w of waits) if (holds(line, w.texts)) w.seen();
  },
};

/** What the host saw, in order: `<command> start` and `<command> end`. */
const seen: string[] = [];
/** Told as each step starts. */
const starts = new Map<string, () => void>();
const started = (c: StepCommand) => new Promise<void>((resolve) => starts.set(c.commandId, resolve));
/** Commands whose step waits until the test ends it. */
const held = new Map<string, { end: () => void; ended: Promise<void> }>();
const hold = (c: StepCommand) => {
  let end!: () => void;
  const ended = new Promise<void>((resolve) => (end = resolve));
  held.set(c.commandId, { end, ended });
};
const host: AgentHost = {
  facts: () => Promise.resolve({ criuVersion: '3.17', memTrack: true, cpuFlags: [] }),
  handlers: {
    lockSource: async (cmd) => {
      seen.push(`${cmd.commandId} start`);
      starts.get(cmd.commandId)?.();
      await held.get(cmd.commandId)?.ended;
      seen.push(`${cmd.commandId} end`);
      return { actions: ['locked (test host)'] } satisfies HostResult;
    },
    // Its first run meets the bus failing inside the step (a read of the log the step asks for): told how it ran.
    stopSource: (cmd, ctx) => {
      const first = !busFailedOnce.has(cmd.commandId);
      busFailedOnce.add(cmd.commandId);
      ranReconciled.push(ctx.reconciled);
      if (first) return Promise.reject(new BusUnavailableError('the log could not be read (test host)'));
      return Promise.resolve({ actions: ['stopped (test host)'] } satisfies HostResult);
    },
  },
};
/** The host's boot id, as the agents of this file read it. */
const bootId = randomUUID();
const busFailedOnce = new Set<string>();
const ranReconciled: boolean[] = [];

/** An agent of `node` in this process, its state in `stateDir`, over `over`. */
const agentOn = (node: string, stateDir: string, over: AgentHost, logStreamOf = logStream): NodeAgent =>
  createNodeAgent({
    nc,
    validators,
    log: pino({ level: 'warn' }, logStreamOf),
    cfg: {
      node,
      hostRoot: dir,
      imageRoot: join(dir, 'images'),
      stateDir,
      sharedRoots: [],
      maxLeaseMs: maxFrozenLeaseMs,
      heartbeatMs: limits.heartbeatMs,
      bootId,
    },
    trust,
    host: over,
    exit: (code) => assert.fail(`the agent's consumer ended (exit ${code})`),
  });

before(async () => {
  server = await startNatsServer();
  nc = await connectBus({ servers: server.url, name: 'lanes-test' });
  await ensureTopology(nc);
  eventLog = createEventLog(nc, validators, trust);
  const imageRoot = join(dir, 'images');
  mkdirSync(imageRoot, { recursive: true });
  agent = agentOn('node-a', join(dir, 'state'), host);
  await agent.start();
});
after(async () => {
  try {
    await agent?.stop();
    await nc?.drain();
  } finally {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Step `n` of a migration: a CT lock on node-a (one step name for all: the log's order is what is tested). */
const lock = (mid: string, n: number, ctid = '101'): StepCommand => ({
  commandId: `${mid}:lockSource:${n}:1`,
  migrationId: mid,
  node: 'node-a',
  executor: 'agent',
  attempt: 1,
  step: 'lockSource',
  args: { ctid },
  timeoutMs: 60_000,
});
/** A migration's one step `step` of CT `ctid` on node-a (its subject `-`). */
const ctStep = (mid: string, step: 'unlockSource' | 'stopSource', ctid: string): StepCommand =>
  ({ ...lock(mid, 1, ctid), commandId: `${mid}:${step}:-:1`, step }) as StepCommand;
const intend = (c: StepCommand) => eventLog.append(stepIntended(c));
/** A migration's first event, which names its CT. */
const requested = (mid: string, ctid: string) =>
  eventLog.append({
    eventId: `${mid}:requested`,
    migrationId: mid,
    type: 'MigrationRequested',
    actor: { service: 'coordinator', node: 'coordinator' },
    time: new Date().toISOString(),
    schemaVersion: 1,
    data: {
      request: { requestId: mid, ctid, source: 'node-a', target: 'node-b', mode: 'live' },
      imageRoots: { source: '/var/local/haul', target: '/var/local/haul' },
    },
  });
/** node-a's preflight, which recorded the host's boot id (`boot`). */
const preflighted = (mid: string, boot = bootId) =>
  eventLog.append({
    eventId: `${mid}:preflighted`,
    migrationId: mid,
    type: 'StepSucceeded',
    actor: { service: 'node-agent', node: 'node-a' },
    time: new Date().toISOString(),
    schemaVersion: 1,
    data: {
      commandId: `${mid}:preflightSource:-:1`,
      step: 'preflightSource',
      node: 'node-a',
      attempt: 1,
      result: {
        configPresent: true,
        running: true,
        criuVersion: '3.17',
        memTrack: true,
        cpuFlags: [],
        imageDir: `/var/local/haul/haul-${mid}`,
        disks: [],
        freeBytes: 1e12,
        bootId: boot,
      },
    },
  });
const send = (c: StepCommand) => sendCommand(nc, validators, trust, c);
/** The same command stored again under another message id (as after the stream's duplicate window). */
const sendAgain = (c: StepCommand) =>
  jetstream(nc).publish(subjects.commands(c.node, c.executor), JSON.stringify(c), {
    msgID: `${c.commandId}:again`,
  });
/** The coordinator gives a command up: its step timed out. */
const givenUp = (c: StepCommand) => eventLog.append(stepTimedOut(c));
const outcome = (c: StepCommand) => awaitEvent(eventLog, c.migrationId, outcomeOf(c.commandId), 30_000);
/** The agent's word that `c` never ran on its host. */
const notRun = (c: StepCommand) => (e: MigrationEvent) =>
  e.type === 'StepFailed' &&
  e.data.commandId === c.commandId &&
  e.data.error.code === errorCodes.notRun &&
  e.actor.service !== 'coordinator';

describe('node agent: migrations side by side, each one in order', () => {
  it("given one migration's step running, when another migration's command comes, then it runs and ends meanwhile", async () => {
    // Given migration X's step on node-a running (CT 101's long pre-dump, say), its next command queued behind it
    const x1 = lock('m-lanes-x', 1);
    const x2 = lock('m-lanes-x', 2);
    hold(x1);
    const x1Started = started(x1);
    await requested('m-lanes-x', '101');
    for (const c of [x1, x2]) await intend(c);
    for (const c of [x1, x2]) await send(c);
    await x1Started;

    // When migration Y's command comes (CT 102, frozen in its window, say)
    const y1 = lock('m-lanes-y', 1, '102');
    await requested('m-lanes-y', '102');
    await intend(y1);
    await send(y1);

    // Then it runs and has its outcome while X's step still runs, and X's next one has not begun
    assert.equal((await outcome(y1)).type, 'StepSucceeded');
    assert.deepEqual(seen, [`${x1.commandId} start`, `${y1.commandId} start`, `${y1.commandId} end`]);
    held.get(x1.commandId)!.end();
    await outcome(x2);
    assert.deepEqual(seen.slice(3), [`${x1.commandId} end`, `${x2.commandId} start`, `${x2.commandId} end`]);
    seen.length = 0;
  });

  it('given two commands intended in order, when the second is handed over first, then the first runs before it', async () => {
    // Given Z's two steps intended, 1 then 2, and only 2 sent (after a restart the server may hand them over so)
    const z1 = lock('m-lanes-z', 1);
    const z2 = lock('m-lanes-z', 2);
    for (const c of [z1, z2]) await intend(c);
    await send(z2);

    // When 1 is sent after it
    await send(z1);

    // Then 1 ran first, then 2: 2 went back to the stream until 1 had its outcome
    await outcome(z2);
    assert.deepEqual(seen, [
      `${z1.commandId} start`,
      `${z1.commandId} end`,
      `${z2.commandId} start`,
      `${z2.commandId} end`,
    ]);
    seen.length = 0;
  });
  it("given a step of an earlier migration of a CT still running, when the CT's next migration sends a command, then it waits for it", async () => {
    // Given migration V of CT 103 with its step still running on node-a (a hung tool whose step was given up, say)
    const v1 = lock('m-lanes-v', 1, '103');
    hold(v1);
    const v1Started = started(v1);
    await requested('m-lanes-v', '103');
    await intend(v1);
    await send(v1);
    await v1Started;

    // When migration W of the same CT sends its command
    const w1 = lock('m-lanes-w', 1, '103');
    const w1Started = started(w1);
    await requested('m-lanes-w', '103');
    await intend(w1);
    await send(w1);

    // Then its step waits (the agent says so), and begins only once V's has ended: one host action per CT at a time
    await logged('a step of another migration of this CT still runs here');
    assert.deepEqual(seen, [`${v1.commandId} start`]);
    held.get(v1.commandId)!.end();
    await w1Started;
    await outcome(w1);
    assert.deepEqual(seen, [
      `${v1.commandId} start`,
      `${v1.commandId} end`,
      `${w1.commandId} start`,
      `${w1.commandId} end`,
    ]);
    seen.length = 0;
  });

  it('given a command waiting for its CT, when the coordinator gives it up meanwhile, then it does not run once the CT is free', async () => {
    // Given migration V2 of CT 104 with its step running on node-a, and migration W2's command waiting for the CT
    const v = lock('m-lanes-v2', 1, '104');
    hold(v);
    const vStarted = started(v);
    await requested('m-lanes-v2', '104');
    await intend(v);
    await send(v);
    await vStarted;
    const w = lock('m-lanes-w2', 1, '104');
    await requested('m-lanes-w2', '104');
    await preflighted('m-lanes-w2');
    await intend(w);
    await send(w);
    await logged('a step of another migration of this CT still runs here', 'm-lanes-w2');

    // When the coordinator gives W2's command up (its step timed out), and then V2's step ends
    await givenUp(w);
    held.get(v.commandId)!.end();

    // Then W2's step never begins: the agent read the log again after the wait, and says in it that W2's never ran
    const said = await awaitEvent(eventLog, 'm-lanes-w2', notRun(w), 30_000);
    assert.deepEqual(said.actor, { service: 'node-agent', node: 'node-a' });
    await outcome(v);
    assert.deepEqual(seen, [`${v.commandId} start`, `${v.commandId} end`]);
    seen.length = 0;
  });

  it("given a step this agent has no handler for (an older agent's), when its command comes, then it is refused and the next one runs", async () => {
    // Given migration U's two commands in order on node-a: a step this agent's version has no handler for, then a
    // lock
    const unknown = ctStep('m-lanes-u', 'unlockSource', '105');
    const next = lock('m-lanes-u', 2, '105');
    await requested('m-lanes-u', '105');
    for (const c of [unknown, next]) await intend(c);

    // When both are sent
    for (const c of [unknown, next]) await send(c);

    // Then the first is refused by the agent, as its addressee, in the log (the coordinator's fold fails its step at
    // once, evolve.ts)
    const refusal = await awaitEvent(
      eventLog,
      'm-lanes-u',
      (e) => e.type === 'CommandRejected' && e.data.commandId === unknown.commandId,
      30_000,
    );
    assert.ok(refusal.type === 'CommandRejected');
    assert.deepEqual(refusal.actor, { service: 'node-agent', node: 'node-a' });
    assert.equal(refusal.data.error.code, errorCodes.wrongExecutor);
    assert.equal(refusal.data.error.field, 'step');
    // And the next one does not wait behind it for the step's timeout: it runs
    assert.equal((await outcome(next)).type, 'StepSucceeded');
    assert.deepEqual(seen, [`${next.commandId} start`, `${next.commandId} end`]);
    seen.length = 0;
  });
});

describe('node agent: a command the coordinator gave up before it came to the agent', () => {
  /** Migration `mid` of CT `ctid` preflighted on node-a in `boot`, its lock intended and then given up. */
  async function givenUpBeforeDelivery(mid: string, ctid: string, boot = bootId): Promise<StepCommand> {
    const c = lock(mid, 1, ctid);
    await requested(mid, ctid);
    await preflighted(mid, boot);
    await intend(c);
    await givenUp(c);
    return c;
  }
  /** Its next command, sent after it: in order, its outcome says the agent has handled the first. */
  async function nextHandled(mid: string, ctid: string): Promise<void> {
    const next = lock(mid, 2, ctid);
    await intend(next);
    await send(next);
    assert.equal((await outcome(next)).type, 'StepSucceeded');
  }
  const saysNotRun = async (mid: string, c: StepCommand) =>
    (await eventLog.read(mid)).events.filter((e) => notRun(c)(e.event)).length;

  it('given no run of it began on this host, when it comes, then the agent does not run it and says it never ran', async () => {
    const c = await givenUpBeforeDelivery('m-lanes-n1', '106');
    await send(c);
    const said = await awaitEvent(eventLog, 'm-lanes-n1', notRun(c), 30_000);
    assert.ok(said.type === 'StepFailed');
    assert.deepEqual(
      [said.actor.service, said.data.node, said.data.step],
      ['node-agent', 'node-a', 'lockSource'],
    );
    await nextHandled('m-lanes-n1', '106');
    assert.deepEqual(seen, [`m-lanes-n1:lockSource:2:1 start`, `m-lanes-n1:lockSource:2:1 end`]);
    seen.length = 0;
  });

  it("given its marker on the host (an earlier agent began it and died), then nothing is said: its run's end is unknown", async () => {
    const c = await givenUpBeforeDelivery('m-lanes-n2', '107');
    const markers = createCommandMarkers(join(dir, 'state', 'commands'));
    markers.begin(c.commandId);
    await send(c);
    await nextHandled('m-lanes-n2', '107');
    assert.equal(await saysNotRun('m-lanes-n2', c), 0);
    // And the marker stays, the record that a run of it began here: a later delivery of it says nothing either
    // (before, the skip removed the marker, and the next delivery said it never ran)
    assert.ok(markers.has(c.commandId));
    const again = await sendAgain(c);
    assert.equal(again.duplicate, false, 'stored again, past the stream duplicate window');
    const third = lock('m-lanes-n2', 3, '107');
    await intend(third);
    await send(third);
    assert.equal((await outcome(third)).type, 'StepSucceeded');
    assert.equal(await saysNotRun('m-lanes-n2', c), 0);
    seen.length = 0;
  });

  it('given its marker and its own outcome in the log (the agent died between the two), then the marker goes', async () => {
    const c = await givenUpBeforeDelivery('m-lanes-n4', '109');
    const markers = createCommandMarkers(join(dir, 'state', 'commands'));
    markers.begin(c.commandId);
    // (its own event id: the test's give-up took the usual one)
    await eventLog.append({
      ...stepSucceeded(c),
      eventId: `${c.commandId}:late`,
      actor: { service: 'node-agent', node: 'node-a' },
    });
    await send(c);
    await nextHandled('m-lanes-n4', '109');
    assert.equal(markers.has(c.commandId), false);
    assert.equal(await saysNotRun('m-lanes-n4', c), 0);
    seen.length = 0;
  });

  it('given the host rebooted since its preflight (a marker may have been lost), then nothing is said', async () => {
    const c = await givenUpBeforeDelivery('m-lanes-n3', '108', randomUUID());
    await send(c);
    await nextHandled('m-lanes-n3', '108');
    assert.equal(await saysNotRun('m-lanes-n3', c), 0);
    seen.length = 0;
  });
});

describe('node agent: the bus failing inside a step', () => {
  it('is not the step failing: the command runs again in place, reconciled by its marker, and succeeds once', async () => {
    // Given a step whose first run meets the bus failing (a read of the log inside it)
    const stop = ctStep('m-lanes-b', 'stopSource', '106');
    await requested('m-lanes-b', '106');
    await intend(stop);

    // When its command comes
    await send(stop);

    // Then it ran again, in doubt (its marker), and its one outcome is a success: before, the bus failing was
    // recorded as the step's failure (HAUL_AGENT_ERROR), and the migration rolled back
    const o = await outcome(stop);
    assert.equal(o.type, 'StepSucceeded', JSON.stringify(o.data));
    assert.deepEqual(ranReconciled, [false, true]);
    const outcomes = (await eventLog.read('m-lanes-b')).events.filter(
      (e) =>
        (e.event.type === 'StepSucceeded' || e.event.type === 'StepFailed') &&
        e.event.data.commandId === stop.commandId,
    );
    assert.equal(outcomes.length, 1);
  });
});

describe('node agent: a stop that cancels a running step', () => {
  it('is not the step failing: the command goes back to the stream in doubt, and the next agent runs it reconciled', async () => {
    // Given node-s's agent running a CT lock whose tool the agent's stop cancels
    const stateDir = join(dir, 'state-node-s');
    const runs: boolean[] = [];
    let begun!: () => void;
    const running = new Promise<void>((resolve) => (begun = resolve));
    let cancel!: () => void;
    const cancelled = new Promise<void>((resolve) => (cancel = resolve));
    const hostOf = (cutShort: boolean): AgentHost => ({
      facts: () => host.facts(),
      handlers: {
        lockSource: async (cmd, ctx) => {
          runs.push(ctx.reconciled);
          if (!cutShort) return { actions: ['locked (test host)'] } satisfies HostResult;
          begun();
          await cancelled;
          throw new CommandFailedError(['vzctl', 'lock', cmd.commandId], undefined, '', 'cancelled');
        },
      },
    });
    const c: StepCommand = {
      ...lock('m-lanes-s', 1, '107'),
      commandId: 'm-lanes-s:lockSource:-:1',
      node: 'node-s',
    };
    await requested('m-lanes-s', '107');
    await intend(c);
    const first = agentOn('node-s', stateDir, hostOf(true));
    await first.start();
    await send(c);
    await running;

    // When the agent stops, its stop cancelling the step's tool
    const stopping = first.stop();
    cancel();
    await stopping;

    // Then no outcome was recorded (before: StepFailed, HAUL_TOOL_CANCELLED, and the migration rolled back)
    const outcomes = () =>
      eventLog
        .read('m-lanes-s')
        .then((r) =>
          r.events.filter(
            (e) =>
              (e.event.type === 'StepSucceeded' || e.event.type === 'StepFailed') &&
              e.event.data.commandId === c.commandId,
          ),
        );
    assert.deepEqual(await outcomes(), []);
    // And the next agent runs it, in doubt (reconciled by inspection, as after a crash), to its one outcome
    const next = agentOn('node-s', stateDir, hostOf(false));
    await next.start();
    try {
      const o = await outcome(c);
      assert.equal(o.type, 'StepSucceeded', JSON.stringify(o.data));
      assert.equal(o.type === 'StepSucceeded' && o.data.reconciled, true);
      assert.deepEqual(runs, [false, true]);
      assert.equal((await outcomes()).length, 1);
    } finally {
      await next.stop();
    }
  });
});
