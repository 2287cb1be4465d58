import type { NatsConnection } from '@nats-io/transport-node';
import { nanos } from '@nats-io/nats-core';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import {
  buckets,
  createEventLog,
  createParking,
  createSlots,
  decodeJson,
  exitWhenLoopEnds,
  limits,
  openBucket,
  retryTransient,
  streams,
  subjects,
  validValues,
  type EventLog,
  type Logger,
  type Trust,
} from '@haul/bus';
import type { MigrationEvent, MigrationStatus, Validators } from '@haul/schemas';
import { createApi } from './api.ts';
import { createProcessManager, type CoordinatorSettings } from './process-manager.ts';

export type CoordinatorConfig = CoordinatorSettings & { maxMigrationsPerNode: number };

export type CoordinatorDeps = {
  /** Signs the coordinator's events and commands and judges every event it reads (docs/security.md). */
  trust: Trust;
  /** The migration log (default: the JetStream event log; tests pass one that counts reads). */
  eventLog?: EventLog;
};

/**
 * The coordinator: a durable consumer of every migration event drives the process manager, which keeps each active
 * migration folded and times its step deadlines; the API answers schedulers and ops. Killed at any moment and
 * started again (or twice), it continues from the log alone.
 */
export function createCoordinator(
  nc: NatsConnection,
  validators: Validators,
  cfg: CoordinatorConfig,
  log: Logger,
  deps: CoordinatorDeps,
) {
  const { trust } = deps;
  const eventLog =
    deps.eventLog ??
    createEventLog(nc, validators, trust, (seq, m) => log.warn({ seq, err: m }, 'invalid event skipped'));
  const pm = createProcessManager(nc, validators, eventLog, cfg, log, trust);
  const api = createApi(nc, validators, eventLog, pm, log, cfg.maxMigrationsPerNode, trust);
  const ac = new AbortController();
  let loop: Promise<void> | undefined;

  const parking = createParking(nc, 'coordinator', cfg.node);
  const inHand = createSlots(limits.coordinatorConcurrentEvents);

  /** What an event message says, or why it cannot be handled (then it is parked, never redelivered). */
  function decodeEvent(msg: JsMsg): { ok: true; event: MigrationEvent } | { ok: false; reason: string } {
    let raw: unknown;
    try {
      raw = decodeJson(msg.data);
    } catch {
      return { ok: false, reason: 'not JSON' };
    }
    const v = validators.validate<MigrationEvent>('event', raw);
    if (!v.ok) return { ok: false, reason: `not a valid event: ${v.error.message}` };
    if (msg.subject !== subjects.events(v.value.migrationId))
      return { ok: false, reason: `event of ${v.value.migrationId} on the subject ${msg.subject}` };
    return { ok: true, event: v.value };
  }

  async function park(msg: JsMsg, reason: string): Promise<void> {
    log.error({ subject: msg.subject, seq: msg.seq, reason }, 'event parked in the dead-letter stream');
    await parking.park({ subject: msg.subject, seq: msg.seq, data: msg.data }, reason);
    msg.term(); // no reason: nats-server 2.9 takes `+TERM` alone (a reason needs 2.10.4)
  }

  /**
   * One delivered event: fold it into its migration and advance it. A failure is retried with a growing delay;
   * after limits.eventRedeliveries the message is parked. Parking loses nothing: the event stays in the log, and
   * the failed migration is advanced again from the log by its own timer. An event the log's judge does not believe
   * (unsigned, or signed by someone who may not have written it) was reported by it and is only acked: it changes
   * nothing, as it changes nothing for any other reader of the log.
   */
  async function handleEvent(msg: JsMsg): Promise<void> {
    const d = decodeEvent(msg);
    if (!d.ok) return park(msg, d.reason);
    const migrationId = d.event.migrationId;
    try {
      const believed = await eventLog.admit({
        subject: msg.subject,
        seq: msg.seq,
        data: msg.data,
        headers: msg.headers,
      });
      if (!believed) return msg.ack();
      await pm.deliver(believed);
      msg.ack();
    } catch (err) {
      const n = msg.info.deliveryCount;
      if (n >= limits.eventRedeliveries)
        return park(msg, `could not advance ${migrationId} after ${n} deliveries: ${(err as Error).message}`);
      log.error({ err, migrationId, delivery: n }, 'could not advance the migration; will retry');
      msg.nak(Math.min(30_000, 500 * 2 ** n));
    }
  }

  /** The coordinator's durable consumer of every migration's events, created on first start. */
  async function openEvents() {
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
    const iter = await consumer.consume({
      max_messages: limits.coordinatorConcurrentEvents,
      expires: limits.pullExpiresMs,
      abort_on_missing_resource: true,
    });
    ac.signal.addEventListener('abort', () => void iter.close(), { once: true });
    return iter;
  }

  /**
   * Events of different migrations are handled concurrently (each migration stays serial in the process manager).
   * Every message is told to the process manager as it arrives, in stream order: that is how it knows an event is
   * the next one of its migration.
   */
  async function consumeEvents(iter: AsyncIterable<JsMsg>): Promise<void> {
    for await (const msg of iter) {
      pm.received(msg.seq);
      const leave = await inHand.acquire();
      void handleEvent(msg)
        .catch((err: unknown) => log.error({ err, seq: msg.seq }, 'event left unacked; it will come again'))
        .finally(leave);
    }
  }

  return {
    async start(): Promise<void> {
      await api.start();
      // Resume every migration that was in flight: resend commands that may not have left before a crash. A value
      // that is not a status (written by hand) is skipped, never fatal.
      const status = await openBucket(nc, buckets.status);
      const junk = (key: string, reason: string) =>
        log.warn({ bucket: buckets.status, key, reason }, 'unreadable status skipped');
      const statuses = validValues<MigrationStatus>(status, validators, 'migrationStatus', junk);
      for await (const { value: s } of statuses) {
        if (s.phase === 'completed' || s.phase === 'rolled-back') continue;
        await pm.resendInFlight(s.migrationId);
        await pm.step(s.migrationId);
      }
      const events = await openEvents();
      loop = exitWhenLoopEnds(log, 'event consumer', consumeEvents(events), ac.signal);
      log.info({ active: pm.active.size }, 'coordinator started');
    },
    async stop(): Promise<void> {
      api.stop();
      ac.abort();
      pm.stop();
      await loop;
    },
  };
}
