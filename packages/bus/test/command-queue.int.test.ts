import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { nanos, TimeoutError } from '@nats-io/nats-core';
import { AckPolicy, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import { createValidators, executorServices, type StepCommand } from '@haul/schemas';
import {
  migrationRolledBack,
  natsAtLeast,
  natsReleases,
  startNatsCluster,
  startNatsServer,
  stepIntended,
  stepSucceeded,
  tempIdentities,
  until,
  type NatsCluster,
  type NatsServer,
} from '@haul/test';
import {
  connectBus,
  createCommandQueue,
  createEventLog,
  ensureTopology,
  commandConsumerName,
  identityName,
  withReadCache,
  insecureTrust,
  limits,
  sendCommand,
  streams,
  subjects,
  type CommandQueueDeps,
  type EventLog,
  type Executor,
} from '@haul/bus';

const validators = createValidators();
const log = pino({ level: 'silent' });
const trust = insecureTrust();

let server: NatsServer;
let nc: NatsConnection;
before(async () => {
  server = await startNatsServer();
  nc = await connectBus({ servers: server.url, name: 'command-queue-test' });
  await ensureTopology(nc);
});
after(async () => {
  await nc?.drain();
  await server?.stop();
});

/** Command `n` of a migration for a node's executor: an agent's CT lock, or a streamer's transfer of images. */
const command = (node: string, executor: Executor, n: number): StepCommand => ({
  commandId: `m-queue-0001:${node}:${n}:1`,
  migrationId: 'm-queue-0001',
  node,
  executor,
  attempt: 1,
  ...(executor === 'agent'
    ? { step: 'lockSource', args: { ctid: '101' } }
    : {
        step: 'streamImages',
        args: { toNode: 'node-a', sourceDir: `/img/${n}`, targetDir: `/img/${n}`, priority: 'iteration' },
      }),
  timeoutMs: 30_000,
});

/**
 * Two commands stored for one executor, A then B; handling A fails once on the bus (a nats.js timeout, as reads and
 * appends raise it once their retries are spent). Returns the commands in the order the handler was given them.
 */
async function handledInOrder(node: string, executor: Executor, inOrder: boolean): Promise<string[]> {
  const a = command(node, executor, 1);
  const b = command(node, executor, 2);
  for (const c of [a, b]) await sendCommand(nc, validators, trust, c);
  const queue = createCommandQueue({
    nc,
    validators,
    eventLog: createEventLog(nc, validators, trust),
    log,
    actor: { service: executorServices[executor], node },
    executor,
    trust,
    inOrder,
  });
  const seen: string[] = [];
  const ac = new AbortController();
  let failed = false;
  const done = new Promise<void>((resolve) => {
    void queue.consume((d) => {
      seen.push(d.command.commandId === a.commandId ? 'A' : 'B');
      if (d.command.commandId === a.commandId && !failed) {
        failed = true;
        return Promise.reject(new Error('reading the log', { cause: new TimeoutError() }));
      }
      d.msg.ack();
      if (seen.filter((s) => s === 'A').length === 2 && seen.includes('B')) resolve();
      return Promise.resolve();
    }, ac.signal);
  });
  await done;
  ac.abort();
  return seen;
}

describe('command queue: a command whose handling failed on the bus', () => {
  it('an executor that runs in order (the agent) tries it again before the one stored after it', async () => {
    // Given two commands stored for node-a's agent, the first failing once on the bus
    // When the agent's queue hands them over
    const seen = await handledInOrder('node-a', 'agent', true);

    // Then the first is tried again before the second is handed over at all (a snapshot never before its backup)
    assert.deepEqual(seen, ['A', 'A', 'B']);
  });

  it('an executor that runs several at once (the streamer) has it delivered again later, the next one first', async () => {
    // Given two transfers stored for node-b's streamer, the first failing once on the bus
    // When the streamer's queue hands them over
    const seen = await handledInOrder('node-b', 'streamer', false);

    // Then the second is not held back behind the first's retry
    assert.deepEqual(seen, ['A', 'B', 'A']);
  });
});

/** Command `n` of migration `mid` for node's agent. */
const agentCommand = (mid: string, node: string, n: number): StepCommand => ({
  ...command(node, 'agent', n),
  commandId: `${mid}:${node}:${n}:1`,
  migrationId: mid,
});

describe('command queue: a command whose handler fails outside the bus', () => {
  it('is refused for good, and the executor is told which command (the agent ends its marker)', async () => {
    // Given node-g's agent queue, whose handler fails on the command for a reason of its own (not the bus)
    const cmd = agentCommand('m-queue-h', 'node-g', 1);
    await sendCommand(nc, validators, trust, cmd);
    const told: string[] = [];
    const ac = new AbortController();
    const consumer = await createCommandQueue({
      nc,
      validators,
      eventLog: createEventLog(nc, validators, trust),
      log,
      actor: { service: 'node-agent', node: 'node-g' },
      executor: 'agent',
      trust,
      inOrder: true,
      refused: (c) => told.push(c.commandId),
    }).consume(() => Promise.reject(new Error('the handler broke')), ac.signal);

    // When the queue hands it over
    await until(() => told.length > 0, 'the executor told of the refusal');

    // Then it was refused once, after it was parked and termed, and told by its id
    assert.deepEqual(told, [cmd.commandId]);
    ac.abort();
    await consumer.ended;
  });
});

describe('command queue: an in-order executor (the agent) holds several migrations at once', () => {
  it("runs another migration's command while one of its commands runs, and one migration's one at a time, in order", async () => {
    // Given node-d's agent queue, and stored in this order: X's first command (it runs until the test lets it end),
    // X's second, then Y's first
    const x1 = agentCommand('m-queue-x', 'node-d', 1);
    const x2 = agentCommand('m-queue-x', 'node-d', 2);
    const y1 = agentCommand('m-queue-y', 'node-d', 1);
    for (const c of [x1, x2, y1]) await sendCommand(nc, validators, trust, c);
    const seen: string[] = [];
    let endX1!: () => void;
    const x1Ends = new Promise<void>((resolve) => (endX1 = resolve));
    const ac = new AbortController();
    const name = (id: string) => (id === x1.commandId ? 'x1' : id === x2.commandId ? 'x2' : 'y1');
    let allDone!: () => void;
    const done = new Promise<void>((resolve) => (allDone = resolve));
    let y1Ended!: () => void;
    const y1Done = new Promise<void>((resolve) => (y1Ended = resolve));
    const consumer = await queueOf(nc, 'node-d').consume(async (d) => {
      const n = name(d.command.commandId);
      seen.push(`${n} start`);
      if (n === 'x1') await x1Ends;
      seen.push(`${n} end`);
      d.msg.ack();
      if (n === 'y1') y1Ended();
      if (seen.length === 6) allDone();
    }, ac.signal);

    // When the queue hands them over, X's first still running
    await y1Done;

    // Then Y's command has run beside it, and X's second waits for X's first
    assert.deepEqual(seen, ['x1 start', 'y1 start', 'y1 end']);
    endX1();
    await done;
    assert.deepEqual(seen, ['x1 start', 'y1 start', 'y1 end', 'x1 end', 'x2 start', 'x2 end']);
    ac.abort();
    await consumer.ended;
  });
});

// On every release: from 2.10 on, the older durable is changed by an update, not by the create.
for (const release of natsReleases)
  describe(`command queue: an in-order executor's durable an older version made (the ${release} nats-server)`, () => {
    let own: NatsServer;
    let nc: NatsConnection;
    before(async () => {
      own = await startNatsServer({ release });
      nc = await connectBus({ servers: own.url, name: `command-queue-test-${release}` });
      await ensureTopology(nc);
      // On the fetched releases the create of the older durable is refused: the update path is the one taken.
      if (release !== 'installed')
        assert.ok(natsAtLeast(nc.info?.version, 2, 10), `nats-server ${nc.info?.version}`);
    });
    after(async () => {
      try {
        await nc?.drain();
      } finally {
        await own?.stop();
      }
    });

    it(
      'one command at a time, is changed in place to hold several, and hands over what it stored',
      { timeout: 60_000 },
      async () => {
        // Given node-c's agent durable as the version before made it (one command out at a time), a command stored
        const jsm = await jetstreamManager(nc);
        await jsm.consumers.add(streams.commands, {
          durable_name: commandConsumerName('node-c', 'agent'),
          filter_subject: subjects.commands('node-c', 'agent'),
          ack_policy: AckPolicy.Explicit,
          ack_wait: nanos(limits.commandAckWaitMs),
          max_ack_pending: 1,
          max_deliver: -1,
        });
        const a = command('node-c', 'agent', 1);
        await sendCommand(nc, validators, trust, a);

        // When the agent starts consuming
        const ac = new AbortController();
        let took!: (id: string) => void;
        const taken = new Promise<string>((resolve) => (took = resolve));
        const consumer = await queueOf(nc, 'node-c').consume((d) => {
          took(d.command.commandId);
          d.msg.ack();
          return Promise.resolve();
        }, ac.signal);

        // Then the durable holds as many as an agent takes at once, and the command stored before is handed over
        const info = await jsm.consumers.info(streams.commands, commandConsumerName('node-c', 'agent'));
        assert.equal(info.config.max_ack_pending, limits.commandsInHand);
        assert.equal(await taken, a.commandId);
        ac.abort();
        await consumer.ended;
      },
    );
  });

describe('command queue: a consumer that ends on its own while a command runs', () => {
  it('ends after its grace without waiting for the command, which is left to the next process', async () => {
    // Given node-g's agent queue, with a grace of 300 ms, running a command that does not end until released
    const jsm = await jetstreamManager(nc);
    const x = agentCommand('m-queue-lost', 'node-g', 1);
    await sendCommand(nc, validators, trust, x);
    let release!: () => void;
    const hung = new Promise<void>((resolve) => (release = resolve));
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    let finished = false;
    let done!: () => void;
    const handled = new Promise<void>((resolve) => (done = resolve));
    const consumer = await queueOf(nc, 'node-g', undefined, 300).consume(async () => {
      started();
      await hung;
      finished = true;
      done();
    }, new AbortController().signal);
    await running;

    // When its consumer is deleted
    await jsm.consumers.delete(streams.commands, commandConsumerName('node-g', 'agent'));

    // Then the loop ends while the command still runs (before, it waited for the command, here for ever)
    const giveUp = new AbortController();
    const how = await Promise.race([
      consumer.ended.then(
        () => 'ended',
        () => 'ended',
      ),
      delay(30_000, 'still waiting for the command after 30 s', { signal: giveUp.signal }),
    ]).finally(() => giveUp.abort());
    assert.equal(how, 'ended');
    assert.equal(finished, false, 'the command still runs');
    release();
    await handled;
  });
});

describe('command queue: a stop while a command runs', () => {
  it('ends only once the command has ended, however long past the grace', async () => {
    // Given node-h's agent queue, with a grace of 300 ms, running a command
    const x = agentCommand('m-queue-stop', 'node-h', 1);
    await sendCommand(nc, validators, trust, x);
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    let finished = false;
    const ac = new AbortController();
    const consumer = await queueOf(nc, 'node-h', undefined, 300).consume(async (d) => {
      started();
      // The command ends well after the grace, counted from the stop.
      await delay(900);
      finished = true;
      d.msg.ack();
    }, ac.signal);
    await running;

    // When the process stops
    ac.abort();
    await consumer.ended;

    // Then the loop ended only after the command
    assert.equal(finished, true);
  });
});

function queueOf(conn: NatsConnection, node: string, hands?: CommandQueueDeps['hands'], graceMs?: number) {
  return createCommandQueue({
    nc: conn,
    validators,
    eventLog: createEventLog(conn, validators, trust),
    log,
    actor: { service: 'node-agent', node },
    executor: 'agent',
    trust,
    inOrder: true,
    ...(hands ? { hands } : {}),
    ...(graceMs === undefined ? {} : { lostConsumerGraceMs: graceMs }),
  });
}

describe('command queue: what an in-order executor holds when its connection closes', () => {
  it('is not let go: the command running and the one waiting behind it keep their records for the next process', async () => {
    // Given node-f's agent queue on a connection of its own, holding X's first command (its step ends once the
    // connection has closed) and X's second, waiting behind it in X's lane
    const x1 = agentCommand('m-queue-z', 'node-f', 1);
    const x2 = agentCommand('m-queue-z', 'node-f', 2);
    for (const c of [x1, x2]) await sendCommand(nc, validators, trust, c);
    const own = await connectBus({ servers: server.url, name: 'command-queue-closing' });
    const held = new Set<string>();
    let bothTaken!: () => void;
    const taken = new Promise<void>((resolve) => (bothTaken = resolve));
    const hands: CommandQueueDeps['hands'] = {
      took: (d) => {
        held.add(d.command.commandId);
        if (held.size === 2) bothTaken();
      },
      letGo: (d) => held.delete(d.command.commandId),
    };
    const consumer = await queueOf(own, 'node-f', hands).consume(async (d) => {
      await own.closed();
      assert.throws(() => d.msg.ack(), 'an ack on a closed connection cannot be sent');
    }, new AbortController().signal);
    await taken;

    // When the connection closes
    await own.close();
    await consumer.ended.catch(() => undefined);

    // Then neither was let go: their answers (the first's ack, the second's hand-back) never left this process
    assert.deepEqual([...held].sort(), [x1.commandId, x2.commandId].sort());
  });
});

describe('command queue (signatures on): whether a command is intended', () => {
  const ids = tempIdentities(['node-d']);
  const coordinator = ids.trust('coordinator');
  const agent = ids.trust(identityName('agent', 'node-d'));
  const mid = 'm-queue-0002';
  /** The connection the tests below use: the file's server, or a cluster's (a replicated event stream). */
  let on: NatsConnection | undefined;
  const conn = () => on ?? nc;
  const intent = (n: number): StepCommand => ({
    ...command('node-d', 'agent', n),
    migrationId: mid,
    commandId: `${mid}:node-d:${n}:1`,
  });

  it(
    'given an agent whose log kept current lags the stream, a command of a migration that ended while it waited is refused, not run',
    { timeout: 60_000 },
    async () => {
      // Given an agent that holds the migration's log and keeps it current, its follow stalled after the intents (a slow
      // or stuck ordered consumer: nothing tells the agent so), and holding the intent of a command
      const inner = createEventLog(conn(), validators, agent);
      let release = () => {};
      const released = new Promise<void>((r) => (release = r));
      const lagging: EventLog = {
        ...inner,
        async *follow(o) {
          for await (const e of inner.follow(o)) {
            if (e.event.type !== 'StepIntended') await released; // stalled after the intents, until the verdict
            yield e;
          }
        },
      };
      const cached = withReadCache(lagging);
      const writer = createEventLog(conn(), validators, coordinator);
      await writer.append(stepIntended(intent(1)));
      await cached.read(mid);
      cached.keepCurrent(mid);
      const cmd = intent(2);
      await writer.append(stepIntended(cmd));
      await until(() => cached.held(mid)?.events.length === 2, 'the follow holding the intent');
      // and the migration rolled back (the coordinator gave the command up while it waited behind a long step)
      await writer.append(migrationRolledBack(mid, `${cmd.commandId} timed out`));

      // When the command is delivered to the agent
      const { verdict } = await verdictOn(cmd, cached);
      release();

      // Then it is refused as the command of an ended migration: judged on a read, not on the log kept
      assert.equal(verdict, 'refused');
    },
  );

  /** The verdict on one command delivered to an agent that reads its log through `eventLog`, and what it warned. */
  async function verdictOn(
    cmd: StepCommand,
    eventLog: EventLog,
    /** How much older than it is the command is when checked (checkedOnFirstRead). */
    olderByMs = 0,
  ): Promise<{ verdict: 'run' | 'refused'; why: string }> {
    await sendCommand(conn(), validators, coordinator, cmd);
    const ac = new AbortController();
    const why: string[] = [];
    const verdict = await new Promise<'run' | 'refused'>((resolve) => {
      void createCommandQueue({
        nc: conn(),
        validators,
        eventLog,
        log: pino({ level: 'info' }, { write: (l: string) => void why.push(l) }),
        actor: { service: 'node-agent', node: 'node-d' },
        executor: 'agent',
        trust: agent,
        inOrder: true,
        refused: () => resolve('refused'),
        now: () => Date.now() + olderByMs,
      }).consume((d) => {
        d.msg.ack();
        resolve('run');
        return Promise.resolve();
      }, ac.signal);
    });
    ac.abort();
    return { verdict, why: why.join('') };
  }

  /** The agent's log with its reads passed through `reading` (given the true read and the count so far), counted. */
  function readsThrough(
    reading: (
      read: Awaited<ReturnType<EventLog['read']>>,
      n: number,
    ) => Awaited<ReturnType<EventLog['read']>>,
  ): { eventLog: EventLog; reads: () => number } {
    const inner = createEventLog(conn(), validators, agent);
    let n = 0;
    return {
      eventLog: { ...inner, read: async (m, o) => reading(await inner.read(m, o), ++n) },
      reads: () => n,
    };
  }

  it('given a first read of the log that does not show the intent yet (a new stream leader behind), the command runs', async () => {
    // Given a command intended in its log, whose first read by the agent ends before the intent (as a stream leader
    // of nats-server before 2.11 answers before it has applied what it took over)
    const cmd = { ...intent(3), migrationId: 'm-queue-0003', commandId: 'm-queue-0003:node-d:3:1' };
    const writer = createEventLog(conn(), validators, coordinator);
    await writer.append(stepIntended({ ...cmd, commandId: 'm-queue-0003:node-d:2:1' }));
    await writer.append(stepIntended(cmd));

    // When it is delivered
    const { eventLog, reads } = readsThrough((read, n) =>
      n === 1 ? { events: read.events.slice(0, -1), lastSeq: read.events.at(-2)!.seq } : read,
    );
    const { verdict, why } = await verdictOn(cmd, eventLog);

    // Then it runs, on the second read, and the agent says its first read was behind
    assert.equal(verdict, 'run');
    assert.equal(reads(), 2);
    assert.match(why, /not in the first read of its log/);
  });

  it('given a command intended nowhere, it is refused once every read again has shown no intent', async () => {
    // Given a command signed by the coordinator whose migration's log holds another command's intent only
    const cmd = { ...intent(4), migrationId: 'm-queue-0004', commandId: 'm-queue-0004:node-d:4:1' };
    await createEventLog(conn(), validators, coordinator).append(
      stepIntended({ ...cmd, commandId: 'm-queue-0004:node-d:1:1' }),
    );

    // When it is delivered
    const { eventLog, reads } = readsThrough((read) => read);
    const { verdict } = await verdictOn(cmd, eventLog);

    // Then it is refused, after the first read and one after each wait
    assert.equal(verdict, 'refused');
    assert.equal(reads(), 1 + limits.intentReadAgainMs.length);
  });

  it('given a command that is not fresh on an event stream without replicas, it is checked on its first read: no waits', async () => {
    // Given a command intended in its log, on one server (no stream leader can be behind what it stored)
    const cmd = { ...intent(7), migrationId: 'm-queue-0007', commandId: 'm-queue-0007:node-d:7:1' };
    await createEventLog(conn(), validators, coordinator).append(stepIntended(cmd));

    // When it is delivered after waiting past the bound of a fresh command
    const { eventLog, reads } = readsThrough((read) => read);
    const { verdict } = await verdictOn(cmd, eventLog, limits.commandFreshMs);

    // Then it runs on the first read (a redelivery after an agent's restart costs no waits there)
    assert.equal(verdict, 'run');
    assert.equal(reads(), 1);
  });

  describe('on a replicated event stream (three servers)', () => {
    let cluster: NatsCluster;
    before(async () => {
      cluster = await startNatsCluster(3);
      on = await connectBus({ servers: cluster.urls, name: 'command-queue-cluster-test' });
      await ensureTopology(on, { replicas: 3 });
    });
    after(async () => {
      await on?.drain();
      on = undefined;
      await cluster?.stop();
    });

    it('given a command that is not fresh, whose first read lacks the end of its migration (a stream leader behind), it is refused, not run', async () => {
      // Given a command intended in its log, its migration rolled back since (the coordinator gave it up), and a first
      // read by the agent that ends before the end (as a stream leader of nats-server before 2.11 answers)
      const cmd = { ...intent(5), migrationId: 'm-queue-0005', commandId: 'm-queue-0005:node-d:5:1' };
      const writer = createEventLog(conn(), validators, coordinator);
      await writer.append(stepIntended(cmd));
      await writer.append(migrationRolledBack(cmd.migrationId, `${cmd.commandId} timed out`));
      const { eventLog, reads } = readsThrough((read, n) =>
        n === 1 ? { events: read.events.slice(0, -1), lastSeq: read.events.at(-2)!.seq } : read,
      );

      // When it is delivered after waiting past the bound of a fresh command (in its lane, or in the stream)
      const { verdict, why } = await verdictOn(cmd, eventLog, limits.commandFreshMs);

      // Then the first read is not taken as it comes: the second shows the end, and the command is refused
      assert.equal(verdict, 'refused');
      assert.equal(reads(), 2);
      assert.match(why, /"fate":"ended"/);
    });

    it("given a migration's next command in its lane, stored long before its turn, it is checked on one read once the one before it appended its outcome", async () => {
      // Given two commands of a migration intended and sent at once (a shared disk's steps in the frozen window), the
      // second kept in its lane behind the first past the bound of a fresh command
      const first = { ...intent(8), migrationId: 'm-queue-0008', commandId: 'm-queue-0008:node-d:8:1' };
      const second = { ...first, commandId: 'm-queue-0008:node-d:9:1' };
      const writer = createEventLog(conn(), validators, coordinator);
      for (const c of [first, second]) await writer.append(stepIntended(c));
      for (const c of [first, second]) await sendCommand(conn(), validators, coordinator, c);
      const { eventLog, reads } = readsThrough((read) => read);
      const executorLog = createEventLog(conn(), validators, agent);

      // When the first runs and appends its outcome (its own check reads again: not fresh), then the second's turn comes
      const ac = new AbortController();
      const readsOfSecond = await new Promise<number>((resolve) => {
        let before = 0;
        void createCommandQueue({
          nc: conn(),
          validators,
          eventLog,
          log,
          actor: { service: 'node-agent', node: 'node-d' },
          executor: 'agent',
          trust: agent,
          inOrder: true,
          now: () => Date.now() + limits.commandFreshMs,
        }).consume(async (d) => {
          if (d.command.commandId === first.commandId) {
            d.outcomeSeq = (await executorLog.append(stepSucceeded(d.command))).seq;
            before = reads();
          } else resolve(reads() - before);
          d.msg.ack();
        }, ac.signal);
      });
      ac.abort();

      // Then the second was checked on one read (before: read again for 3.75 s, each step of the frozen window so)
      assert.equal(readsOfSecond, 1);
    });

    it('given a command that is not fresh, whose reads show neither its outcome nor an end, it runs after the reads again', async () => {
      // Given a command intended in its log, its migration going on
      const cmd = { ...intent(6), migrationId: 'm-queue-0006', commandId: 'm-queue-0006:node-d:6:1' };
      await createEventLog(conn(), validators, coordinator).append(stepIntended(cmd));

      // When it is delivered after waiting past the bound of a fresh command
      const { eventLog, reads } = readsThrough((read) => read);
      const { verdict, why } = await verdictOn(cmd, eventLog, limits.commandFreshMs);

      // Then it runs, once every read again has shown it open, and the agent says why it waited
      assert.equal(verdict, 'run');
      assert.equal(reads(), 1 + limits.intentReadAgainMs.length);
      assert.match(why, /not fresh was read again/);
      assert.doesNotMatch(why, /not in the first read/);
    });
  });
});

describe('command queue (signatures on): a stop while a command is being checked', () => {
  const ids = tempIdentities(['node-i']);
  const coordinator = ids.trust('coordinator');
  const agent = ids.trust(identityName('agent', 'node-i'));
  const queueOn = (eventLog: EventLog) =>
    createCommandQueue({
      nc,
      validators,
      eventLog,
      log,
      actor: { service: 'node-agent', node: 'node-i' },
      executor: 'agent',
      trust: agent,
      inOrder: true,
    });

  it('hands the command back to the stream instead of handing it over', async () => {
    // Given a command intended in its log, and an agent whose read of that log (the check) waits for the test
    const cmd: StepCommand = {
      ...command('node-i', 'agent', 1),
      migrationId: 'm-queue-stop',
      commandId: 'm-queue-stop:node-i:1:1',
    };
    await createEventLog(nc, validators, coordinator).append(stepIntended(cmd));
    await sendCommand(nc, validators, coordinator, cmd);
    const inner = createEventLog(nc, validators, agent);
    let reading!: () => void;
    const isReading = new Promise<void>((resolve) => (reading = resolve));
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const slow: EventLog = {
      ...inner,
      async read(m, o) {
        reading();
        await released;
        return inner.read(m, o);
      },
    };
    const handled: string[] = [];
    const ac = new AbortController();
    const first = await queueOn(slow).consume((d) => {
      handled.push(d.command.commandId);
      d.msg.ack();
      return Promise.resolve();
    }, ac.signal);
    await isReading;

    // When the agent stops during the check
    ac.abort();
    release();
    await first.ended;

    // Then the command was not handed over: the next agent gets it
    assert.deepEqual(handled, []);
    const again = new AbortController();
    const next = await new Promise<string>((resolve) => {
      void queueOn(inner).consume((d) => {
        resolve(d.command.commandId);
        d.msg.ack();
        return Promise.resolve();
      }, again.signal);
    });
    again.abort();
    assert.equal(next, cmd.commandId);
  });
});
