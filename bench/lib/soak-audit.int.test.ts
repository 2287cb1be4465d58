import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { connectBus, createEventLog, ensureTopology, streams, topologyNames } from '@haul/bus';
import { createValidators, type MigrationEvent } from '@haul/schemas';
import { tempIdentities, startNatsCluster, type NatsCluster } from '@haul/test';
import { readMigrations, readWholeLog, streamHealth, waitHealthy } from './soak-audit.ts';
import { compareEventLogs, startEventTap } from './soak-events.ts';
import { natsMember } from './soak-services.ts';

const envelope = (migrationId: string, n: number) => ({
  eventId: `${migrationId}:${n}`,
  migrationId,
  actor: { service: 'coordinator' as const, node: 'coordinator' },
  time: new Date().toISOString(),
  schemaVersion: 1 as const,
});
const cancel = (migrationId: string, n: number): MigrationEvent => ({
  ...envelope(migrationId, n),
  type: 'CancelRequested',
  data: { reason: `n${n}` },
});
const rolledBack = (migrationId: string, n: number): MigrationEvent => ({
  ...envelope(migrationId, n),
  type: 'MigrationRolledBack',
  data: { reason: 'test', stats: { totalMs: 1, iterations: [] } },
});

let cluster: NatsCluster;
let nc: NatsConnection;
before(async () => {
  cluster = await startNatsCluster(3);
  nc = await connectBus({ servers: cluster.urls, name: 'soak-audit-test' });
});
after(async () => {
  await nc?.close();
  await cluster?.stop();
});

it("the soak's follower sees every event through a kill -9 of the log's leader; the audit finds none lost, all R3", async () => {
  await ensureTopology(nc, { replicas: 3 });
  const log = createEventLog(nc, createValidators(), tempIdentities().trust('coordinator'));
  const tapErrors: string[] = [];
  const tap = startEventTap(nc, (err) => tapErrors.push(err.message));
  try {
    let last = 0;
    for (const e of [cancel('mig-soak01', 1), cancel('mig-soak01', 2), rolledBack('mig-soak01', 3)])
      last = (await log.append(e, { expectedLastSeq: last })).seq;
    assert.notEqual(await tap.terminal('mig-soak01', 30_000), 'timeout');

    const jsm = await jetstreamManager(nc);
    const leader = (await jsm.streams.info(streams.events)).cluster?.leader;
    const idx = cluster.servers.findIndex((_, i) => `n${i + 1}` === leader);
    const victim = natsMember(`nats-${leader}`, cluster.servers[idx]!);
    await victim.kill9();
    last = 0;
    for (const e of [cancel('mig-soak02', 1), rolledBack('mig-soak02', 2)])
      last = (await log.append(e, { expectedLastSeq: last })).seq;
    assert.notEqual(
      await tap.terminal('mig-soak02', 60_000),
      'timeout',
      `follower errors: ${tapErrors.join('; ')}`,
    );
    await victim.start();
    assert.equal((await waitHealthy(nc, 60_000)).ok, true);
  } finally {
    await tap.stop();
  }

  const health = await streamHealth(nc);
  assert.deepEqual(Object.keys(health).sort(), topologyNames().sort());
  assert.ok(Object.values(health).every((h) => h.replicas === 3));
  const whole = await readWholeLog(nc);
  const report = compareEventLogs(
    tap.seen,
    whole.messages,
    await readMigrations(log, ['mig-soak01', 'mig-soak02']),
  );
  assert.deepEqual(
    { observed: report.observed, atEnd: report.atEnd, lost: report.lost, unobserved: report.unobserved },
    { observed: 5, atEnd: 5, lost: [], unobserved: 0 },
  );
  assert.equal(whole.lastSeq - whole.count, 0);
});
