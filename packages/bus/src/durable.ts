import type { ConsumerConfig } from '@nats-io/jetstream';
import { isConsumerConfigConflict } from './errors.ts';

/** The consumer calls ensureDurable makes: a JetStreamManager's `consumers`, or a test's stand-in. */
export type DurableConsumers = {
  add(stream: string, cfg: Partial<ConsumerConfig>): Promise<unknown>;
  update(stream: string, durable: string, cfg: Partial<ConsumerConfig>): Promise<unknown>;
};

/**
 * Make a durable consumer, or bring one that exists to this configuration: the caller sends the filter and the
 * delivery and ack policies it always made it with, so only what an update may change differs (its limits).
 * nats-server 2.9 takes the create for an update; from 2.10 on a create of a durable whose configuration differs is
 * refused (isConsumerConfigConflict), and the update is asked for instead.
 */
export async function ensureDurable(
  jsm: { consumers: DurableConsumers },
  stream: string,
  cfg: Partial<ConsumerConfig> & { durable_name: string },
): Promise<void> {
  try {
    await jsm.consumers.add(stream, cfg);
  } catch (err) {
    if (!isConsumerConfigConflict(err)) throw err;
    await jsm.consumers.update(stream, cfg.durable_name, cfg);
  }
}
