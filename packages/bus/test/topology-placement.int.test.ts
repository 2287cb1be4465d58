/**
 * A stream the JetStream cluster cannot place on as many servers as its replicas (streams.ts StreamNotPlacedError):
 * the coordinator's start says what to look at, not only nats-server's "no suitable peers for placement".
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { JetStreamApiError, jetstreamManager } from '@nats-io/jetstream';
import { connectBus, ensureTopology, StreamNotPlacedError } from '@haul/bus';
import { startNatsCluster } from '@haul/test';

it('given a JetStream group of two servers, when the topology is made with three replicas, then it fails as a stream not placed, saying what to check, after its retries', async () => {
  // Given a JetStream group of two servers, as a group of three that formed without one of them is to its leader (a
  // server merely down is not that: after a moment nats-server placed the streams with a replica on it all the same)
  const cluster = await startNatsCluster(2);
  const nc = await connectBus({ servers: cluster.urls, name: 'placement-test' });
  try {
    // When the coordinator's start makes the streams with three replicas
    const started = Date.now();
    const err = await ensureTopology(nc, { replicas: 3 }).then(
      () => undefined,
      (e: unknown) => e,
    );

    // Then it fails, once haul's retries are spent, naming the stream and where to look
    assert.ok(err instanceof StreamNotPlacedError, String(err));
    assert.equal(err.code, 'HAUL_STREAM_NOT_PLACED');
    assert.match(err.message, /^HAUL_EVENTS \(3 replicas\) could not be placed in \d+ s/);
    assert.match(err.message, /\/jsz .*cluster_size 3.*docs\/install\.md, section 3/s);
    assert.ok(err.cause instanceof JetStreamApiError && err.cause.code === 10005, String(err.cause));
    assert.ok(Date.now() - started >= 25_000, 'retried first, as a cluster still forming is');
    // and made nothing
    const names: string[] = [];
    for await (const n of (await jetstreamManager(nc)).streams.names()) names.push(n);
    assert.deepEqual(names, []);
  } finally {
    await nc.close();
    await cluster.stop();
  }
});
