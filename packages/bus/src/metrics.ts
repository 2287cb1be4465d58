import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { MigrationStatus } from '@haul/schemas';

/**
 * Every Prometheus metric haul exports, defined once: names (haul_*, unit in the name), types, labels and help
 * texts. Each service builds the group it records into its own registry; docs/observability.md lists them all.
 *
 * Recording costs a counter increment or a histogram observation on a labelled child, nothing per event beyond it:
 * everything that needs I/O (consumer pending counts, heartbeat ages) or a count over a map (active migrations by
 * phase) is computed when Prometheus scrapes, cached briefly, never on the services' paths.
 */

export { Registry };

const second = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const migrationSeconds = [1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200];
const downtimeSeconds = [0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120];
const iterationCounts = [1, 2, 3, 4, 5, 6, 8, 10, 15];
const bytesPerSecond = [1e6, 1e7, 5e7, 1e8, 2.5e8, 5e8, 1e9, 2.5e9];

/** A scrape-time source of numbers: asked at most every `ttlMs`, given up after `timeoutMs` (the last value stays). */
export function cachedSource<T>(fetch: () => Promise<T>, empty: T, ttlMs = 5_000, timeoutMs = 1_000) {
  let value = empty;
  let at = 0;
  let inFlight: Promise<void> | undefined;
  return async (): Promise<T> => {
    if (Date.now() - at < ttlMs) return value;
    inFlight ??= fetch()
      .then((v) => {
        value = v;
        at = Date.now();
      })
      .catch(() => {
        at = Date.now(); // a failing source is asked again after ttlMs, not at every scrape
      })
      .finally(() => (inFlight = undefined));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    await Promise.race([inFlight, timeout]);
    clearTimeout(timer);
    return value;
  };
}

export type ConsumerInfo = { stream: string; consumer: string; pending: number; ackPending: number };

/** The pending and unacknowledged messages of the service's durable consumer (asked at scrape time). */
export function consumerMetrics(registry: Registry, info: () => Promise<ConsumerInfo | undefined>) {
  let last: Promise<ConsumerInfo | undefined> | undefined;
  const read = () => (last ??= info().finally(() => (last = undefined)));
  new Gauge({
    name: 'haul_consumer_pending_messages',
    help: 'Messages of the stream not yet delivered to this service’s durable consumer (num_pending).',
    labelNames: ['stream', 'consumer'],
    registers: [registry],
    async collect() {
      const i = await read();
      this.reset();
      if (i) this.set({ stream: i.stream, consumer: i.consumer }, i.pending);
    },
  });
  new Gauge({
    name: 'haul_consumer_ack_pending_messages',
    help: 'Messages delivered to this service’s durable consumer and not acknowledged yet (num_ack_pending).',
    labelNames: ['stream', 'consumer'],
    registers: [registry],
    async collect() {
      const i = await read();
      this.reset();
      if (i) this.set({ stream: i.stream, consumer: i.consumer }, i.ackPending);
    },
  });
}

type Phase = MigrationStatus['phase'];
const forwardPhases: readonly Phase[] = [
  'preflight',
  'iterating',
  'frozen',
  'restoring',
  'committed',
  'cleanup',
];

/** The numbers of ended migrations, from the stats their terminal event carries (packages/domain/src/stats.ts). */
function endedMigrationMetrics(registry: Registry) {
  return {
    finished: new Counter({
      name: 'haul_migrations_finished_total',
      help: 'Migrations that ended (MigrationCompleted or MigrationRolledBack), by outcome, mode and the furthest forward phase they reached (unknown: this coordinator saw only their end).',
      labelNames: ['outcome', 'mode', 'phase'],
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'haul_migration_duration_seconds',
      help: 'From MigrationRequested to the terminal event (stats.totalMs).',
      labelNames: ['outcome', 'mode'],
      buckets: migrationSeconds,
      registers: [registry],
    }),
    downtime: new Histogram({
      name: 'haul_migration_downtime_seconds',
      help: 'How long the CT ran nowhere: from the final dump (or stop) to its restore on the target or its resume on the source (stats.downtimeMs).',
      labelNames: ['outcome', 'mode'],
      buckets: downtimeSeconds,
      registers: [registry],
    }),
    frozen: new Histogram({
      name: 'haul_migration_frozen_seconds',
      help: 'P.Haul’s frozen time of a live migration: criu’s frozen_time over every dump (stats.frozenMs).',
      labelNames: ['outcome'],
      buckets: downtimeSeconds,
      registers: [registry],
    }),
    iterations: new Histogram({
      name: 'haul_migration_iterations',
      help: 'Dump iterations of a migration (pre-dumps and the final dump) that succeeded.',
      labelNames: ['outcome'],
      buckets: iterationCounts,
      registers: [registry],
    }),
    streamed: new Counter({
      name: 'haul_migration_streamed_bytes_total',
      help: 'Bytes the ended migrations streamed between nodes (images and local disks; stats.bytesStreamed).',
      labelNames: ['outcome'],
      registers: [registry],
    }),
  };
}

/** Active migrations by phase, counted over the coordinator's map when scraped. */
function activeGauge(registry: Registry, phases: Map<string, { now: Phase }>): void {
  new Gauge({
    name: 'haul_migrations_active',
    help: 'Migrations this coordinator drives that have not ended, by phase.',
    labelNames: ['phase'],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of forwardPhases) this.set({ phase: p }, 0);
      for (const { now } of phases.values()) this.inc({ phase: now });
    },
  });
}

/** Each node's heartbeat age, read when scraped. */
function heartbeatGauge(registry: Registry, heartbeats?: () => Promise<Map<string, number>>): void {
  new Gauge({
    name: 'haul_node_heartbeat_age_seconds',
    help: 'Age of each node’s last heartbeat in the haul-nodes bucket, when scraped.',
    labelNames: ['node'],
    registers: [registry],
    async collect() {
      const beats = heartbeats ? await heartbeats() : new Map<string, number>();
      this.reset();
      const now = Date.now();
      for (const [node, at] of beats) this.set({ node }, Math.max(0, now - at) / 1000);
    },
  });
}

/** The coordinator's metrics: migrations by phase and outcome, their numbers, and the nodes' heartbeats. */
export function coordinatorMetrics(registry: Registry, heartbeats?: () => Promise<Map<string, number>>) {
  /** Active migration → its phase now and the furthest forward phase it reached. */
  const phases = new Map<string, { now: Phase; furthest: Phase }>();
  activeGauge(registry, phases);
  heartbeatGauge(registry, heartbeats);
  const m = endedMigrationMetrics(registry);

  /** The phase the coordinator projected for a migration; a terminal one counts once, with its stats. */
  function projected(s: MigrationStatus): void {
    const seen = phases.get(s.migrationId);
    if (s.phase !== 'completed' && s.phase !== 'rolled-back') {
      const forward = forwardPhases.includes(s.phase);
      if (seen) {
        seen.now = s.phase;
        if (forward) seen.furthest = s.phase;
      } else phases.set(s.migrationId, { now: s.phase, furthest: forward ? s.phase : 'preflight' });
      return;
    }
    phases.delete(s.migrationId);
    const outcome = s.phase;
    m.finished.inc({ outcome, mode: s.mode, phase: seen?.furthest ?? 'unknown' });
    const st = s.stats;
    if (!st) return;
    m.duration.observe({ outcome, mode: s.mode }, st.totalMs / 1000);
    if (st.downtimeMs !== undefined) m.downtime.observe({ outcome, mode: s.mode }, st.downtimeMs / 1000);
    if (st.frozenMs !== undefined) m.frozen.observe({ outcome }, st.frozenMs / 1000);
    m.iterations.observe({ outcome }, st.iterations.length);
    if (st.bytesStreamed) m.streamed.inc({ outcome }, st.bytesStreamed);
  }

  return { projected };
}
export type CoordinatorMetrics = ReturnType<typeof coordinatorMetrics>;

/** The node agent's metrics: step durations and host tool failures. */
export function agentMetrics(registry: Registry) {
  const steps = new Histogram({
    name: 'haul_step_duration_seconds',
    help: 'Wall time of a host step the node agent ran, by step and outcome (succeeded, failed).',
    labelNames: ['step', 'outcome'],
    buckets: second,
    registers: [registry],
  });
  const toolTime = new Counter({
    name: 'haul_step_tool_seconds_total',
    help: 'Time host steps spent inside host tools (vzctl, criu, ploop), by step: the toolMs of their results.',
    labelNames: ['step'],
    registers: [registry],
  });
  const failures = new Counter({
    name: 'haul_tool_failures_total',
    help: 'Host tool runs that failed, by tool, exit code ("none" when killed) and why (exit, timeout, cancelled).',
    labelNames: ['tool', 'exit_code', 'reason'],
    registers: [registry],
  });
  return {
    step(step: string, outcome: 'succeeded' | 'failed', seconds: number, toolMs?: number): void {
      steps.observe({ step, outcome }, seconds);
      if (toolMs !== undefined) toolTime.inc({ step }, toolMs / 1000);
    },
    toolFailed(tool: string, exitCode: number | undefined, reason: string): void {
      const name = tool.slice(tool.lastIndexOf('/') + 1);
      failures.inc({ tool: name, exit_code: exitCode === undefined ? 'none' : String(exitCode), reason });
    },
  };
}
export type AgentMetrics = ReturnType<typeof agentMetrics>;

/** The image streamer's metrics: bytes as they move, and each transfer's outcome, duration and rate. */
export function streamerMetrics(registry: Registry) {
  const sent = new Counter({
    name: 'haul_stream_sent_bytes_total',
    help: 'File bytes this streamer sent to target nodes, counted as they leave (resent bytes count again).',
    registers: [registry],
  });
  const transfers = new Counter({
    name: 'haul_stream_transfers_total',
    help: 'Transfers this streamer ran as the sender, by step (streamImages, copyLocalDisk) and outcome.',
    labelNames: ['step', 'outcome'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'haul_stream_transfer_duration_seconds',
    help: 'Wall time of a transfer that succeeded, offer to last verified chunk, by step.',
    labelNames: ['step'],
    buckets: second,
    registers: [registry],
  });
  const rate = new Histogram({
    name: 'haul_stream_transfer_rate_bytes_per_second',
    help: 'Mean rate of a transfer that succeeded (its bytes over its duration), by step.',
    labelNames: ['step'],
    buckets: bytesPerSecond,
    registers: [registry],
  });
  const retries = new Counter({
    name: 'haul_stream_retries_total',
    help: 'Offers repeated and connections resumed within transfers that succeeded.',
    registers: [registry],
  });
  const active = new Gauge({
    name: 'haul_stream_active_transfers',
    help: 'Transfers this streamer is sending now.',
    registers: [registry],
  });
  return {
    /** Called per chunk: one increment of an unlabelled counter, nothing allocated. */
    sent: (bytes: number): void => sent.inc(bytes),
    started: (): void => active.inc(),
    ended(step: string, r: { bytes: number; durationMs: number; retries?: number } | undefined): void {
      active.dec();
      transfers.inc({ step, outcome: r ? 'succeeded' : 'failed' });
      if (!r) return;
      duration.observe({ step }, r.durationMs / 1000);
      rate.observe({ step }, r.bytes / Math.max(r.durationMs / 1000, 1e-6));
      if (r.retries) retries.inc(r.retries);
    },
  };
}
export type StreamerMetrics = ReturnType<typeof streamerMetrics>;

/**
 * The process's own metrics (CPU, memory, event loop lag, GC): only in a service that serves /metrics. The event
 * loop is sampled every 100 ms, not prom-client's 10 ms: an idle service then spends no noticeable CPU on it
 * (bench:metrics), and a lag that matters is longer than that.
 */
export function processMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 100 });
}
