import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { nanos } from '@nats-io/nats-core';
import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  type ConsumerConfig,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  natsAtLeast,
  natsClusterReleases,
  natsReleases,
  startNatsCluster,
  startNatsServer,
  type NatsRelease,
} from '@haul/test';
import {
  commandConsumerName,
  connectBus,
  ensureDurable,
  ensureTopology,
  isConsumerConfigConflict,
  limits,
  streams,
  subjects,
} from '@haul/bus';

/** An agent's command durable as a version before one command at a time made it (the server's default ack pending). */
const older = (): Partial<ConsumerConfig> & { durable_name: string } => ({
  durable_name: commandConsumerName('node-a', 'agent'),
  filter_subject: subjects.commands('node-a', 'agent'),
  ack_policy: AckPolicy.Explicit,
  deliver_policy: DeliverPolicy.All,
  ack_wait: nanos(limits.commandAckWaitMs),
  max_deliver: -1,
});
/** The same durable as this version makes it. */
const current = () => ({ ...older(), max_ack_pending: 1 });

/** Whether a server of this version refuses a create of a durable that exists with another configuration. */
const refusesChangedCreate = (version: string | undefined): boolean => natsAtLeast(version, 2, 10);

/** Where the durable lives: one server, or three with the streams replicated (a consumer change goes through the
 * cluster's meta leader there, another path in the server). */
const shapes = [
  {
    name: 'one nats-server',
    replicas: 1,
    start: async (release: NatsRelease) => {
      const s = await startNatsServer({ release });
      return { urls: s.url, stop: () => s.stop() };
    },
  },
  {
    name: 'three nats-servers, the streams replicated',
    replicas: 3,
    start: (release: NatsRelease) => startNatsCluster(3, { release }),
  },
];

for (const release of natsReleases)
  // Replicated streams only on the releases haul runs them on (Debian 12's 2.9.10 is refused there: casSafe).
  for (const shape of shapes.filter((sh) => sh.replicas === 1 || natsClusterReleases().includes(release)))
    describe(`a durable that exists with another configuration, ${shape.name} (${release} release)`, () => {
      let bus: { urls: string; stop(): Promise<void> } | undefined;
      let nc: NatsConnection;
      let version: string | undefined;
      before(async () => {
        bus = await shape.start(release);
        nc = await connectBus({ servers: bus.urls, name: `durable-test-${release}` });
        await ensureTopology(nc, { replicas: shape.replicas });
        version = nc.info?.version;
        // The fetched releases are the ones that refuse: on them, the update path is the one taken.
        if (release !== 'installed')
          assert.ok(refusesChangedCreate(version), `the ${release} nats-server is ${version}`);
      });
      after(async () => {
        try {
          await nc?.drain();
        } finally {
          await bus?.stop();
        }
      });

      it('is refused by a plain create from 2.10 on, and taken as an update by 2.9', async () => {
        // Given the durable as an older version made it
        const jsm = await jetstreamManager(nc);
        await jsm.consumers.add(streams.commands, older());
        try {
          // When the consumer is created again with this version's configuration, as nats.js sends a create
          const err = await jsm.consumers.add(streams.commands, current()).then(
            () => undefined,
            (e: unknown) => e,
          );

          // Then a server from 2.10 on refuses it (JSConsumerAlreadyExists), where 2.9 updates the durable in place
          const info = await jsm.consumers.info(streams.commands, older().durable_name);
          if (refusesChangedCreate(version)) {
            assert.ok(isConsumerConfigConflict(err), `${version} answered: ${String(err)}`);
            assert.equal(info.config.max_ack_pending, 1000); // the server's default, unchanged
          } else {
            assert.equal(err, undefined, `${version} answered: ${String(err)}`);
            assert.equal(info.config.max_ack_pending, 1);
          }
        } finally {
          await jsm.consumers.delete(streams.commands, older().durable_name);
        }
      });

      it('is brought to the configuration asked for by ensureDurable, keeping what it has delivered', async (t) => {
        // Given the durable as an older version made it, one of two commands delivered and acked
        const jsm = await jetstreamManager(nc);
        await jsm.consumers.add(streams.commands, older());
        t.after(() => jsm.consumers.delete(streams.commands, older().durable_name));
        const js = jetstream(nc);
        for (const n of [1, 2]) await js.publish(subjects.commands('node-a', 'agent'), `command ${n}`);
        const consumer = await js.consumers.get(streams.commands, older().durable_name);
        const first = await consumer.next({ expires: 5_000 });
        assert.equal(first?.string(), 'command 1');
        await first?.ackAck();

        // When this version's agent makes its durable
        await ensureDurable(jsm, streams.commands, current());

        // Then it hands over one command at a time from now on, and the next is the one not delivered yet
        const info = await jsm.consumers.info(streams.commands, older().durable_name);
        assert.equal(info.config.max_ack_pending, 1);
        assert.equal(info.delivered.stream_seq, first?.seq);
        const next = await (
          await js.consumers.get(streams.commands, older().durable_name)
        ).next({ expires: 5_000 });
        assert.equal(next?.string(), 'command 2');
        next?.ack();
      });
    });
