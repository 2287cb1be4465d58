import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connectBus, createLogger, encodeJson, ensureTopology, streams, subjects } from '@haul/bus';
import { createValidators, type StreamOffer } from '@haul/schemas';
import { startNatsServer, tempIdentities, type NatsServer } from '@haul/test';
import { createImageStreamer, type ImageStreamer } from '../src/app.ts';

/**
 * nats-server 2.9 lets anyone who may create a consumer name its deliver subject (nats-io/nats-server#8274): an agent
 * may append any JSON to haul.events.<id>, so it could have the server deliver a forged offer onto a streamer's
 * haul.stream.<node>.offer, which only streamers may publish to. The streamer answers only offers sent to its subject.
 */
let server: NatsServer;
let nc: NatsConnection;
let own: NatsConnection;
let streamer: ImageStreamer;
let dir: string;

before(async () => {
  server = await startNatsServer();
  nc = await connectBus({ servers: server.url, name: 'offer-pushed-test' });
  await ensureTopology(nc);
  dir = mkdtempSync(join(tmpdir(), 'haul-offer-pushed-'));
  own = await connectBus({ servers: server.url, name: 'offer-pushed-streamer' });
  const log = createLogger('offer-pushed-test', undefined, { HAUL_LOG_LEVEL: 'error' });
  const cfg = {
    node: 'node-b',
    listenHost: '127.0.0.1',
    allowedRoots: [dir],
    maxRetries: 1,
    progressEveryMs: 200,
  };
  streamer = createImageStreamer({
    nc: own,
    validators: createValidators(),
    cfg,
    log,
    trust: tempIdentities().trust('streamer@node-b'),
    exit: () => undefined,
  });
  await streamer.start();
});
after(async () => {
  await streamer?.stop();
  await own?.drain();
  await nc?.drain();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('transfer offers', () => {
  it('a forged offer a consumer pushed onto haul.stream.<node>.offer is not answered', async () => {
    const offer: StreamOffer = {
      transferId: 'forged-1',
      migrationId: 'm-forged-0001',
      fromNode: 'node-a',
      targetDir: join(dir, 'haul-m-forged-0001'),
      connect: { host: '127.0.0.1', port: 9, token: 'ab'.repeat(16) },
      manifest: [],
    };
    const stored = subjects.events(offer.migrationId);
    await jetstream(nc).publish(stored, encodeJson(offer));
    const seen = new Promise<string>((resolve) => {
      const o = nc.subscribe(subjects.streamOffer('node-b'), {
        callback: (_e, m) => {
          o.unsubscribe();
          resolve(m.subject);
        },
      });
    });
    // An answer goes to the delivery's reply subject (the consumer's ack subject): watch it.
    const answers: string[] = [];
    nc.subscribe(`$JS.ACK.${streams.events}.pushed-offer.>`, {
      callback: (_e, m) => void answers.push(m.string()),
    });
    await nc.flush();
    const jsm = await jetstreamManager(nc);
    await jsm.consumers.add(streams.events, {
      name: 'pushed-offer',
      filter_subject: stored,
      deliver_subject: subjects.streamOffer('node-b'),
      deliver_group: 'image-streamer', // the streamers' queue group: without it the server sees no interest
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
    });
    assert.equal(await seen, stored, 'the server delivered it, under the subject it was stored as');
    // Once the streamer's connection and then ours round-trip, any answer it gave has reached us.
    await own.flush();
    await nc.flush();
    assert.deepEqual(answers, [], 'the streamer did not answer the forged offer');
  });
});
