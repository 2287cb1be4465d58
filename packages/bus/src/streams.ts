import { setTimeout as delay } from 'node:timers/promises';
import { nanos } from '@nats-io/nats-core';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  jetstreamManager,
  type JetStreamManager,
  type StreamConfig,
  type StreamInfo,
} from '@nats-io/jetstream';
import { Kvm, type KvOptions } from '@nats-io/kv';
import type { Logger } from 'pino';
import { buckets, limits, streams, subjects } from './conventions.ts';
import { BusError, isNoSuitablePeers } from './errors.ts';
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
      // Full, it drops its oldest events (a month's migrations fill 1 GiB at about 20,000: discarding new ones would
      // stop every migration then). A node may flood it (it may append to any migration's subject), and so drop a
      // live migration's events, oldest first: the fences then refuse, as its log no longer starts with its
      // MigrationRequested (fencing.ts, wholeLog).
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

type BucketSpec = { bucket: string; opts: Partial<KvOptions> & { history: number; replicas: number } };

/** The KV buckets and their options, defined once. */
export function bucketConfigs(t: Topology): BucketSpec[] {
  return [
    { bucket: buckets.nodes, opts: { history: 1, ttl: limits.nodeStaleMs * 6, replicas: t.replicas } },
    { bucket: buckets.status, opts: { history: 1, replicas: t.replicas } },
    { bucket: buckets.admission, opts: { history: 1, replicas: t.replicas } },
    { bucket: buckets.streamers, opts: { history: 1, ttl: limits.nodeStaleMs * 6, replicas: t.replicas } },
    // File storage like the rest: the stall rule reads these reports, so they outlive a restart of the server.
    { bucket: buckets.progress, opts: { history: 1, ttl: limits.progressTtlMs, replicas: t.replicas } },
  ];
}

/** The JetStream stream behind a KV bucket. */
export const bucketStream = (bucket: string): string => `KV_${bucket}`;

/**
 * One stream of the topology: what it must look like (the fields haul decides) and how to create it. `enforced`:
 * fields a safety rule depends on, set on an existing stream whatever it was told (`expected` fields are changed
 * only when asked).
 */
type TopologyItem = {
  name: string;
  expected: Partial<StreamConfig>;
  enforced?: Partial<StreamConfig>;
  create(jsm: JetStreamManager, kvm: Kvm): Promise<unknown>;
};

/**
 * No rollups in a bucket. A node may write its own key (its heartbeat, its streamer's registration, its transfers'
 * reports: permissions.ts), and a message on that key with `Nats-Rollup: all` would purge every other key of the
 * bucket: every node's heartbeat, every registration, every report. The KV client creates a bucket with rollups
 * allowed (for its purge, which haul does not use); they are turned off once it exists.
 */
const noRollups: Partial<StreamConfig> = { allow_rollup_hdrs: false };

function topologyItems(t: Topology): TopologyItem[] {
  return [
    ...streamConfigs(t).map((cfg) => ({
      name: cfg.name,
      expected: cfg,
      create: (jsm: JetStreamManager) => jsm.streams.add(cfg),
    })),
    // A bucket's other fields (subjects, direct get, discard) are the KV client's to decide.
    ...bucketConfigs(t).map(({ bucket, opts }) => ({
      name: bucketStream(bucket),
      expected: {
        num_replicas: opts.replicas,
        max_msgs_per_subject: opts.history,
        max_age: nanos(opts.ttl ?? 0),
      },
      enforced: noRollups,
      create: async (jsm: JetStreamManager, kvm: Kvm) => {
        await kvm.create(bucket, opts);
        await jsm.streams.update(bucketStream(bucket), noRollups);
      },
    })),
  ];
}

/** Every stream (buckets included) haul needs, by name. */
export const topologyNames = (): string[] => topologyItems({ replicas: 1 }).map((i) => i.name);

/** What an existing stream has that differs from what haul expects, e.g. `num_replicas: 1 → 3`. */
export function configDiff(expected: Partial<StreamConfig>, have: StreamConfig): string[] {
  return Object.entries(expected)
    .filter(([k, v]) => JSON.stringify(have[k as keyof StreamConfig]) !== JSON.stringify(v))
    .map(([k, v]) => `${k}: ${JSON.stringify(have[k as keyof StreamConfig])} → ${JSON.stringify(v)}`);
}

async function streamInfo(jsm: JetStreamManager, name: string): Promise<StreamInfo | undefined> {
  return retryTransient(async () => {
    try {
      return await jsm.streams.info(name);
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) return undefined;
      throw err;
    }
  });
}

export type TopologyChange = {
  name: string;
  /** created: it was missing; updated: its config was changed; differs: it differs and was left alone. */
  action: 'created' | 'updated' | 'differs';
  diff: string[];
};

export type EnsureOptions = {
  /**
   * Set: every stream and bucket gets these replicas, and an existing one whose config differs from haul's is
   * changed to it (logged). Unset: missing ones are created with the replicas the existing ones have (1 when there
   * are none) and existing ones are never changed; a difference is only logged.
   */
  replicas?: number;
};

/**
 * Create the streams and KV buckets haul needs; change existing ones only when asked (`replicas` set). Only the
 * coordinator (and an admin) calls this; node agents and image streamers call awaitTopology, which changes nothing.
 * (Kvm.create alone would not do: on an existing bucket it opens it as it is, whatever its replicas.)
 */
export async function ensureTopology(
  nc: NatsConnection,
  want: EnsureOptions = {},
  log?: Logger,
): Promise<TopologyChange[]> {
  const jsm = await retryTransient(() => jetstreamManager(nc));
  const kvm = new Kvm(nc);
  const names = topologyNames();
  const have = new Map<string, StreamConfig>();
  for (const name of names) {
    const info = await streamInfo(jsm, name);
    if (info) have.set(name, info.config);
  }
  const inherited = names.map((n) => have.get(n)?.num_replicas).find((r) => r !== undefined) ?? 1;
  const replicas = want.replicas ?? inherited;
  // Every stream counts (the admission ledger's bucket takes a CT by a compare-and-set too); replicas asked for are
  // what every stream is brought to below, so HAUL_REPLICAS=1 on such a server is the way back to a safe topology.
  const unsafe = casRefusal(nc, want.replicas ?? mostReplicas(have.values()));
  if (unsafe) throw unsafe;
  const changes: TopologyChange[] = [];
  for (const item of topologyItems({ replicas })) {
    const current = have.get(item.name);
    if (!current) {
      const asked = Date.now();
      await retryTransient(() => item.create(jsm, kvm)).catch((err: unknown) => {
        if (!isNoSuitablePeers(err)) throw err;
        throw new StreamNotPlacedError(item.name, item.expected.num_replicas ?? 1, Date.now() - asked, {
          cause: err,
        });
      });
      log?.info({ stream: item.name, replicas: item.expected.num_replicas }, 'stream created');
      changes.push({ name: item.name, action: 'created', diff: [] });
      continue;
    }
    const unsafe = configDiff(item.enforced ?? {}, current);
    if (unsafe.length > 0) {
      await retryTransient(() => jsm.streams.update(item.name, item.enforced ?? {}));
      log?.warn({ stream: item.name, diff: unsafe }, 'stream config changed: a safety rule depends on it');
      changes.push({ name: item.name, action: 'updated', diff: unsafe });
    }
    const diff = configDiff(item.expected, { ...current, ...item.enforced });
    if (diff.length === 0) continue;
    if (want.replicas === undefined) {
      log?.warn(
        { stream: item.name, diff },
        "stream differs from haul's config; left unchanged (set HAUL_REPLICAS to change it)",
      );
      changes.push({ name: item.name, action: 'differs', diff });
      continue;
    }
    await retryTransient(() => jsm.streams.update(item.name, item.expected));
    log?.warn({ stream: item.name, diff }, 'stream config changed');
    changes.push({ name: item.name, action: 'updated', diff });
  }
  return changes;
}

/**
 * A stream or bucket the JetStream cluster would not place on as many servers as its replicas, after retrying:
 * what to look at, since nats-server says only "no suitable peers for placement". Either the cluster has fewer
 * servers than the replicas asked (HAUL_REPLICAS), or its JetStream group does: nats-server 2.10.27 can form it
 * without one of its servers at a first start, and never take it in (docs/install.md, section 3). Restarting the
 * coordinator does not help; restarting that server does. A server merely down is not this: after a moment
 * nats-server places the stream with a replica on it all the same (topology-placement.int.test.ts).
 */
export class StreamNotPlacedError extends BusError {
  constructor(name: string, replicas: number, waitedMs: number, options?: ErrorOptions) {
    super(
      'HAUL_STREAM_NOT_PLACED',
      `${name} (${replicas} replicas) could not be placed in ${Math.round(waitedMs / 1000)} s: nats-server found ` +
        `fewer than ${replicas} servers of its JetStream cluster to hold it ("no suitable peers for placement"). ` +
        `On the meta leader, /jsz must show meta_cluster with cluster_size ${replicas} or more and the other ` +
        'servers under replicas, each current. Either the cluster has fewer servers (lower HAUL_REPLICAS), or ' +
        'nats-server 2.10 formed that group without one of its servers at a first start: restart the server it ' +
        'leaves out (docs/install.md, section 3).',
      false,
      options,
    );
    this.name = 'StreamNotPlacedError';
  }
}

/**
 * The first nats-server release whose replicated stream checks an append's expected last subject sequence atomically.
 * Before it the check ran only on the stream leader, before the message was proposed, and not again when it was
 * applied (server/stream.go processJetStreamMsg at v2.9.10: "If we are clustered we have prechecked seq > 0"): two
 * appends that expect the same sequence and come at once could both be stored. Fixed by 244dda809 ("Fix bug that
 * would race around check for last sequence per subject"), first in 2.9.21. Every fence of haul is such an append:
 * on such a server "restore started" and "resumed on source" could both win, and the CT run twice. Measured with
 * bench/nats-cas-race.ts, three servers on loopback, 300 pairs of appends at once: both stored in 122 pairs on
 * 2.9.10 (Debian 12's), in none on 2.10.27 or 2.15.1. A stream with one replica checks at its one apply.
 */
export const casSafeFrom = { major: 2, minor: 9, patch: 21 } as const;

/** Whether a server of this version may hold haul's streams with this many replicas. */
export function casSafe(version: string | undefined, replicas: number): boolean {
  if (replicas <= 1) return true;
  const m = /^v?(\d+)\.(\d+)\.(\d+)(-)?/.exec(version ?? '');
  if (!m) return false;
  const v = [Number(m[1]), Number(m[2]), Number(m[3])];
  const min = [casSafeFrom.major, casSafeFrom.minor, casSafeFrom.patch];
  for (let i = 0; i < 3; i++) if (v[i] !== min[i]) return v[i]! > min[i]!;
  return m[4] === undefined; // 2.9.21-RC.1 comes before 2.9.21
}

/** The most replicas any of haul's existing streams and buckets has (a compare-and-set runs in each), or 0. */
function mostReplicas(have: Iterable<StreamConfig>): number {
  let most = 0;
  for (const c of have) most = Math.max(most, c.num_replicas);
  return most;
}

/** The refusal of this many replicas on the server `nc` is connected to, when casSafe refuses them. */
function casRefusal(nc: NatsConnection, replicas: number): CompareAndSetUnsafeError | undefined {
  const version = nc.info?.version;
  return casSafe(version, replicas) ? undefined : new CompareAndSetUnsafeError(version, replicas);
}

/** haul's streams are replicated on a nats-server whose compare-and-set is not atomic there (casSafeFrom). */
export class CompareAndSetUnsafeError extends BusError {
  constructor(version: string | undefined, replicas: number) {
    const { major, minor, patch } = casSafeFrom;
    super(
      'HAUL_NATS_CAS_UNSAFE',
      `nats-server ${version ?? '(version unknown)'} with ${replicas} replicas: before ${major}.${minor}.${patch} a ` +
        "replicated stream can store two appends that expect the same last sequence, and haul's fences (restore " +
        'started, resumed on source) rely on exactly one. Run nats-server ' +
        `${major}.${minor}.${patch} or later on every server (Debian 13's 2.10, or a release from nats.io), or ` +
        'one server with HAUL_REPLICAS=1 (docs/install.md, section 1).',
      false,
    );
    this.name = 'CompareAndSetUnsafeError';
  }
}

/** Streams or buckets a service needs are still missing after its wait. */
export class TopologyMissingError extends BusError {
  readonly missing: string[];
  constructor(missing: string[], waitedMs: number) {
    super(
      'HAUL_TOPOLOGY_MISSING',
      `${missing.join(', ')} still missing after ${Math.round(waitedMs / 1000)} s: the coordinator creates the ` +
        'streams and buckets (HAUL_REPLICAS sets their replicas); this service only uses them. Start the ' +
        'coordinator against the same NATS servers.',
      true,
    );
    this.name = 'TopologyMissingError';
    this.missing = missing;
  }
}

/** The streams and buckets haul needs that do not exist. Reads only. */
export async function missingTopology(nc: NatsConnection): Promise<string[]> {
  const jsm = await retryTransient(() => jetstreamManager(nc));
  const present = await retryTransient(async () => {
    const s = new Set<string>();
    for await (const name of jsm.streams.names()) s.add(name);
    return s;
  });
  return topologyNames().filter((n) => !present.has(n));
}

/**
 * For services that use the topology but never create or change it (node agents, image streamers): wait, bounded,
 * until every stream and bucket exists. Resolves to undefined once they do, or to a TopologyMissingError naming
 * what is still missing after `waitMs` (it does not reject). Checks once a second: there is no event to await
 * for a stream another process creates, and the check is one request.
 */
export async function awaitTopology(
  nc: NatsConnection,
  log: Logger,
  waitMs: number = limits.topologyWaitMs,
  checkEveryMs = 1000,
): Promise<TopologyMissingError | CompareAndSetUnsafeError | undefined> {
  const started = Date.now();
  let logged = -Infinity;
  for (;;) {
    const missing = await missingTopology(nc);
    if (missing.length === 0) return unsafeEvents(nc);
    const waited = Date.now() - started;
    if (waited >= waitMs) return new TopologyMissingError(missing, waited);
    if (waited - logged >= 10_000) {
      log.warn({ missing, waitMs }, 'waiting for the coordinator to create the streams and buckets');
      logged = waited;
    }
    await delay(Math.min(checkEveryMs, waitMs - waited));
  }
}

/**
 * ensureTopology for the coordinator's main: replicas on a server whose compare-and-set is not atomic there are
 * fatal (exit 78, EX_CONFIG, as awaitTopologyOrExit), said clearly; any other failure is thrown.
 */
export async function ensureTopologyOrExit(
  nc: NatsConnection,
  want: EnsureOptions,
  log: Logger,
  exit: (code: number) => void = (code) => process.exit(code),
): Promise<void> {
  try {
    await ensureTopology(nc, want, log);
  } catch (err) {
    if (!(err instanceof CompareAndSetUnsafeError)) throw err;
    log.fatal({ err }, err.message);
    exit(78);
  }
}

/**
 * The events stream replicated on a server whose compare-and-set is not atomic there (casSafe), else undefined: a
 * node service's compare-and-sets (its fences) are all there, and its permissions let it read that stream's info
 * only (permissions.ts). The coordinator checks every stream (ensureTopology).
 */
async function unsafeEvents(nc: NatsConnection): Promise<CompareAndSetUnsafeError | undefined> {
  const jsm = await retryTransient(() => jetstreamManager(nc));
  const info = await streamInfo(jsm, streams.events);
  return casRefusal(nc, info?.config.num_replicas ?? 0);
}

/**
 * awaitTopology for a service's main: a topology still missing, or replicated on a server whose compare-and-set is not
 * atomic there, is fatal (exit 78, EX_CONFIG), said clearly.
 */
export async function awaitTopologyOrExit(
  nc: NatsConnection,
  log: Logger,
  waitMs: number = limits.topologyWaitMs,
  exit: (code: number) => void = (code) => process.exit(code),
): Promise<void> {
  const err = await awaitTopology(nc, log, waitMs);
  if (!err) return;
  log.fatal({ err, ...(err instanceof TopologyMissingError ? { missing: err.missing } : {}) }, err.message);
  exit(78);
}
