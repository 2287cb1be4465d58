import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { pino } from 'pino';
import { createEventLog, encodeJson, streams, subjects } from '@haul/bus';
import { createValidators, type MigrateRequest } from '@haul/schemas';
import { awaitEvent, tempIdentities, type NatsServer } from '@haul/test';

/** Signing on: the coordinator and this test's appends sign as the coordinator. */
const ids = tempIdentities();
import { migrationIdFor } from '../src/admission.ts';
import { jsonLines, putHeartbeats, startBus, startCoordinator } from './support.ts';

/**
 * nats-server 2.9 lets anyone who may create a consumer name its deliver subject (nats-io/nats-server#8274): an agent
 * may append any JSON to haul.events.<id> and create consumers on HAUL_EVENTS, so it could have the server deliver a
 * migrate request onto haul.api.migrate, which its permissions forbid it to publish. The API answers only messages
 * sent to its subject; a pushed one keeps the subject it was stored under.
 */
let server: NatsServer;
let nc: NatsConnection;
let coordinator: { stop(): Promise<void> } | undefined;
const warned: ((line: Record<string, unknown>) => void)[] = [];

before(async () => {
  ({ server, nc } = await startBus('api-pushed-test'));
  const sink = jsonLines((l) => {
    for (const w of warned) w(l);
  });
  coordinator = await startCoordinator({
    server,
    name: 'api-pushed-coordinator',
    settings: { maxMigrationsPerNode: 2 },
    log: pino({ level: 'info' }, sink),
    trust: ids.trust('coordinator'),
  });
});
after(async () => {
  await coordinator?.stop();
  await nc?.drain();
  await server?.stop();
});

describe('the scheduler API', () => {
  it(
    'ignores a migrate request a consumer pushed onto haul.api.migrate from the event stream',
    { timeout: 30_000 },
    async () => {
      await putHeartbeats(nc, ['pa', 'pb']);
      const req: MigrateRequest = { requestId: 'pushed-1', ctid: '777', source: 'pa', target: 'pb' };
      const stored = subjects.events('m-pushed-0001');
      await jetstream(nc).publish(stored, encodeJson(req));
      const ignored = new Promise<Record<string, unknown>>((resolve) =>
        warned.push((l) => l['storedAs'] === stored && resolve(l)),
      );
      await (
        await jetstreamManager(nc)
      ).consumers.add(streams.events, {
        name: 'pushed',
        filter_subject: stored,
        deliver_subject: subjects.apiMigrate,
        deliver_group: 'coordinator', // the API's queue group: without it the server sees no interest
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
      });
      // Whichever comes first: the API saying it ignored it, or the migration it asks for in the log.
      const log = createEventLog(nc, createValidators(), ids.trust('coordinator'));
      const admitted = awaitEvent(log, migrationIdFor(req.requestId), () => true, 15_000);
      const first = await Promise.race([ignored.then(() => 'ignored'), admitted.then(() => 'admitted')]);
      assert.equal(first, 'ignored');
      assert.equal((await ignored)['subject'], subjects.apiMigrate);
      await assert.rejects(admitted, /no matching event/, 'no migration was admitted');
    },
  );
});
