import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { nanos } from '@nats-io/nats-core';
import { AckPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import {
  ackSubjectOf,
  commandConsumerName,
  connectBus,
  ensureTopology,
  insecureTrust,
  sendCommand,
  streams,
  subjects,
} from '@haul/bus';
import { createValidators, type StepCommand } from '@haul/schemas';
import { startNatsServer, type NatsServer } from '@haul/test';
import { createCommandMarkers, handBackInDoubt } from '../src/markers.ts';

const dir = mkdtempSync(join(tmpdir(), 'haul-hand-back-'));
let server: NatsServer;
let nc: NatsConnection;
before(async () => {
  server = await startNatsServer();
  nc = await connectBus({ servers: server.url, name: 'hand-back-test' });
  await ensureTopology(nc);
});
after(async () => {
  await nc?.drain();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('a command an agent died running (markers.ts handBackInDoubt)', () => {
  it('given its delivery still pending, when the next agent starts, then it is delivered again at once, not after its ack wait', async () => {
    // Given node-e's command consumer with an ack wait far longer than the test (10 min), and an agent that took a
    // command off it, marked it begun with its delivery's ack subject, and died
    const durable = commandConsumerName('node-e', 'agent');
    await (
      await jetstreamManager(nc)
    ).consumers.add(streams.commands, {
      durable_name: durable,
      filter_subject: subjects.commands('node-e', 'agent'),
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(600_000),
      max_ack_pending: 1,
      max_deliver: -1,
    });
    const cmd: StepCommand = {
      commandId: 'm-hand-back-0001:lockSource:-:1',
      migrationId: 'm-hand-back-0001',
      node: 'node-e',
      executor: 'agent',
      attempt: 1,
      step: 'lockSource',
      args: { ctid: '101' },
      timeoutMs: 30_000,
    };
    await sendCommand(nc, createValidators(), insecureTrust(), cmd);
    const markers = createCommandMarkers(join(dir, 'commands'));
    const dead = await connectBus({ servers: server.url, name: 'hand-back-test-dead' });
    const taken = await (
      await jetstream(dead).consumers.get(streams.commands, durable)
    ).next({ expires: 10_000 });
    assert.ok(taken, 'the first agent got the command');
    markers.begin(cmd.commandId, ackSubjectOf(taken));
    await dead.close();
    const consumer = await jetstream(nc).consumers.get(streams.commands, durable);
    assert.equal(
      await consumer.next({ expires: 1_000 }),
      null,
      'pending: not delivered again before its ack wait',
    );

    // When the next agent starts
    await handBackInDoubt(nc, markers, pino({ level: 'silent' }));

    // Then the command comes to it now, the same delivery again
    const again = await consumer.next({ expires: 10_000 });
    assert.ok(again, 'delivered again once handed back');
    assert.equal(again.seq, taken.seq);
    assert.equal(again.info.deliveryCount, 2);
    again.ack();
  });
});
