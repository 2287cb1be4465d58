import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { pino } from 'pino';
import {
  awaitTopology,
  bucketStream,
  buckets,
  casSafe,
  CompareAndSetUnsafeError,
  connectBus,
  ensureTopology,
  missingTopology,
  streams,
  topologyNames,
} from '@haul/bus';
import {
  createEmulatedCluster,
  natsReleases,
  startNatsCluster,
  startNatsServer,
  startService,
  tempIdentities,
  type EmulatedCluster,
  type NatsCluster,
  type NatsServer,
  type ServiceProcess,
} from '@haul/test';

/** A node agent and an image streamer of one emulated node, started as processes through their main.ts. */
function startNodeServices(emu: EmulatedCluster, natsUrl: string, extra: Record<string, string> = {}) {
  const node = 'node-a';
  const root = emu.nodeRoot(node);
  const imageRoot = join(root, 'var', 'local', 'haul');
  mkdirSync(imageRoot, { recursive: true });
  const env = {
    ...emu.envFor(node),
    HAUL_NATS_URL: natsUrl,
    HAUL_NODE: node,
    HAUL_HOST_ROOT: root,
    HAUL_IMAGE_ROOT: imageRoot,
    HAUL_STATE_DIR: join(root, 'var', 'lib', 'haul'),
    HAUL_STREAM_ROOTS: imageRoot,
    HAUL_LOG_LEVEL: 'info',
    ...extra,
  };
  const ids = tempIdentities();
  return [
    startService('agent-node-a', 'services/node-agent/src/main.ts', { ...env, ...ids.env('agent@node-a') }),
    startService('streamer-node-a', 'services/image-streamer/src/main.ts', {
      ...env,
      ...ids.env('streamer@node-a'),
      HAUL_STREAM_PLAINTEXT: '1',
    }),
  ] as const;
}

async function replicasOf(nc: NatsConnection): Promise<Record<string, number>> {
  const jsm = await jetstreamManager(nc);
  const out: Record<string, number> = {};
  for (const name of topologyNames()) out[name] = (await jsm.streams.info(name)).config.num_replicas;
  return out;
}
const all = (n: number) => Object.fromEntries(topologyNames().map((name) => [name, n]));

describe('on a 3-server cluster', () => {
  let cluster: NatsCluster;
  let nc: NatsConnection;
  let emu: EmulatedCluster;
  const services: ServiceProcess[] = [];
  before(async () => {
    cluster = await startNatsCluster(3);
    nc = await connectBus({ servers: cluster.urls, name: 'topology-test' });
    emu = createEmulatedCluster('haul-topology-');
    await emu.addNode('node-a');
  });
  after(async () => {
    for (const s of services) await s.kill('SIGKILL');
    await nc?.close();
    await cluster?.stop();
    emu?.destroy();
  });

  it('an R3 topology keeps 3 replicas everywhere when a node agent and an image streamer start', async () => {
    const created = await ensureTopology(nc, { replicas: 3 });
    assert.deepEqual(
      created.map((c) => c.action),
      topologyNames().map(() => 'created'),
    );
    const [agent, streamer] = startNodeServices(emu, cluster.urls);
    services.push(agent, streamer);
    await agent.waitForLine(/node agent started/, 60_000);
    await streamer.waitForLine(/image streamer started/, 60_000);
    assert.deepEqual(await replicasOf(nc), all(3));
  });

  it('a coordinator without HAUL_REPLICAS changes nothing; with it, it brings a bucket left at R1 to R3', async () => {
    // Given a bucket at 1 replica (an older install); the KV client's create() would open it as it is
    const jsm = await jetstreamManager(nc);
    const status = bucketStream(buckets.status);
    await jsm.streams.update(status, { num_replicas: 1 });

    const untold = await ensureTopology(nc, {});
    assert.deepEqual(untold, [{ name: status, action: 'differs', diff: ['num_replicas: 1 → 3'] }]);
    assert.equal((await replicasOf(nc))[status], 1, 'left alone');

    const told = await ensureTopology(nc, { replicas: 3 });
    assert.deepEqual(told, [{ name: status, action: 'updated', diff: ['num_replicas: 1 → 3'] }]);
    assert.deepEqual(await replicasOf(nc), all(3));
    assert.deepEqual(await ensureTopology(nc, {}), [], 'nothing differs any more');
  });
});

describe('on a server without the topology', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let emu: EmulatedCluster;
  const services: ServiceProcess[] = [];
  before(async () => {
    server = await startNatsServer();
    nc = await connectBus({ servers: server.url, name: 'topology-wait-test' });
    emu = createEmulatedCluster('haul-topology-wait-');
    await emu.addNode('node-a');
  });
  after(async () => {
    for (const s of services) await s.kill('SIGKILL');
    await nc?.close();
    await server?.stop();
    emu?.destroy();
  });

  it('a node agent and an image streamer exit, saying what is missing, when it never comes; and create nothing', async () => {
    const [agent, streamer] = startNodeServices(emu, server.url, { HAUL_TOPOLOGY_WAIT_MS: '1500' });
    services.push(agent, streamer);
    for (const s of [agent, streamer]) {
      assert.equal(await s.exited, 78);
      await s.waitForLine(/waiting for the coordinator to create the streams and buckets/);
      await s.waitForLine(/"level":60.*HAUL_EVENTS.*still missing after/);
    }
    assert.deepEqual(await missingTopology(nc), topologyNames());
  });

  it('a node agent waits for the coordinator to create it, then starts', async () => {
    const [agent, streamer] = startNodeServices(emu, server.url);
    services.push(agent, streamer);
    await agent.waitForLine(/waiting for the coordinator to create the streams and buckets/);
    await ensureTopology(nc);
    await agent.waitForLine(/node agent started/, 60_000);
    await streamer.waitForLine(/image streamer started/, 60_000);
  });
});

describe('a bucket made before rollups were turned off (an earlier haul, or the KV client alone)', () => {
  it('gets them turned off by the next ensureTopology, though its replicas are left as they are', async () => {
    const server = await startNatsServer();
    const nc = await connectBus({ servers: server.url, name: 'topology-rollups-test' });
    try {
      // Given haul-nodes as the KV client makes it: rollups allowed
      await new Kvm(nc).create(buckets.nodes, { history: 1 });
      const jsm = await jetstreamManager(nc);
      assert.equal((await jsm.streams.info(bucketStream(buckets.nodes))).config.allow_rollup_hdrs, true);

      // When the coordinator ensures the topology (no replicas asked: a difference is otherwise only logged)
      const changes = await ensureTopology(nc);

      // Then rollups are off, and said so
      assert.equal((await jsm.streams.info(bucketStream(buckets.nodes))).config.allow_rollup_hdrs, false);
      assert.deepEqual(
        changes
          .filter((c) => c.name === bucketStream(buckets.nodes) && c.action === 'updated')
          .map((c) => c.diff),
        [['allow_rollup_hdrs: true → false']],
      );
    } finally {
      await nc.close();
      await server.stop();
    }
  });
});

for (const release of natsReleases)
  describe(`haul's streams replicated on the ${release} nats-server`, () => {
    it('are refused, by the coordinator and by a node service, exactly where its compare-and-set is not atomic', async () => {
      const cluster = await startNatsCluster(3, { release });
      const nc = await connectBus({ servers: cluster.urls, name: `topology-cas-${release}` });
      try {
        const safe = casSafe(nc.info?.version, 3);
        // Known, whatever the threshold says: the fetched releases (2.10.27, 2.15.1) run it; Debian 12's 2.9.10 not
        if (release !== 'installed') assert.ok(safe, `the ${release} release is ${nc.info?.version}`);
        if (nc.info?.version === '2.9.10') assert.ok(!safe);
        // When the coordinator makes the streams with three replicas: on such a server (2.9.10), refused before it
        // makes any, naming the version and what to run instead
        const made = await ensureTopology(nc, { replicas: 3 }).then(
          () => undefined,
          (err: unknown) => err,
        );
        if (safe) assert.equal(made, undefined);
        else {
          assert.ok(made instanceof CompareAndSetUnsafeError, String(made));
          assert.match(
            made.message,
            new RegExp(`^nats-server ${nc.info!.version} with 3 replicas: before 2\\.9\\.21`),
          );
          assert.deepEqual(await missingTopology(nc), topologyNames(), 'nothing made');
          // And a node service, where an older haul made them so (one replica, the events then moved to three)
          await ensureTopology(nc, { replicas: 1 });
          const jsm = await jetstreamManager(nc);
          await jsm.streams.update(streams.events, { num_replicas: 3 });
        }
        const awaited = await awaitTopology(nc, pino({ level: 'silent' }), 10_000);
        if (safe) assert.equal(awaited, undefined);
        else {
          assert.ok(awaited instanceof CompareAndSetUnsafeError, String(awaited));
          // And the coordinator: refused while any stream has them, unless told to bring them all to one replica
          await assert.rejects(ensureTopology(nc), CompareAndSetUnsafeError);
          await ensureTopology(nc, { replicas: 1 });
          assert.equal(await awaitTopology(nc, pino({ level: 'silent' }), 10_000), undefined);
        }
      } finally {
        await nc.close();
        await cluster.stop();
      }
    });
  });
