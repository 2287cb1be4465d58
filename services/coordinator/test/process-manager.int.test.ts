import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { pino } from 'pino';
import { connectBus, createEventLog, ensureTopology, streams, subjects, type EventLog } from '@haul/bus';
import { decide, initialState } from '@haul/domain';
import { createValidators, type MigrationEvent, type StepCommand } from '@haul/schemas';
import { startNatsServer, tempIdentities, type NatsServer } from '@haul/test';
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

it('sends the commands of the events it appended even when it loses the compare-and-set part-way', async () => {
  // Given a requested migration, and a second writer that appends right after this coordinator's first intent
  const real = createEventLog(nc, validators, trust);
  const meta = createProcessManager(nc, validators, real, settings, pino({ level: 'silent' }), trust).meta;
  const mid = 'm-race-0001';
  const requested = decide(
    {
      kind: 'RequestMigration',
      migrationId: mid,
      request: { requestId: 'r-race', ctid: '101', source: 'node-a', target: 'node-b' },
      imageRoots: { source: '/img/a', target: '/img/b' },
      meta: meta(),
    },
    initialState(),
  );
  for (const e of requested) await real.append(e);
  let raced = false;
  const racing: EventLog = {
    ...real,
    async append(e, opts) {
      const r = await real.append(e, opts);
      if (!raced && e.type === 'StepIntended') {
        raced = true;
        const other: MigrationEvent = {
          eventId: `${mid}:other:CancelRequested`,
          migrationId: mid,
          type: 'CancelRequested',
          actor: { service: 'coordinator', node: 'other' },
          time: new Date().toISOString(),
          schemaVersion: 1,
          data: { reason: 'a second coordinator got in between' },
        };
        await real.append(other);
      }
      return r;
    },
  };
  const pm = createProcessManager(nc, validators, racing, settings, pino({ level: 'silent' }), trust);

  // When it advances the migration: two preflight intents decided, the second append loses the race
  await pm.step(mid);
  pm.stop();

  // Then the first intent is in the log and its command was sent to the target's agent
  const { events } = await real.read(mid);
  const intents = events
    .filter((e) => e.event.type === 'StepIntended')
    .map((e) => e.event.data as StepCommand);
  assert.equal(raced, true);
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
