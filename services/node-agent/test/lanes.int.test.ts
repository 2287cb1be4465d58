import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
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
  type EventLog,
} from '@haul/bus';
import { createValidators, type HostResult, type StepCommand } from '@haul/schemas';
import { awaitEvent, outcomeOf, startNatsServer, stepIntended, type NatsServer } from '@haul/test';
import { createNodeAgent, type NodeAgent } from '../src/app.ts';
import type { AgentHost } from '../src/host.ts';

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

/** What the host saw, in order: `<command> start` and `<command> end`. */
const seen: string[] = [];
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
      await held.get(cmd.commandId)?.ended;
      seen.push(`${cmd.commandId} end`);
      return { actions: ['locked (test host)'] } satisfies HostResult;
    },
  },
};

before(async () => {
  server = await startNatsServer();
  nc = await connectBus({ servers: server.url, name: 'lanes-test' });
  await ensureTopology(nc);
  eventLog = createEventLog(nc, validators, trust);
  const imageRoot = join(dir, 'images');
  mkdirSync(imageRoot, { recursive: true });
  agent = createNodeAgent({
    nc,
    validators,
    log: pino({ level: 'silent' }),
    cfg: {
      node: 'node-a',
      hostRoot: dir,
      imageRoot,
      stateDir: join(dir, 'state'),
      sharedRoots: [],
      maxLeaseMs: maxFrozenLeaseMs,
      heartbeatMs: limits.heartbeatMs,
      bootId: randomUUID(),
    },
    trust,
    host,
    exit: (code) => assert.fail(`the agent's consumer ended (exit ${code})`),
  });
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
const lock = (mid: string, n: number): StepCommand => ({
  commandId: `${mid}:lockSource:${n}:1`,
  migrationId: mid,
  node: 'node-a',
  executor: 'agent',
  attempt: 1,
  step: 'lockSource',
  args: { ctid: '101' },
  timeoutMs: 60_000,
});
const intend = (c: StepCommand) => eventLog.append(stepIntended(c));
const send = (c: StepCommand) => sendCommand(nc, validators, trust, c);
const outcome = (c: StepCommand) => awaitEvent(eventLog, c.migrationId, outcomeOf(c.commandId), 30_000);

describe('node agent: migrations side by side, each one in order', () => {
  it("given one migration's step running, when another migration's command comes, then it runs and ends meanwhile", async () => {
    // Given migration X's step on node-a running (a long pre-dump, say), its next command queued behind it
    const x1 = lock('m-lanes-x', 1);
    const x2 = lock('m-lanes-x', 2);
    hold(x1);
    for (const c of [x1, x2]) await intend(c);
    for (const c of [x1, x2]) await send(c);

    // When migration Y's command comes (its CT frozen, say)
    const y1 = lock('m-lanes-y', 1);
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
});
