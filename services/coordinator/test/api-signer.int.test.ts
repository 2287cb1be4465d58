import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { createUser } from '@nats-io/nkeys';
import { pino } from 'pino';
import { createEventLog, encodeJson, loadSeed, signWith, type EventLog } from '@haul/bus';
import { createApiClient, type RequestSigner } from '@haul/cli';
import { createValidators, type MigrateRequest } from '@haul/schemas';
import { tempIdentities, type NatsServer } from '@haul/test';
import { putHeartbeats, startBus, startCoordinator } from './support.ts';

/**
 * Who asked for a migration, or for its cancel: the coordinator records the registered identity whose signature over
 * the request verifies (MigrationRequested.requestedBy, CancelRequested.requestedBy); it refuses a signature that
 * does not verify, an unsigned request, and one signed by an identity other than the scheduler, recording nothing.
 * One server, one coordinator in this process, no agents (the migrations wait in preflight, where a cancel is
 * allowed).
 */
const ids = tempIdentities(['pa', 'pb']);
let server: NatsServer;
let nc: NatsConnection;
let log: EventLog;
let coordinator: { stop(): Promise<void> } | undefined;

before(async () => {
  ({ server, nc } = await startBus('api-signer-test'));
  coordinator = await startCoordinator({
    server,
    name: 'api-signer-coordinator',
    settings: { maxMigrationsPerNode: 8 },
    log: pino({ level: 'warn' }),
    trust: ids.trust('coordinator'),
  });
  log = createEventLog(nc, createValidators(), ids.trust('ops'));
});
after(async () => {
  await coordinator?.stop();
  await nc?.drain();
  await server?.stop();
});

/** Fresh heartbeats of both nodes, so admission takes the requests. */
const nodesUp = (): Promise<void> => putHeartbeats(nc, ['pa', 'pb']);

const request = (n: number): MigrateRequest => ({
  requestId: `signer-${n}`,
  ctid: String(700 + n),
  source: 'pa',
  target: 'pb',
  reason: `test ${n}`,
});

async function requested(migrationId: string) {
  const first = (await log.read(migrationId)).events[0]?.event;
  assert.equal(first?.type, 'MigrationRequested');
  return first.data;
}

describe('who asked for a migration', () => {
  it('records the identity whose signature verifies, with the reason; status shows both', async () => {
    await nodesUp();
    const kp = loadSeed(ids.seedFile('scheduler'));
    const r = await createApiClient(nc, (s, b) => signWith(kp, s, b)).migrate(request(1));
    assert.ok(r.ok, JSON.stringify(r));
    const data = await requested(r.migrationId);
    assert.equal(data.requestedBy, 'scheduler');
    assert.equal(data.request.reason, 'test 1');
    const st = await createApiClient(nc).status(r.migrationId);
    assert.ok(st.ok, JSON.stringify(st));
    assert.equal(st.status?.requestedBy, 'scheduler');
    assert.equal(st.status?.requestReason, 'test 1');
  });

  it('refuses a request signed by a key the registry does not know, or over other bytes', async () => {
    await nodesUp();
    const stranger = createUser();
    const unknown = await createApiClient(nc, (s, b) => signWith(stranger, s, b)).migrate(request(2));
    assert.ok(!unknown.ok);
    assert.equal(unknown.error.code, 'HAUL_BAD_SIGNATURE');
    const kp = loadSeed(ids.seedFile('scheduler'));
    const otherBytes: RequestSigner = (s) => signWith(kp, s, encodeJson(request(99)));
    const tampered = await createApiClient(nc, otherBytes).migrate(request(3));
    assert.ok(!tampered.ok);
    assert.equal(tampered.error.code, 'HAUL_BAD_SIGNATURE');
  });

  it('refuses an unsigned request, and one signed by ops, and appends nothing', async () => {
    await nodesUp();
    const unsigned = await createApiClient(nc).migrate(request(4));
    assert.ok(!unsigned.ok);
    assert.equal(unsigned.error.code, 'HAUL_UNSIGNED_REQUEST');
    assert.match(unsigned.error.message, /signed by the scheduler identity/);
    const ops = loadSeed(ids.seedFile('ops'));
    const asOps = await createApiClient(nc, (s, b) => signWith(ops, s, b)).migrate(request(5));
    assert.ok(!asOps.ok);
    assert.equal(asOps.error.code, 'HAUL_SIGNER_NOT_ALLOWED');
    assert.match(asOps.error.message, /signed by ops/);
    const list = await createApiClient(nc).list();
    assert.ok(list.ok, JSON.stringify(list));
    assert.deepEqual(
      (list.migrations ?? []).filter((m) => m.ctid === '704' || m.ctid === '705'),
      [],
      'no migration of either CT',
    );
  });
});

/** The CancelRequested events of a migration's log. */
async function cancels(migrationId: string) {
  return (await log.read(migrationId)).events.flatMap(({ event: e }) =>
    e.type === 'CancelRequested' ? [e.data] : [],
  );
}

const asScheduler = (): RequestSigner => {
  const kp = loadSeed(ids.seedFile('scheduler'));
  return (s, b) => signWith(kp, s, b);
};

/** A migration accepted and waiting in preflight. */
async function accepted(n: number): Promise<string> {
  await nodesUp();
  const r = await createApiClient(nc, asScheduler()).migrate(request(n));
  assert.ok(r.ok, JSON.stringify(r));
  return r.migrationId;
}

describe('who asked to cancel a migration', () => {
  it('records the identity whose signature verifies, with the reason; status lists both', async () => {
    const mid = await accepted(10);
    const r = await createApiClient(nc, asScheduler()).cancel(mid, 'window over');
    assert.ok(r.ok, JSON.stringify(r));
    assert.deepEqual(await cancels(mid), [{ reason: 'window over', requestedBy: 'scheduler' }]);
    assert.deepEqual(
      r.status?.operatorActions?.map((a) => [a.kind, a.requestedBy, a.reason]),
      [['cancel', 'scheduler', 'window over']],
    );
  });

  it('refuses an unsigned cancel, retry or resolve, and records nothing', async () => {
    const mid = await accepted(11);
    const unsigned = createApiClient(nc);
    for (const r of [
      await unsigned.cancel(mid, 'x'),
      await unsigned.retry(mid, 'x'),
      await unsigned.resolve(mid, 'removeFiles:-', 'x'),
    ]) {
      assert.ok(!r.ok);
      assert.equal(r.error.code, 'HAUL_UNSIGNED_REQUEST');
    }
    assert.deepEqual(await cancels(mid), []);
  });

  it('refuses a cancel, retry or resolve signed by a key the registry does not know, and records nothing', async () => {
    const mid = await accepted(12);
    const stranger = createApiClient(nc, (s, b) => signWith(createUser(), s, b));
    for (const r of [
      await stranger.cancel(mid, 'x'),
      await stranger.retry(mid, 'x'),
      await stranger.resolve(mid, 'removeFiles:-', 'x'),
    ]) {
      assert.ok(!r.ok);
      assert.equal(r.error.code, 'HAUL_BAD_SIGNATURE');
    }
    assert.deepEqual(await cancels(mid), []);
  });
});
