/**
 * The stall rule end to end, with a short stall time: a coordinator, and image streamers moving real bytes over a
 * real nats-server. Migrations are seeded with their transfer intents only (no agents run: the preflights the
 * coordinator intends beside them wait in their queue, and nothing here lasts as long as their timeout).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import {
  connectBus,
  createEventLog,
  createLogger,
  ensureTopology,
  limits,
  openProgress,
  readProgress,
  sendCommand,
  stepTimeoutsMs,
  type EventLog,
} from '@haul/bus';
import { decide, initialState } from '@haul/domain';
import { createValidators, type MigrationEvent, type StepCommand } from '@haul/schemas';
import {
  awaitEvent,
  awaitProgress,
  outcomeOf,
  startNatsServer,
  tempIdentities,
  type NatsServer,
} from '@haul/test';
import { createCoordinator } from '../services/coordinator/src/app.ts';
import type { ImageStreamer } from '../services/image-streamer/src/app.ts';
import { streamerOf } from '../services/image-streamer/test/support.ts';

const validators = createValidators();
const log = createLogger('transfer-liveness-test', undefined, { HAUL_LOG_LEVEL: 'warn' });
/** Far below the real 30 s, and above the start of a transfer on a loaded machine; the held transfer waits ~2x this. */
const stallMs = 6000;
/** Signing on: streamers sign as themselves, the coordinator (and this test's appends for it) as the coordinator. */
const ids = tempIdentities(['node-a', 'node-b', 'node-c']);
const coordinatorTrust = ids.trust('coordinator');

let server: NatsServer;
let nc: NatsConnection;
let events: EventLog;
let dir: string;
let coordinator: ReturnType<typeof createCoordinator>;
const streamers: ImageStreamer[] = [];

function streamer(node: string, maxTransfers?: number): ImageStreamer {
  const s = streamerOf({ nc, validators, log, trust: ids.trust(`streamer@${node}`) }, node, dir, {
    maxRetries: 5,
    progressEveryMs: 200,
    ...(maxTransfers ? { maxTransfers } : {}),
  });
  streamers.push(s);
  return s;
}

before(async () => {
  server = await startNatsServer();
  nc = await connectBus({ servers: server.url, name: 'transfer-liveness-test' });
  await ensureTopology(nc);
  events = createEventLog(nc, validators, coordinatorTrust);
  dir = mkdtempSync(join(tmpdir(), 'haul-liveness-'));
  for (const t of Object.values(transfers)) images(t.node, t.mid, t.mb);
  coordinator = createCoordinator(
    nc,
    validators,
    { node: 'coordinator', frozenLeaseMs: 60_000, maxAttempts: 3, maxMigrationsPerNode: 10, stallMs },
    pino({ level: process.env['HAUL_TEST_LOG'] ?? 'silent' }),
    { trust: coordinatorTrust },
  );
  await coordinator.start();
  for (const s of [streamer('node-a'), streamer('node-b'), streamer('node-c', 1)]) await s.start();
});
after(async () => {
  for (const s of streamers) await s.stop();
  await coordinator?.stop();
  await nc?.drain();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * A folder of `mb` MiB of images on a source node, written before the services have work: a write blocks this
 * process, where they run too.
 */
function images(node: string, name: string, mb: number): string {
  const src = join(dir, node, 'img', name);
  mkdirSync(src, { recursive: true });
  writeFileSync(join(src, 'pages-1.img'), Buffer.alloc(mb * 1024 * 1024, name));
  return src;
}

/** The transfers of these tests: source node, migration id, size. */
const transfers = {
  final: { node: 'node-a', mid: 'm-live-final', mb: 36 },
  held: { node: 'node-a', mid: 'm-live-iter', mb: 2 },
  slow: { node: 'node-c', mid: 'm-gone-slow', mb: 24 },
  next: { node: 'node-c', mid: 'm-gone-next', mb: 1 },
} as const;
const sourceOf = (t: keyof typeof transfers) => join(dir, transfers[t].node, 'img', transfers[t].mid);

/**
 * A migration from `source` to node-b whose log holds its request and the intent of one transfer, as the coordinator
 * writes them; the command is sent as it sends it.
 */
async function transferIntended(
  t: keyof typeof transfers,
  o: { subject: string; priority: 'final' | 'iteration'; mbPerSec?: number; timeoutMs?: number },
): Promise<StepCommand> {
  const { mid, node: source } = transfers[t];
  const now = new Date().toISOString(); // the intent's time: the stall clock starts here
  const meta = {
    now,
    actor: { service: 'coordinator', node: 'test' },
    timeoutsMs: { ...stepTimeoutsMs },
    frozenLeaseMs: 60_000,
    maxAttempts: 3,
    stallMs,
    commandFreshMs: limits.commandFreshMs,
  } as const;
  const [requested] = decide(
    {
      kind: 'RequestMigration',
      migrationId: mid,
      request: { requestId: `r-${mid}`, ctid: '101', source, target: 'node-b' },
      imageRoots: { source: join(dir, source, 'img'), target: join(dir, 'node-b', 'img') },
      meta,
    },
    initialState(),
  );
  const cmd = {
    commandId: `${mid}:streamImages:${o.subject}:1`,
    migrationId: mid,
    node: source,
    executor: 'streamer',
    attempt: 1,
    step: 'streamImages',
    timeoutMs: o.timeoutMs ?? 60_000,
    args: {
      toNode: 'node-b',
      sourceDir: sourceOf(t),
      targetDir: join(dir, 'node-b', 'img', mid),
      priority: o.priority,
      ...(o.mbPerSec ? { bandwidthLimitMBps: o.mbPerSec } : {}),
    },
  } as StepCommand;
  const intended: MigrationEvent = {
    eventId: `${cmd.commandId}:intent`,
    migrationId: mid,
    type: 'StepIntended',
    actor: meta.actor,
    time: now,
    schemaVersion: 1,
    data: cmd,
  };
  await events.append(requested!, { expectedLastSeq: 0 });
  await events.append(intended);
  await sendCommand(nc, validators, coordinatorTrust, cmd);
  return cmd;
}

const outcomes = async (mid: string, commandId: string) =>
  (await events.read(mid)).events.map((s) => s.event).filter(outcomeOf(commandId));

describe('a transfer that waits on purpose', () => {
  it(`held behind a final-dump transfer for longer than the stall time (${stallMs} ms) is not given up`, async () => {
    // Given a final-dump transfer moving bytes on node-a, slowly
    const final = await transferIntended('final', { subject: 'final', priority: 'final', mbPerSec: 3 });
    await awaitProgress(nc, 'm-live-final', (p) => p.bytesDone > 0, 30_000);

    // When a pre-dump transfer of another migration starts on the same node: it waits between chunks
    const iteration = await transferIntended('held', { subject: '0', priority: 'iteration' });

    // Then it reports that it waits, and the coordinator leaves it alone until the final one is done and it ran
    const waiting = await awaitProgress(nc, 'm-live-iter', (p) => p.waiting?.reason === 'priority', 30_000);
    assert.equal(waiting.commandId, iteration.commandId);
    const done = await awaitEvent(events, 'm-live-iter', outcomeOf(iteration.commandId), 60_000);
    assert.equal(
      done.type,
      'StepSucceeded',
      done.type === 'StepFailed' ? `given up: ${done.data.error.code} ${done.data.error.message}` : '',
    );
    assert.equal(done.actor.service, 'image-streamer');
    const held = Date.parse(done.time) - Date.parse(waiting.waiting!.since);
    assert.ok(held > stallMs, `it waited ${held} ms, longer than the stall time`);
    const finalDone = await awaitEvent(events, 'm-live-final', outcomeOf(final.commandId), 60_000);
    assert.equal(finalDone.type, 'StepSucceeded');
  });
});

describe('a transfer the coordinator gives up', () => {
  it('stops on the streamer: its slot goes to the next transfer, and only the coordinator records its outcome', async () => {
    // Given a streamer with one transfer slot, busy with a slow transfer that has 15 s to finish (it needs ~24 s),
    // and a second transfer waiting for that slot. (15 s: time enough, on a busy machine, for it to start and report
    // its first bytes, and for the second to report that it waits, before the first is given up.)
    const slow = await transferIntended('slow', {
      subject: '0',
      priority: 'iteration',
      mbPerSec: 1,
      timeoutMs: 15_000,
    });
    await awaitProgress(nc, 'm-gone-slow', (p) => p.bytesDone > 0, 30_000);
    const next = await transferIntended('next', { subject: '0', priority: 'iteration' });
    await awaitProgress(nc, 'm-gone-next', (p) => p.waiting?.reason === 'slot', 30_000);

    // When the coordinator gives the slow one up (its timeout)
    const givenUp = await awaitEvent(events, 'm-gone-slow', outcomeOf(slow.commandId), 30_000);
    assert.equal(givenUp.type === 'StepFailed' && givenUp.data.error.code, 'HAUL_STEP_TIMEOUT');

    // Then the streamer stops it: the waiting transfer gets the slot and finishes long before the slow one could
    const nextDone = await awaitEvent(events, 'm-gone-next', outcomeOf(next.commandId), 30_000);
    assert.equal(nextDone.type, 'StepSucceeded');
    const c = streamers[2]!;
    assert.ok(!c.commandsInHand.includes(slow.commandId), 'the given-up command is no longer in hand');
    assert.deepEqual(
      (await outcomes('m-gone-slow', slow.commandId)).map((e) => `${e.type} by ${e.actor.service}`),
      ['StepFailed by coordinator'],
      'the streamer recorded nothing after the coordinator',
    );
    assert.equal(
      await readProgress(await openProgress(nc), validators, 'm-gone-slow', 'node-c', slow.commandId),
      undefined,
      'its progress report is gone',
    );
    const target = slow.args as { targetDir: string };
    assert.ok(
      !existsSync(join(target.targetDir, 'pages-1.img')),
      `the slow transfer never completed: ${existsSync(target.targetDir) ? readdirSync(target.targetDir).join(', ') : 'nothing'}`,
    );
  });
});
