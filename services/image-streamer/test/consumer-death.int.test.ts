import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { commandConsumerName, connectBus, ensureTopology, streams } from '@haul/bus';
import {
  startNatsServer,
  startService,
  tempIdentities,
  type NatsServer,
  type ServiceProcess,
} from '@haul/test';

let server: NatsServer;
let nc: NatsConnection;
let streamer: ServiceProcess;
const root = mkdtempSync(join(tmpdir(), 'haul-streamer-death-'));
before(async () => {
  server = await startNatsServer();
  nc = await connectBus({ servers: server.url, name: 'streamer-death-test' });
  await ensureTopology(nc);
  streamer = startService('streamer-node-a', 'services/image-streamer/src/main.ts', {
    ...process.env,
    HAUL_NATS_URL: server.url,
    HAUL_NODE: 'node-a',
    HAUL_STREAM_ROOTS: root,
    HAUL_INSECURE: '1',
    HAUL_LOG_LEVEL: 'info',
    ...tempIdentities().env('streamer@node-a'),
  });
  await streamer.waitForLine(/image streamer started/, 60_000);
});
after(async () => {
  await streamer?.kill('SIGKILL');
  await nc?.drain();
  await server?.stop();
  rmSync(root, { recursive: true, force: true });
});

it('the image streamer exits non-zero when its durable command consumer is deleted, instead of staying deaf', async () => {
  const jsm = await jetstreamManager(nc);
  await jsm.consumers.delete(streams.commands, commandConsumerName('node-a', 'streamer'));
  const giveUp = new AbortController();
  const code = await Promise.race([
    streamer.exited,
    delay(45_000, 'still running after 45 s', { signal: giveUp.signal }),
  ]).finally(() => giveUp.abort());
  assert.equal(code, 70);
  assert.ok(streamer.lines.some((l) => /command consumer (ended|failed)/.test(l)));
});
