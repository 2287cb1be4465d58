import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { buckets, connectBus, encodeJson, ensureTopology, openBucket } from '@haul/bus';
import type { MigrateRequest, MigrationStatus, NodeHeartbeat } from '@haul/schemas';
import { startNatsServer, type NatsServer } from '@haul/test';
import { admit } from '../src/admission.ts';

let server: NatsServer;
let nc: NatsConnection;
before(async () => {
  server = await startNatsServer();
  nc = await connectBus({ servers: server.url, name: 'admission-test' });
  await ensureTopology(nc);
});
after(async () => {
  await nc?.drain();
  await server?.stop();
});

const hb = (node: string, ageMs = 0): NodeHeartbeat => ({
  node,
  service: 'node-agent',
  time: new Date(Date.now() - ageMs).toISOString(),
  criuVersion: '3.17',
  memTrack: true,
  cpuFlags: [],
  freeBytes: 1e9,
  imageRoot: `/img/${node}`,
});
const status = (
  id: string,
  source: string,
  target: string,
  phase: MigrationStatus['phase'],
): MigrationStatus => ({
  migrationId: id,
  ctid: id.slice(-3),
  source,
  target,
  mode: 'live',
  phase,
  iteration: 0,
  updatedAt: new Date().toISOString(),
  lastSeq: 1,
});
const req: MigrateRequest = { requestId: 'r', ctid: '101', source: 'node-a', target: 'node-b' };

it('admits live nodes under their limit, with their image roots; names the node that is unknown, stale or busy', async () => {
  const nodes = await openBucket(nc, buckets.nodes);
  const st = await openBucket(nc, buckets.status);
  assert.deepEqual(await admit(nc, req, 2), {
    ok: false,
    error: { code: 'HAUL_NODE_UNKNOWN', message: 'no node agent has reported for node-a', field: 'source' },
  });
  await nodes.put('node-a', encodeJson(hb('node-a')));
  await nodes.put('node-b', encodeJson(hb('node-b', 60_000)));
  const stale = await admit(nc, req, 2);
  assert.ok(!stale.ok && stale.error.code === 'HAUL_NODE_DOWN' && stale.error.field === 'target');
  await nodes.put('node-b', encodeJson(hb('node-b')));
  assert.deepEqual(await admit(nc, req, 2), {
    ok: true,
    imageRoots: { source: '/img/node-a', target: '/img/node-b' },
  });
  await st.put('m-000001', encodeJson(status('m-000001', 'node-b', 'node-c', 'iterating')));
  await st.put('m-000002', encodeJson(status('m-000002', 'node-c', 'node-b', 'frozen')));
  await st.put('m-000003', encodeJson(status('m-000003', 'node-b', 'node-c', 'completed')));
  const busy = await admit(nc, req, 2);
  assert.ok(
    !busy.ok && busy.error.code === 'HAUL_NODE_BUSY' && busy.error.field === 'target',
    JSON.stringify(busy),
  );
  assert.equal((await admit(nc, req, 3)).ok, true, 'finished migrations do not count');
});
