import { nanos } from '@nats-io/nats-core';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  DiscardPolicy,
  RetentionPolicy,
  StorageType,
  jetstreamManager,
  type StreamConfig,
} from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { buckets, limits, streams, subjects } from './conventions.ts';
import { retryTransient } from './retry.ts';

export type Topology = { replicas: number };

/** The stream configurations, defined once (retention and limits are documented in docs/protocol.md). */
export function streamConfigs(t: Topology): (Partial<StreamConfig> & { name: string })[] {
  return [
    {
      name: streams.events,
      subjects: [subjects.eventsAll],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      max_age: nanos(limits.eventsMaxAgeMs),
      max_bytes: limits.eventsMaxBytes,
      max_msg_size: limits.maxEventBytes,
      duplicate_window: nanos(limits.duplicateWindowMs),
      num_replicas: t.replicas,
    },
    {
      name: streams.commands,
      subjects: [subjects.commandsAll],
      storage: StorageType.File,
      retention: RetentionPolicy.Workqueue,
      discard: DiscardPolicy.Old,
      max_msg_size: limits.maxEventBytes,
      duplicate_window: nanos(limits.duplicateWindowMs),
      num_replicas: t.replicas,
    },
    {
      name: streams.deadLetters,
      subjects: [subjects.deadLettersAll],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      max_age: nanos(limits.deadLettersMaxAgeMs),
      max_bytes: 256 * 1024 * 1024,
      max_msg_size: limits.maxEventBytes,
      num_replicas: t.replicas,
    },
  ];
}

/** Create (or update) the streams and KV buckets haul needs. Idempotent; every service may call it at start. */
export async function ensureTopology(nc: NatsConnection, t: Topology = { replicas: 1 }): Promise<void> {
  const jsm = await retryTransient(() => jetstreamManager(nc));
  for (const cfg of streamConfigs(t)) {
    await retryTransient(async () => {
      try {
        await jsm.streams.info(cfg.name);
        await jsm.streams.update(cfg.name, cfg);
      } catch (err) {
        if (
          (err as { name?: string }).name !== 'StreamNotFoundError' &&
          !/not found/i.test((err as Error).message)
        )
          throw err;
        await jsm.streams.add(cfg);
      }
    });
  }
  const kvm = new Kvm(nc);
  await retryTransient(() =>
    kvm.create(buckets.nodes, { history: 1, ttl: limits.nodeStaleMs * 6, replicas: t.replicas }),
  );
  await retryTransient(() => kvm.create(buckets.status, { history: 1, replicas: t.replicas }));
  await retryTransient(() => kvm.create(buckets.ctLocks, { history: 1, replicas: t.replicas }));
  await retryTransient(() => kvm.create(buckets.requests, { history: 1, replicas: t.replicas }));
}
