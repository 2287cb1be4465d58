import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { createValidators, type MigrationEvent } from '@haul/schemas';
import { tempIdentities, startNatsCluster, type NatsCluster } from '@haul/test';
import { connectBus, createEventLog, ensureTopology, streams } from '@haul/bus';

const ev = (n: number): MigrationEvent => ({
  eventId: `mig-clus01:${n}`,
  migrationId: 'mig-clus01',
  type: 'CancelRequested',
  actor: { service: 'coordinator', node: 'coordinator' },
  time: new Date().toISOString(),
  schemaVersion: 1,
  data: { reason: `n${n}` },
});

let cluster: NatsCluster;
let nc: NatsConnection;
before(async () => {
  cluster = await startNatsCluster(3);
  nc = await connectBus({ servers: cluster.urls, name: 'cluster-test' });
});
after(async () => {
  await nc?.close();
  await cluster?.stop();
});

it('a 3-server cluster keeps the R3 event log through the loss of the stream leader (appends retried, none lost)', async () => {
  await ensureTopology(nc, { replicas: 3 });
  const log = createEventLog(nc, createValidators(), tempIdentities().trust('coordinator'));
  let last = 0;
  for (let i = 1; i <= 5; i++) last = (await log.append(ev(i), { expectedLastSeq: last })).seq;
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(streams.events);
  assert.equal(info.config.num_replicas, 3);
  const leader = info.cluster?.leader;
  const idx = cluster.servers.findIndex((_, i) => `n${i + 1}` === leader);
  assert.ok(idx >= 0, `leader ${leader}`);
  await cluster.servers[idx]!.kill('SIGKILL');
  // The election takes seconds (503 / "jetstream not enabled" meanwhile): the append is retried, not failed.
  last = (await log.append(ev(6), { expectedLastSeq: last })).seq;
  const { events } = await log.read('mig-clus01');
  assert.deepEqual(
    events.map((e) => e.event.eventId),
    [1, 2, 3, 4, 5, 6].map((n) => `mig-clus01:${n}`),
  );
});
