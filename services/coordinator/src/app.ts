import type { NatsConnection } from '@nats-io/transport-node';
import { nanos } from '@nats-io/nats-core';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import {
  Registry,
  coordinatorMetrics,
  createEventLog,
  createParking,
  createSlots,
  decodeJson,
  exitWhenLoopEnds,
  exposeMetrics,
  heartbeatTimesOf,
  isConnectionGone,
  limits,
  migrationOfEventSubject,
  retryTransient,
  ensureDurable,
  streams,
  subjects,
  type EventLog,
  type Logger,
  type MetricsConfig,
  type Trust,
} from '@haul/bus';
import type { MigrationEvent, Validators } from '@haul/schemas';
import { createAdmission } from './admission.ts';
import { createApi } from './api.ts';
import { watchCommandConsumerLeaders } from './consumer-leaders.ts';
import { createProcessManager, type CoordinatorSettings } from './process-manager.ts';
import { createSealer } from './sealer.ts';

export type CoordinatorConfig = CoordinatorSettings & {
  maxMigrationsPerNode: number;
  /** How often the ledger is reconciled with the log and its migrations driven (default limits.admissionReapEveryMs). */
  reconcileMs?: number;
};

export type CoordinatorDeps = {
  /** Signs the coordinator's events and commands and judges every event it reads (docs/security.md). */
  trust: Trust;
  /** The migration log (default: the JetStream event log; tests pass one that counts reads). */
  eventLog?: EventLog;
  /** Where to serve Prometheus metrics (HAUL_METRICS_PORT); absent: not served. */
  metrics?: MetricsConfig | undefined;
};

/** The coordinator's durable consumer of every migration's events. */
const eventsConsumer = 'coordinator';

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
    createEventLog(nc, validators, trust, (seq, m) => log.warn({ seq, err: m }, 'invalid event skipped'), {
      sealChains: true, // sealer.ts
    });
  const admission = createAdmission({ nc, validators, eventLog, log, maxPerNode: cfg.maxMigrationsPerNode });
  const registry = new Registry();
  const metrics = coordinatorMetrics(registry, heartbeatTimesOf(nc));
  const pm = createProcessManager(nc, validators, eventLog, cfg, log, trust, admission, metrics);
  const api = createApi(nc, validators, eventLog, pm, log, admission, trust);
  const ac = new AbortController();
  let loop: Promise<void> | undefined;
  let reconciler: NodeJS.Timeout | undefined;
  let leaders: { stop(): void } | undefined;
  let reconciling = false;
  let metricsServer: { close(): void } | undefined;
  /** The start under way or done: a stop waits for it, so nothing it makes outlives the stop. */
  let starting: Promise<void> | undefined;

  const parking = createParking(nc, 'coordinator', cfg.node);
  const seal = createSealer(eventLog, trust, cfg.node, log, (mid, seq, events) =>
    pm.terminalStatus(mid, seq, events),
  );
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
    if (!d.ok) {
      // No event at all: a read of the log skips it too, so nothing later waits for it (pm.received).
      const on = migrationOfEventSubject(msg.subject);
      if (on !== undefined) pm.settled(msg.seq, on);
      return park(msg, d.reason);
    }
    const migrationId = d.event.migrationId;
    try {
      const believed = await eventLog.admit(
        { subject: msg.subject, seq: msg.seq, data: msg.data, headers: msg.headers },
        d.event,
      );
      // A seal changes no migration's state (evolve ignores it): nothing to advance.
      if (!believed || believed.event.type === 'MigrationSealed') {
        pm.settled(msg.seq, migrationId);
        return msg.ack();
      }
      await pm.deliver(believed, msg.info.redelivered);
      pm.settled(msg.seq, migrationId);
      await seal(believed);
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
      ensureDurable(jsm, streams.events, {
        durable_name: eventsConsumer,
        filter_subject: subjects.eventsAll,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.New,
        ack_wait: nanos(30_000),
        max_deliver: -1,
      }),
    );
    const consumer = await jetstream(nc).consumers.get(streams.events, eventsConsumer);
    const iter = await consumer.consume({
      max_messages: limits.coordinatorConcurrentEvents,
      expires: limits.pullExpiresMs,
      abort_on_missing_resource: true,
    });
    // A stop during the awaits above fired its abort already: no listener added now would hear it.
    if (ac.signal.aborted) void iter.close();
    else ac.signal.addEventListener('abort', () => void iter.close(), { once: true });
    return iter;
  }

  /**
   * Events of different migrations are handled concurrently (each migration stays serial in the process manager).
   * Every message is told to the process manager as it arrives, in stream order: that is how it knows an event is
   * the next one of its migration.
   */
  async function consumeEvents(iter: AsyncIterable<JsMsg>): Promise<void> {
    for await (const msg of iter) {
      pm.received(msg.seq, migrationOfEventSubject(msg.subject));
      const leave = await inHand.acquire();
      void handleEvent(msg)
        .catch((err: unknown) => log.error({ err, seq: msg.seq }, 'event left unacked; it will come again'))
        .finally(leave);
    }
  }

  /**
   * The ledger follows the log, and the process manager the ledger: free the admissions whose migration ended or
   * never started, then drive every admitted migration this process does not hold — its events went to a
   * coordinator that died, or were never delivered, so no event will wake it here. Only those are read; never two
   * rounds at once; never fatal (the next round tries again).
   */
  async function reconcile(): Promise<void> {
    if (reconciling) return;
    reconciling = true;
    try {
      await admission.reap();
      for (const { migrationId } of await admission.entries()) {
        if (ac.signal.aborted) return;
        if (pm.holds(migrationId)) continue;
        log.info({ migrationId }, 'driving a migration of the admission ledger');
        await pm
          .adopt(migrationId)
          .catch((err: unknown) => log.warn({ err, migrationId }, 'could not drive it'));
      }
    } catch (err) {
      // A round cut short by this process's own stop (its connection draining) is no failure to report.
      if (ac.signal.aborted && isConnectionGone(err)) return;
      log.warn({ err }, 'admission reconciliation failed; it runs again');
    } finally {
      reconciling = false;
    }
  }

  return {
    /**
     * Drive every admitted migration (after a restart: commands that may not have left before a crash are sent
     * again), then consume events and answer requests, and reconcile again every reconcileMs. The consumer exists
     * before a request is answered: one created later (first start) would never deliver that request's events. A
     * stop during the start ends it at its next step, and nothing is made after it (a timer or a listening socket
     * made then kept an embedding process, or a test's, alive).
     */
    start(): Promise<void> {
      starting ??= startOnce();
      return starting;
    },
    async stop(): Promise<void> {
      ac.abort();
      await starting?.catch(() => undefined);
      clearInterval(reconciler);
      leaders?.stop();
      metricsServer?.close();
      api.stop();
      pm.stop();
      await loop;
    },
  };

  async function startOnce(): Promise<void> {
    const stopped = () => ac.signal.aborted;
    await reconcile();
    if (stopped()) return;
    const events = await openEvents();
    if (stopped()) return;
    loop = exitWhenLoopEnds(log, 'event consumer', consumeEvents(events), ac.signal);
    api.start();
    void exitWhenLoopEnds(log, "the scheduler API's subscriptions", api.failed, ac.signal);
    // The server has the API's subscriptions once this returns: "started" means a request gets an answer.
    await nc.flush();
    if (stopped()) return;
    reconciler = setInterval(() => void reconcile(), cfg.reconcileMs ?? limits.admissionReapEveryMs);
    leaders = watchCommandConsumerLeaders({ nc, log, everyMs: limits.consumerLeaderCheckMs });
    const served = await exposeMetrics({
      registry,
      cfg: deps.metrics,
      log,
      nc,
      stream: streams.events,
      consumer: eventsConsumer,
    });
    if (stopped()) return served?.close();
    metricsServer = served;
    log.info({ active: pm.active.size }, 'coordinator started');
  }
}
