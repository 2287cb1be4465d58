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
  encodeJson,
  ensureTopology,
  insecureTrust,
  sendCommand,
  streams,
  subjects,
} from '@haul/bus';
import { createValidators, type StepCommand } from '@haul/schemas';
import { natsReleases, startNatsServer, type NatsServer } from '@haul/test';
import { createCommandMarkers, createInHand, handBackInDoubt } from '../src/markers.ts';

const log = pino({ level: 'silent' });
const command = (node: string, n: number): StepCommand => ({
  commandId: `m-hand-back-0001:lockSource:${node}.${n}:1`,
  migrationId: 'm-hand-back-0001',
  node,
  executor: 'agent',
  attempt: 1,
  step: 'lockSource',
  args: { ctid: '101' },
  timeoutMs: 30_000,
});

for (const release of natsReleases)
  describe(`a command an agent died running (markers.ts handBackInDoubt, the ${release} nats-server)`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'haul-hand-back-'));
    let server: NatsServer;
    let nc: NatsConnection;
    before(async () => {
      server = await startNatsServer({ release });
      nc = await connectBus({ servers: server.url, name: 'hand-back-test' });
      await ensureTopology(nc);
    });
    after(async () => {
      await nc?.drain();
      await server?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    /** node's command consumer, its ack wait far longer than the test (10 min): only a hand-back delivers again. */
    async function consumerOf(node: string, maxAckPending = 1) {
      const durable = commandConsumerName(node, 'agent');
      await (
        await jetstreamManager(nc)
      ).consumers.add(streams.commands, {
        durable_name: durable,
        filter_subject: subjects.commands(node, 'agent'),
        ack_policy: AckPolicy.Explicit,
        ack_wait: nanos(600_000),
        max_ack_pending: maxAckPending,
        max_deliver: -1,
      });
      return { stream: streams.commands, durable };
    }

    /** An agent of its own connection takes node's next command, marks it begun with its ack subject, and dies. */
    async function takenByAgentThatDies(node: string, markers: ReturnType<typeof createCommandMarkers>) {
      const dead = await connectBus({ servers: server.url, name: 'hand-back-test-dead' });
      const durable = commandConsumerName(node, 'agent');
      const taken = await (
        await jetstream(dead).consumers.get(streams.commands, durable)
      ).next({ expires: 10_000 });
      assert.ok(taken, 'the first agent got the command');
      markers.begin(taken.json<StepCommand>().commandId, ackSubjectOf(taken));
      await dead.close();
      return taken;
    }

    it('given its delivery still pending, when the next agent starts, then it is delivered again at once, not after its ack wait', async () => {
      // Given node-e's consumer, and an agent that took a command off it, marked it begun and died
      const c = await consumerOf('node-e');
      await sendCommand(nc, createValidators(), insecureTrust(), command('node-e', 1));
      const markers = createCommandMarkers(join(dir, 'e'));
      const taken = await takenByAgentThatDies('node-e', markers);
      const consumer = await jetstream(nc).consumers.get(streams.commands, c.durable);
      assert.equal(
        await consumer.next({ expires: 1_000 }),
        null,
        'pending: not delivered again before its ack wait',
      );

      // When the next agent starts
      await handBackInDoubt(nc, markers, log, c);

      // Then the command comes to it now, the same message again, and its marker is handed back only once
      const again = await consumer.next({ expires: 10_000 });
      assert.ok(again, 'delivered again once handed back');
      assert.equal(again.seq, taken.seq);
      assert.equal(again.info.deliveryCount, 2);
      assert.deepEqual(
        markers.inDoubt().map((m) => m.reply),
        [undefined],
      );
      again.ack();
    });

    it('given its command acked since (nothing pending), then nothing is sent: no other message is delivered', async () => {
      // Given node-f's consumer, a command an agent took, marked and died with, then acked by the next agent without
      // the marker's end (a refusal leaves one), and another command stored behind it
      const c = await consumerOf('node-f');
      await sendCommand(nc, createValidators(), insecureTrust(), command('node-f', 1));
      const markers = createCommandMarkers(join(dir, 'f'));
      const taken = await takenByAgentThatDies('node-f', markers);
      await nc.request(ackSubjectOf(taken)!, '+ACK'); // acked on its ack subject (from any connection)
      const consumer = await jetstream(nc).consumers.get(streams.commands, c.durable);
      await sendCommand(nc, createValidators(), insecureTrust(), command('node-f', 2));
      const next = await consumer.next({ expires: 10_000 });
      assert.ok(next);
      next.ack();
      await nc.flush();

      // When an agent starts with the old marker
      await handBackInDoubt(nc, markers, log, c);

      // Then nothing is pending or delivered for it
      assert.equal(await consumer.next({ expires: 1_000 }), null);
      const info = await (await jetstreamManager(nc)).consumers.info(streams.commands, c.durable);
      assert.equal(info.num_ack_pending, 0);
      assert.equal(info.num_redelivered, 0);
    });

    it("given a marker of a delivery its consumer never made (made again since), then nothing is sent: no other node's command is delivered", async () => {
      // Given node-g's consumer after two commands delivered and acked, a command for node-h stored, then node-g's own
      // next one; and a marker left from before the consumer was made again, naming node-h's message and the
      // delivery node-g's consumer makes next (nats-server 2.9 would deliver what such a NAK names when nothing is
      // pending: node-h's command, to node-g's agent)
      const c = await consumerOf('node-g');
      await consumerOf('node-h');
      const consumer = await jetstream(nc).consumers.get(streams.commands, c.durable);
      for (const n of [1, 2]) {
        await sendCommand(nc, createValidators(), insecureTrust(), command('node-g', n));
        const m = await consumer.next({ expires: 10_000 });
        assert.ok(m);
        await nc.request(ackSubjectOf(m)!, '+ACK');
      }
      const { seq: other } = await jetstream(nc).publish(
        subjects.commands('node-h', 'agent'),
        encodeJson(command('node-h', 1)),
      );
      await sendCommand(nc, createValidators(), insecureTrust(), command('node-g', 3));
      const markers = createCommandMarkers(join(dir, 'g'));
      markers.begin(
        'm-old-0001:lockSource:-:1',
        `$JS.ACK.${c.stream}.${c.durable}.1.${other}.3.1764950400000000000.0`,
      );

      // When an agent of node-g starts with it
      await handBackInDoubt(nc, markers, log, c);

      // Then node-g's consumer hands over node-g's own next command, and node-h's stays node-h's
      const next = await consumer.next({ expires: 10_000 });
      assert.equal(next?.subject, subjects.commands('node-g', 'agent'));
      next?.ack();
    });
    it('given commands it held waiting behind the one it ran (in hand), then they are delivered again at once too, oldest first', async () => {
      // Given node-i's consumer holding several at once, and an agent that took six commands, began the first
      // (its marker), held the others in hand, and died (six: the records' file names, digests, list them in an
      // order of their own, the stored order one time in 720)
      const c = await consumerOf('node-i', 16);
      const count = 6;
      for (let n = 1; n <= count; n++)
        await sendCommand(nc, createValidators(), insecureTrust(), command('node-i', n));
      const dead = await connectBus({ servers: server.url, name: 'hand-back-test-dead' });
      const took = await (
        await jetstream(dead).consumers.get(streams.commands, c.durable)
      ).fetch({
        max_messages: count,
        expires: 10_000,
      });
      const taken = [];
      for await (const m of took) {
        taken.push(m);
        if (taken.length === count) break;
      }
      assert.equal(taken.length, count);
      const markers = createCommandMarkers(join(dir, 'i-markers'));
      const inHand = createInHand(join(dir, 'i-hand'));
      markers.begin(taken[0]!.json<StepCommand>().commandId, ackSubjectOf(taken[0]!));
      for (const m of taken) inHand.take(m.json<StepCommand>().commandId, ackSubjectOf(m)!);
      await dead.close();

      // When the next agent starts
      await handBackInDoubt(nc, markers, log, c, inHand);

      // Then all of them come to it now, in the order they were stored, and no record of them is left in hand
      const consumer = await jetstream(nc).consumers.get(streams.commands, c.durable);
      const again = [];
      for (let i = 0; i < count; i++) {
        const m = await consumer.next({ expires: 10_000 });
        assert.ok(m, `delivered again: ${i + 1} of ${count}`);
        again.push(m.seq);
        m.ack();
      }
      assert.deepEqual(
        again,
        taken.map((m) => m.seq),
      );
      assert.deepEqual(inHand.list(), []);
    });
  });
