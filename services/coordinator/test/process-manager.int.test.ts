import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { pino } from 'pino';
import {
  buckets,
  connectBus,
  createEventLog,
  decodeJson,
  ensureTopology,
  openBucket,
  streams,
  subjects,
  type EventLog,
} from '@haul/bus';
import { CommandRejectedError, decide, decideUntilStable, fold, initialState } from '@haul/domain';
import { createValidators, type MigrationEvent, type StepCommand, type Validators } from '@haul/schemas';
import { migrationRolledBack, startNatsServer, tempIdentities, type NatsServer } from '@haul/test';
import { createProcessManager } from '../src/process-manager.ts';

let server: NatsServer;
let nc: NatsConnection;
before(async () => {
  server = await startNatsServer();
  nc = await connectBus({ servers: server.url, name: 'process-manager-test' });
  await ensureTopology(nc);
});
after(async () => {
  await nc?.drain();
  await server?.stop();
});

const validators = createValidators();
const settings = { node: 'coordinator', frozenLeaseMs: 60_000, maxAttempts: 3 };
const trust = tempIdentities().trust('coordinator');

/** A migration of CT `ctid` from node-a to node-b whose request is in the log, and the log. */
async function requested(mid: string, ctid: string): Promise<{ real: EventLog; mid: string }> {
  const real = createEventLog(nc, validators, trust);
  const meta = createProcessManager(nc, validators, real, settings, pino({ level: 'silent' }), trust).meta;
  const events = decide(
    {
      kind: 'RequestMigration',
      migrationId: mid,
      request: { requestId: `r-${mid}`, ctid, source: 'node-a', target: 'node-b' },
      imageRoots: { source: '/img/a', target: '/img/b' },
      meta: meta(),
    },
    initialState(),
  );
  for (const e of events) await real.append(e);
  return { real, mid };
}

/**
 * `real`, with a second writer's `race` run once, before or after this coordinator's first append of an event of
 * `type` (given that event); `raced` tells whether it ran.
 */
function racingOnce(
  real: EventLog,
  type: MigrationEvent['type'],
  when: 'before' | 'after',
  race: (e: MigrationEvent) => Promise<unknown>,
): { log: EventLog; raced: () => boolean } {
  let raced = false;
  const log: EventLog = {
    ...real,
    async append(e, opts) {
      const first = !raced && e.type === type;
      if (first) raced = true;
      if (first && when === 'before') await race(e);
      const r = await real.append(e, opts);
      if (first && when === 'after') await race(e);
      return r;
    },
  };
  return { log, raced: () => raced };
}

it('sends the commands of the events it appended even when it loses the compare-and-set part-way', async () => {
  // Given a requested migration, and a second writer that appends right after this coordinator's first intent
  const { real, mid } = await requested('m-race-0001', '101');
  const { log: racing, raced } = racingOnce(real, 'StepIntended', 'after', () => {
    const other: MigrationEvent = {
      eventId: `${mid}:other:CancelRequested`,
      migrationId: mid,
      type: 'CancelRequested',
      actor: { service: 'coordinator', node: 'other' },
      time: new Date().toISOString(),
      schemaVersion: 1,
      data: { reason: 'a second coordinator got in between' },
    };
    return real.append(other);
  });
  const pm = createProcessManager(nc, validators, racing, settings, pino({ level: 'silent' }), trust);

  // When it advances the migration: two preflight intents decided, the second append loses the race
  await pm.step(mid);
  pm.stop();

  // Then the first intent is in the log and its command was sent to the target's agent
  const { events } = await real.read(mid);
  const intents = events
    .filter((e) => e.event.type === 'StepIntended')
    .map((e) => e.event.data as StepCommand);
  assert.equal(raced(), true);
  assert.deepEqual(
    intents.map((c) => c.step),
    ['preflightTarget'],
  );
  const jsm = await jetstreamManager(nc);
  const sent = await jsm.streams.getMessage(streams.commands, {
    last_by_subj: subjects.commands('node-b', 'agent'),
  });
  assert.equal(sent?.json<StepCommand>().commandId, intents[0]!.commandId);
});

it("appends every intent of a decision before it sends any of the decision's commands", async () => {
  // Given a requested migration, whose first decision intends several steps
  const { real, mid } = await requested('m-early-0001', '102');
  // Every command stored, as the server relays it to core subscribers
  const sent: StepCommand[] = [];
  const commands = nc.subscribe(subjects.commandsAll, {
    callback: (_err, m) => void sent.push(m.json<StepCommand>()),
  });
  /** How many commands had been sent when each intent after the first was about to be appended. */
  const sentBeforeIntent: number[] = [];
  let intentsAppended = 0;
  const watched: EventLog = {
    ...real,
    async append(e, opts) {
      if (e.type === 'StepIntended' && intentsAppended++ > 0) {
        // Whatever the coordinator would have sent by now has reached the server and come back to us.
        await new Promise<void>((r) => setImmediate(r));
        await nc.flush();
        sentBeforeIntent.push(sent.length);
      }
      return real.append(e, opts);
    },
  };
  const pm = createProcessManager(nc, validators, watched, settings, pino({ level: 'silent' }), trust);

  // When it advances the migration
  await pm.step(mid);
  pm.stop();
  await nc.flush();
  commands.unsubscribe();

  // Then no command went out while the decision's intents were being appended (an executor's outcome appended in
  // between would fail the next intent's compare-and-set), and every intent's command went out after, each
  // executor's in the order decided
  const { events } = await real.read(mid);
  const intents = events.flatMap((e) => (e.event.type === 'StepIntended' ? [e.event.data] : []));
  assert.ok(intents.length >= 2, `${intents.length} intents`);
  assert.deepEqual(
    sentBeforeIntent,
    intents.slice(1).map(() => 0),
  );
  /** Command ids by executor subject, in order. */
  const perExecutor = (cs: StepCommand[]) => {
    const by: Record<string, string[]> = {};
    for (const c of cs) (by[subjects.commands(c.node, c.executor)] ??= []).push(c.commandId);
    return by;
  };
  assert.deepEqual(perExecutor(sent), perExecutor(intents));
});

it("sends another coordinator's unsent intents on the same agent before its own, so the agent's queue holds them in order", async () => {
  // Given a requested migration, and another coordinator that appended the first two intents of the first decision
  // (the target's preflight, then the source's) and has not sent their commands yet
  const { mid, pm, decision } = await appendedByAnother('m-two-0001', '103', 2);
  const steps = decision.map((e) => (e.type === 'StepIntended' ? e.data.step : e.type));
  assert.deepEqual(steps, ['preflightTarget', 'preflightSource', 'lockSource']);

  // When this coordinator reads the log and decides the rest: the source's lock, on the same agent
  await pm.step(mid);
  pm.stop();

  // Then node-a's agent queue holds the source's preflight before its lock (the lock alone would have run first),
  // and node-b's holds the target's preflight, which nobody had sent
  const intents = decision.flatMap((e) => (e.type === 'StepIntended' ? [e.data] : []));
  assert.deepEqual(await storedCommands(mid, 'node-a'), [intents[1]!.commandId, intents[2]!.commandId]);
  assert.deepEqual(await storedCommands(mid, 'node-b'), [intents[0]!.commandId]);
});

it('sends the commands in flight that nobody sent, though it decides nothing new', async () => {
  // Given another coordinator that appended the whole first decision and died before sending any of its commands
  const { real, mid, pm, decision, logged } = await appendedByAnother('m-unsent-0001', '104', 3);

  // When this coordinator takes a turn of the migration: nothing is left to decide until the preflights answer
  await pm.step(mid);
  pm.stop();

  // Then every intent's command is stored, each agent's in intent order
  const { events } = await real.read(mid);
  assert.equal(events.length, logged.length + decision.length, 'nothing new decided');
  const intents = decision.flatMap((e) => (e.type === 'StepIntended' ? [e.data] : []));
  assert.deepEqual(await storedCommands(mid, 'node-a'), [intents[1]!.commandId, intents[2]!.commandId]);
  assert.deepEqual(await storedCommands(mid, 'node-b'), [intents[0]!.commandId]);
});

it("names every command it could not send, and sends them all on the migration's next turn", async () => {
  // Given a requested migration, and a coordinator whose first try to send each command fails (a command the
  // schema refuses stands for any failed publish: each fails apart from the others)
  const { real, mid } = await requested('m-unsendable-0001', '105');
  const tried = new Set<string>();
  const firstTryFails: Validators = {
    validate(name, value) {
      const id = name === 'command' ? (value as StepCommand).commandId : undefined;
      if (id === undefined || tried.has(id)) return validators.validate(name, value);
      tried.add(id);
      const error = {
        code: 'HAUL_INVALID_MESSAGE',
        message: 'cannot be sent now',
        field: '',
        rule: 'test',
      } as const;
      return { ok: false, error };
    },
  };
  const warnings: { commandId?: string; msg: string }[] = [];
  const log = pino(
    { level: 'warn' },
    { write: (line: string) => void warnings.push(JSON.parse(line) as { commandId?: string; msg: string }) },
  );
  const pm = createProcessManager(nc, firstTryFails, real, settings, log, trust);

  // When it advances the migration: its first decision intends three steps, and none of their commands is sent
  const first = await pm.step(mid).then(
    () => undefined,
    (err: unknown) => err,
  );

  // Then the turn fails with the first command's failure, and every command's failure is logged by its id
  const { events } = await real.read(mid);
  const intents = events.flatMap((e) => (e.event.type === 'StepIntended' ? [e.event.data] : []));
  assert.equal(intents.length, 3);
  assert.match(String(first), /cannot be sent now/);
  assert.deepEqual(
    warnings
      .filter((w) => w.msg === 'a command could not be sent: sent again at the next turn')
      .map((w) => w.commandId),
    intents.map((c) => c.commandId),
  );

  // And the next turn sends every one of them, each agent's in intent order
  await pm.step(mid);
  pm.stop();
  assert.deepEqual(await storedCommands(mid, 'node-a'), [intents[1]!.commandId, intents[2]!.commandId]);
  assert.deepEqual(await storedCommands(mid, 'node-b'), [intents[0]!.commandId]);
});

/**
 * A requested migration whose first decision another coordinator decided, and of which it appended the first `count`
 * events and sent nothing; a process manager of this coordinator beside it, and how long the log was before.
 */
async function appendedByAnother(mid: string, ctid: string, count: number) {
  const { real } = await requested(mid, ctid);
  const pm = createProcessManager(nc, validators, real, settings, pino({ level: 'silent' }), trust);
  const { events, lastSeq } = await real.read(mid);
  const decision = decideUntilStable(
    { kind: 'Advance', meta: pm.meta() },
    fold(
      events.map((e) => e.event),
      initialState(),
    ),
  ).events;
  let seq = lastSeq;
  for (const e of decision.slice(0, count)) seq = (await real.append(e, { expectedLastSeq: seq })).seq;
  return { real, mid, pm, decision, logged: events };
}

/** The command ids of a migration stored for a node's agent, in stream order. */
async function storedCommands(mid: string, node: string): Promise<string[]> {
  const jsm = await jetstreamManager(nc);
  const { state } = await jsm.streams.info(streams.commands);
  const ids: string[] = [];
  for (let seq = state.first_seq; seq <= state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(streams.commands, { seq });
    const c = m?.json<StepCommand>();
    if (m?.subject === subjects.commands(node, 'agent') && c?.migrationId === mid) ids.push(c.commandId);
  }
  return ids;
}

it("answers an operator's cancel it recorded as taken, though another coordinator appended what came of it first", async () => {
  // Given a migration this coordinator holds folded, and a second coordinator that, seeing the cancel recorded, appends
  // the rollback it decides (the same event) before this one does
  const { real, mid } = await requested('m-race-0010', '110');
  const { log: racing, raced } = racingOnce(real, 'RollbackStarted', 'before', (e) => real.append(e));
  const pm = createProcessManager(nc, validators, racing, settings, pino({ level: 'silent' }), trust);
  try {
    await pm.step(mid);

    // When an operator's cancel comes: its CancelRequested is appended, its RollbackStarted comes back a duplicate
    const state = await pm.step(mid, () => ({ kind: 'Cancel', reason: 'window over', meta: pm.meta() }));

    // Then the cancel is answered as taken (before, decided again on the log that held it, it was refused as
    // HAUL_ALREADY_ROLLING_BACK), and the log holds it once
    assert.equal(raced(), true);
    assert.equal(state.cancelRequested, 'window over');
    const { events } = await real.read(mid);
    assert.equal(events.filter((e) => e.event.type === 'CancelRequested').length, 1);
    assert.equal(events.filter((e) => e.event.type === 'RollbackStarted').length, 1);
  } finally {
    pm.stop();
  }
});

it('does not cancel a migration for an admission it found lost, once the log shows another coordinator took its first step', async () => {
  // Given a requested migration, an admission that this coordinator finds lost (its CT taken meanwhile), and another
  // coordinator that, its admission confirmed a moment before, appends the preflight's intents first
  const { real, mid } = await requested('m-race-0011', '111');
  const { log: racing, raced } = racingOnce(real, 'CancelRequested', 'before', async () => {
    const { events, lastSeq } = await real.read(mid);
    const { events: intents } = decideUntilStable(
      {
        kind: 'Advance',
        meta: createProcessManager(nc, validators, real, settings, pino({ level: 'silent' }), trust).meta(),
      },
      fold(
        events.map((e) => e.event),
        initialState(),
      ),
    );
    let at = lastSeq;
    for (const e of intents) at = (await real.append(e, { expectedLastSeq: at })).seq;
  });
  const lost = { code: 'HAUL_CT_BUSY', message: 'CT 111 is already migrating (m-other)', field: 'ctid' };
  const pm = createProcessManager(nc, validators, racing, settings, pino({ level: 'silent' }), trust, {
    confirm: () => Promise.resolve(lost),
  });
  try {
    // When this coordinator takes its turn: its cancel loses the compare-and-set to the other's intents
    await pm.step(mid);

    // Then it goes on from the other's first step (before, it decided the cancel again on that log, and a migration
    // admitted by the other coordinator rolled back as "admission lost before the first step")
    assert.equal(raced(), true);
    const { events } = await real.read(mid);
    assert.deepEqual(
      events.filter((e) => e.event.type === 'CancelRequested' || e.event.type === 'RollbackStarted'),
      [],
    );
    assert.ok(events.some((e) => e.event.type === 'StepIntended'));
  } finally {
    pm.stop();
  }
});

it("projects the end it read when it refuses an operator's cancel because the migration ended meanwhile", async () => {
  // Given a migration this coordinator holds folded, which another writer ended since
  const { real, mid } = await requested('m-race-0009', '109');
  const pm = createProcessManager(nc, validators, real, settings, pino({ level: 'silent' }), trust);
  try {
    await pm.step(mid);
    await real.append(migrationRolledBack(mid, 'ended by another writer'));

    // When an operator's cancel comes: decided on the state held, its append loses, the log read says it is over
    await assert.rejects(
      pm.step(mid, () => ({ kind: 'Cancel', reason: 'window over', meta: pm.meta() })),
      (err: unknown) => err instanceof CommandRejectedError,
    );

    // Then the end was projected (before, the status stayed at the preflight for good: no event of it comes back)
    const kv = await openBucket(nc, buckets.status);
    const status = decodeJson((await kv.get(mid))!.value) as { terminal?: unknown; phase?: string };
    assert.equal(status.phase, 'rolled-back', JSON.stringify(status));
  } finally {
    pm.stop();
  }
});
