import type { NatsConnection } from '@nats-io/transport-node';
import { nanos } from '@nats-io/nats-core';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import {
  buckets,
  createEventLog,
  decodeJson,
  openBucket,
  retryTransient,
  streams,
  subjects,
  type Logger,
} from '@haul/bus';
import type { MigrationStatus, Validators } from '@haul/schemas';
import { createApi } from './api.ts';
import { createProcessManager, type CoordinatorSettings } from './process-manager.ts';

export type CoordinatorConfig = CoordinatorSettings & { maxMigrationsPerNode: number; tickMs: number };

/**
 * The coordinator: a durable consumer of every migration event drives the process manager; a ticker turns step
 * timeouts into failures; the API answers schedulers and ops. Killed at any moment and started again (or twice),
 * it continues from the log alone.
 */
export function createCoordinator(
  nc: NatsConnection,
  validators: Validators,
  cfg: CoordinatorConfig,
  log: Logger,
) {
  const eventLog = createEventLog(nc, validators, (seq, m) =>
    log.warn({ seq, err: m }, 'invalid event skipped'),
  );
  const pm = createProcessManager(nc, validators, eventLog, cfg, log);
  const api = createApi(nc, validators, eventLog, pm, log, cfg.maxMigrationsPerNode);
  const ac = new AbortController();
  let ticker: NodeJS.Timeout | undefined;
  let loop: Promise<void> | undefined;

  async function consumeEvents(): Promise<void> {
    const jsm = await retryTransient(() => jetstreamManager(nc));
    await retryTransient(() =>
      jsm.consumers.add(streams.events, {
        durable_name: 'coordinator',
        filter_subject: subjects.eventsAll,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.New,
        ack_wait: nanos(30_000),
        max_deliver: -1,
      }),
    );
    const consumer = await jetstream(nc).consumers.get(streams.events, 'coordinator');
    const iter = await consumer.consume({ max_messages: 64 });
    ac.signal.addEventListener('abort', () => void iter.close(), { once: true });
    for await (const msg of iter) {
      const mid = msg.subject.slice('haul.events.'.length);
      try {
        await pm.step(mid);
        msg.ack();
      } catch (err) {
        log.error({ err, migrationId: mid }, 'could not advance the migration; will retry');
        msg.nak(1000);
      }
    }
  }

  return {
    async start(): Promise<void> {
      api.start();
      // Resume every migration that was in flight: resend commands that may not have left before a crash.
      const status = await openBucket(nc, buckets.status);
      for await (const k of await status.keys()) {
        const e = await status.get(k);
        if (!e || e.operation !== 'PUT') continue;
        const s = decodeJson(e.value) as MigrationStatus;
        if (s.phase === 'completed' || s.phase === 'rolled-back') continue;
        await pm.resendInFlight(s.migrationId);
        await pm.step(s.migrationId);
      }
      loop = consumeEvents().catch((err: unknown) => {
        if (!ac.signal.aborted) log.fatal({ err }, 'event consumer stopped');
      });
      ticker = setInterval(() => {
        for (const mid of pm.active)
          void pm.tick(mid).catch((err: unknown) => log.warn({ err, migrationId: mid }, 'tick failed'));
      }, cfg.tickMs);
      log.info({ active: pm.active.size }, 'coordinator started');
    },
    async stop(): Promise<void> {
      ac.abort();
      clearInterval(ticker);
      await loop;
    },
  };
}
