import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import {
  connectBus,
  createEventLog,
  encodeJson,
  ensureTopology,
  insecureTrust,
  subjects,
  type EventLog,
} from '@haul/bus';
import { errorCodes } from '@haul/domain';
import { createValidators, type StepCommand } from '@haul/schemas';
import { awaitEvent, publishAs, startNatsServer, stepIntended, type NatsServer } from '@haul/test';
import type { ImageStreamer } from '../src/app.ts';
import { streamerOf } from './support.ts';

/**
 * A command that reaches the wrong streamer's consumer (nats-server 2.9.10 did that a few times after cluster leader
 * changes, README "Soak") is refused, not run: a transfer of another node's paths would read this node's files at
 * them. Node-b's streamer in this process; the command, which names node-a, is stored on node-b's subject, as a
 * misdelivered one looks to node-b's consumer (no signatures: with them, the subject must name the command's node).
 */
const validators = createValidators();
const trust = insecureTrust();
let server: NatsServer;
let nc: NatsConnection;
let dir: string;
let events: EventLog;
let streamer: ImageStreamer;

before(async () => {
  server = await startNatsServer();
  nc = await connectBus({ servers: server.url, name: 'misdelivered-test' });
  await ensureTopology(nc);
  dir = mkdtempSync(join(tmpdir(), 'haul-misdelivered-'));
  events = createEventLog(nc, validators, trust);
  streamer = streamerOf({ nc, validators, log: pino({ level: 'silent' }), trust }, 'node-b', dir, {
    maxRetries: 1,
    progressEveryMs: 200,
  });
  await streamer.start();
});
after(async () => {
  await streamer?.stop();
  await nc?.drain();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("image streamer: another node's command", () => {
  it('given a transfer command of node-a on node-b’s consumer, then node-b refuses it naming the node, and copies nothing', async () => {
    // Given node-a's transfer, whose paths exist on node-b too
    const src = join(dir, 'node-b', 'img', 'src');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'pages-1.img'), Buffer.alloc(4096, 1));
    const cmd: StepCommand = {
      commandId: 'm-misdelivered:streamImages:1:1',
      migrationId: 'm-misdelivered',
      node: 'node-a',
      executor: 'streamer',
      attempt: 1,
      step: 'streamImages',
      timeoutMs: 60_000,
      args: {
        toNode: 'node-c',
        sourceDir: src,
        targetDir: join(dir, 'node-b', 'img', 'dst'),
        priority: 'final',
      },
    };
    await events.append(stepIntended(cmd));

    // When it is stored on node-b's subject
    await publishAs(nc, undefined, subjects.commands('node-b', 'streamer'), encodeJson(cmd), cmd.commandId);

    // Then node-b's streamer refuses it, naming the node, and nothing was copied
    const refusal = await awaitEvent(
      events,
      cmd.migrationId,
      (e) => e.type === 'CommandRejected' && e.data.commandId === cmd.commandId,
      30_000,
    );
    assert.ok(refusal.type === 'CommandRejected');
    assert.deepEqual(refusal.actor, { service: 'image-streamer', node: 'node-b' });
    assert.equal(refusal.data.error.code, errorCodes.wrongExecutor);
    assert.equal(refusal.data.error.field, 'node');
    assert.equal(existsSync(join(dir, 'node-b', 'img', 'dst')), false);
  });
});
