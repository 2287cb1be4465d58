import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  buckets,
  busConfigFromEnv,
  configFromEnv,
  connectBus,
  createEventLog,
  ensureTopology,
  insecureTrust,
  openBucket,
  type EventLog,
} from '@haul/bus';
import { createValidators, type MigrateRequest, type MigrationEvent } from '@haul/schemas';
import { createApiClient } from '@haul/cli';
import { agentStateDir, createEmulatedCluster, type EmulatedCluster } from './emulated-cluster.ts';
import {
  brokenInvariants as checkInvariants,
  imageRootOf,
  takeBaseline,
  type Baseline,
  type CtPlace,
} from './invariants.ts';
import {
  freePort,
  natsServerBinary,
  startNatsServer,
  type NatsRelease,
  type NatsServer,
} from './nats-server.ts';
import { createTestIdentities, loadTestIdentities, type TestIdentities } from './identities.ts';
import { startService, type ServiceProcess } from './processes.ts';
import { secretsEnv, streamerTlsEnv, worldSecrets, type SharedTestSecrets } from './secrets.ts';

import type { ConfigSchemaName } from '@haul/schemas';
import {
  createCt as createEmulatedCt,
  ctStatus,
  writeFaultPlan,
  type CtOptions,
  type FaultRule,
} from '@haul/host-emulators';
export type { FaultRule };

export type WorldOptions = {
  ctid?: string;
  /** The emulated nodes (default node-a and node-b); the CT runs on the first, the others have its config. */
  nodes?: string[];
  memoryMb?: number;
  dirtyRate?: number;
  diskWrites?: number;
  sharedDisks?: number;
  /** MiB of data in the CT's local root disk (default: a few blocks); the disk is sized to twice that. */
  localDiskMb?: number;
  /**
   * The CT's config names its disks as VZ7 writes them (`haul-emu create-ct --relative-disks`): DISK= lists the root
   * disk (image=root.hdd,mnt=/) and a secondary local disk (image=disk1.hdd) relative to VE_PRIVATE, then the shared
   * disks (absolute). Default: only the shared disks are in DISK=.
   */
  relativeDisks?: boolean;
  /** Whether the nodes' kernels track dirty memory (criu's mem_dirty_track; default true). */
  memTrack?: boolean;
  /** The CT's page-cache writeback interval (HAUL_EMU_WRITEBACK_MS; default Linux's 30 s, 0: never). */
  writebackMs?: number;
  faults?: FaultRule[];
  /** Extra environment for every service (e.g. HAUL_STREAM_MAX_RETRIES). */
  env?: Record<string, string>;
  /**
   * Identities, permissions and TLS (`haul init-cluster`): each service connects as its own identity to a server
   * that runs the generated configuration; the world's own connection is the scheduler's. The default, as in a real
   * cluster; `secure: false` keeps the signatures but lets every client on the bus (a test that forges messages
   * below the permission layer says why).
   */
  secure?: boolean;
  /** Serve each service's Prometheus metrics on a free loopback port (world.metricsUrl(service name)). */
  metrics?: boolean;
  /**
   * Start each service from a config file (`--config`, as systemd does: docs/install.md) instead of environment
   * variables: every setting the world would put in a service's environment goes into its file, and the process gets
   * only what is not a setting (PATH and the emulators' variables). world.configFile(name) is where it is.
   */
  configFiles?: boolean;
  /** The streamers' data ports (data.ports, e.g. '7400-7401'); default: a port each system picks. */
  streamPorts?: string;
  /**
   * Run without signatures (HAUL_INSECURE=1 for every service, and an insecure reader). Signing is on by default;
   * a test that turns it off says why.
   */
  insecure?: boolean;
  log?: (line: string) => void;
  /** Which nats-server the world runs on (default the installed one; the others: natsServerBinary). */
  natsRelease?: NatsRelease;
};

/** The settings schema of a service by its entry (services/<name>/src/main.ts). */
function schemaOf(entry: string): ConfigSchemaName {
  if (entry.includes('coordinator')) return 'coordinatorConfig';
  if (entry.includes('node-agent')) return 'nodeAgentConfig';
  if (entry.includes('image-streamer')) return 'imageStreamerConfig';
  throw new Error(`no settings schema for ${entry}`);
}

/**
 * A whole haul installation on this machine: a real nats-server, two emulated nodes sharing a storage folder, a CT
 * with a local root disk and N shared disks, and the services as separate processes (killed by PID).
 */
export async function startWorld(o: WorldOptions = {}) {
  const ctid = o.ctid ?? '101';
  const nodes = o.nodes ?? ['node-a', 'node-b'];
  // HAUL_TEST_INSECURE=1 runs a test as haul ran before it signed anything: to see a forgery test fail without it.
  const insecure = o.insecure ?? process.env['HAUL_TEST_INSECURE'] === '1';
  const secure = o.secure ?? !insecure;
  natsServerBinary(o.natsRelease); // a release that is not there fails here, before anything is made
  const secrets: SharedTestSecrets | undefined = secure ? await worldSecrets(nodes) : undefined;
  const server: NatsServer = await startNatsServer({
    ...(secrets ? { secrets: secrets.dir } : {}),
    release: o.natsRelease,
  });
  /** The environment that makes a process connect as `identity` (nothing in an insecure world). */
  const as = (identity: string): Record<string, string> => (secrets ? secretsEnv(secrets.dir, identity) : {});
  /** A streamer's data connections: mutual TLS with its node certificate, or plaintext in a world without secrets. */
  const streamerTls = (node: string): Record<string, string> =>
    secrets ? streamerTlsEnv(secrets.dir, node) : { HAUL_STREAM_PLAINTEXT: '1' };
  const extraConnections: NatsConnection[] = [];
  const connectAs = async (identity: string) => {
    const c = await connectBus(
      busConfigFromEnv(`haul-world-${identity}`, { HAUL_NATS_URL: server.url, ...as(identity) }),
    );
    extraConnections.push(c);
    return c;
  };
  const cluster: EmulatedCluster = createEmulatedCluster('haul-world-');
  const services = new Map<string, ServiceProcess>();
  const metricsPorts = new Map<string, number>();
  const faultsFile = join(cluster.dir, 'faults.json');
  writeFaultPlan(faultsFile, o.faults ?? []);
  for (const n of nodes) await cluster.addNode(n, o.memTrack === false ? { memTrack: false } : {});
  /** A CT's shared disks: one folder each on the shared storage, named after the CT. */
  const sharedOf = (id: string): string[] =>
    Array.from({ length: o.sharedDisks ?? 1 }, (_, i) => join(cluster.shared, `ct${id}-data${i}`));
  const shared = sharedOf(ctid);
  /**
   * Make a CT as the options say: its disks and config on node-a, its config alone on the other nodes (haul-emu
   * create-ct's own code, in this process).
   */
  const createCt = (id: string, memoryMb = o.memoryMb ?? 32): void => {
    const ct: CtOptions = {
      ctid: id,
      memoryMb,
      dirtyRate: o.dirtyRate ?? 1000,
      diskWrites: o.diskWrites ?? 20,
      shared: sharedOf(id),
      relativeDisks: o.relativeDisks ?? false,
      ...(o.localDiskMb ? { diskFill: o.localDiskMb, diskSize: `${2 * o.localDiskMb}M` } : {}),
      ...(o.writebackMs !== undefined ? { writebackMs: o.writebackMs } : {}),
    };
    createEmulatedCt(cluster.emuEnv('node-a'), ct);
    for (const n of nodes.slice(1)) createEmulatedCt(cluster.emuEnv(n), { ...ct, configOnly: true });
  };
  createCt(ctid);
  const nc: NatsConnection = secrets
    ? await connectAs('scheduler')
    : await connectBus({ servers: server.url, name: 'haul-world' });
  if (secrets) {
    const coordinator = await connectAs('coordinator');
    await ensureTopology(coordinator);
  } else await ensureTopology(nc);
  const validators = createValidators();
  // Every service signs with its own key and verifies against the registry, as in a real cluster. The world reads
  // the log as ops does: only what the services believe.
  // In a secure world the keys are those `haul init-cluster` made (they log in to NATS as well).
  const identities: TestIdentities = secrets
    ? loadTestIdentities(secrets.dir)
    : createTestIdentities(join(cluster.dir, 'secrets'), nodes);
  const readerTrust = insecure ? insecureTrust() : identities.trust('ops');
  const eventLog: EventLog = createEventLog(nc, validators, readerTrust);
  /** A service's identity: its key signs (and, in a secure world, logs in to NATS with TLS). */
  const trustEnv = (name: string): Record<string, string> =>
    insecure ? { HAUL_INSECURE: '1' } : { ...as(name), ...identities.env(name) };
  // Change requests are signed by the scheduler, as a secure coordinator requires (the log says who asked).
  const schedulerTrust = insecure ? undefined : identities.trust('scheduler');
  const api = createApiClient(nc, schedulerTrust && ((s, b) => schedulerTrust.sign(s, b)));
  const imageRoot = (n: string) => imageRootOf(cluster, n);
  /** The CT's local disks besides its root disk, relative to its VE_PRIVATE (haul-emu create-ct --relative-disks). */
  const privateDisks = o.relativeDisks ? ['disk1.hdd'] : [];

  const baseEnv = (node: string) => ({
    ...cluster.envFor(node),
    HAUL_NATS_URL: server.url,
    HAUL_NODE: node,
    HAUL_HOST_ROOT: cluster.nodeRoot(node),
    HAUL_IMAGE_ROOT: imageRoot(node),
    HAUL_STATE_DIR: agentStateDir(cluster.nodeRoot(node)),
    HAUL_STREAM_ROOTS: `${imageRoot(node)}:${join(cluster.nodeRoot(node), 'vz', 'private')}`,
    HAUL_SHARED_ROOTS: cluster.shared,
    HAUL_EMU_FAULTS: faultsFile,
    HAUL_LOG_LEVEL: 'info',
    ...(o.env ?? {}),
  });
  const configDir = join(cluster.dir, 'etc-haul');
  const start = async (name: string, entry: string, env: NodeJS.ProcessEnv, ready: RegExp) => {
    if (o.metrics) {
      const port = metricsPorts.get(name) ?? (await freePort()); // a restarted service keeps its port
      metricsPorts.set(name, port);
      env = { ...env, HAUL_METRICS_PORT: String(port), HAUL_METRICS_HOST: '127.0.0.1' };
    }
    const args: string[] = [];
    if (o.configFiles) {
      const { config, rest } = configFromEnv(schemaOf(entry), env);
      mkdirSync(configDir, { recursive: true });
      writeFileSync(join(configDir, `${name}.json`), `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
      args.push('--config', join(configDir, `${name}.json`));
      env = rest;
    }
    const s = startService(name, entry, env, [], args);
    services.set(name, s);
    await s.waitForLine(ready, 60_000);
    return s;
  };
  const eventsOf = async (migrationId: string): Promise<MigrationEvent[]> =>
    (await eventLog.read(migrationId)).events.map((e) => e.event);
  /**
   * What a test asks of one CT of the world: the world's own CT, or another one (world.anotherCt) that runs on the
   * same nodes, services and bus.
   */
  const ctView = (id: string, disks: string[]) => {
    const place: CtPlace = { cluster, nodes, ctid: id, shared: disks, privateDisks };
    return {
      ctid: id,
      shared: disks,
      /** Ask the coordinator to migrate this CT from node-a to node-b with its shared disks. */
      migrate: (requestId: string, extra: Partial<MigrateRequest> = {}) =>
        api.migrate({
          requestId,
          ctid: id,
          source: 'node-a',
          target: 'node-b',
          sharedDisks: disks,
          ...extra,
        }),
      async startCt() {
        await cluster.ok('node-a', 'vzctl', ['--skipowner', '--skiplock', 'start', id]);
      },
      /** Stop the CT wherever it runs (its workload ends; its disks and config stay). */
      async stopCt() {
        for (const n of nodes) {
          // A frozen CT (paused) too: vzctl stop ends its init whatever its freezer says.
          if (/ (running|paused)$/.test(ctStatus(cluster.emuEnv(n), id)))
            await cluster.ok(n, 'vzctl', ['--skipowner', '--skiplock', 'stop', id]);
        }
      },
      /** What the CT looks like before a migration from `source` (see takeBaseline). */
      baseline: (source: string): Promise<Baseline> => takeBaseline(place, source),
      /** Every data-safety invariant of a finished migration; returns what is broken (empty = all hold). */
      brokenInvariants: async (migrationId: string, base: Baseline): Promise<string[]> =>
        checkInvariants(place, migrationId, await eventsOf(migrationId), base),
    };
  };
  const world = {
    ...ctView(ctid, shared),
    server,
    /** The secrets folder of a secure world (WorldOptions.secure), with secretsEnv(dir, identity) for a process. */
    secrets,
    cluster,
    nc,
    eventLog,
    /** The cluster's keys: tests that forge messages sign with them (test/support/identities.ts). */
    identities,
    /** The world's own reader trust: counts what it refused to believe. */
    readerTrust,
    api,
    /**
     * A connection as one of the cluster's identities (`agent@node-b`, `coordinator`, …): what that identity may do
     * on the bus, no more (closed by stop()). In a world without secrets, any client.
     */
    connectAs,
    /** The environment that makes a process (a CLI call) act as `identity` on this world's bus. */
    envAs: (identity: string): Record<string, string> => ({
      HAUL_NATS_URL: server.url,
      ...trustEnv(identity),
    }),
    services,
    privateDisks,
    faultsFile,
    imageRoot,
    /** A new fault plan, its call counts from zero again. */
    setFaults: (rules: FaultRule[]) => writeFaultPlan(faultsFile, rules),
    /** The config file a service was started from (WorldOptions.configFiles). */
    configFile: (name: string): string => join(configDir, `${name}.json`),
    /** Where a service started with `metrics: true` serves /metrics (e.g. metricsUrl('streamer-node-a')). */
    metricsUrl(name: string): string {
      const port = metricsPorts.get(name);
      if (port === undefined)
        throw new Error(`${name} serves no metrics (start the world with metrics: true)`);
      return `http://127.0.0.1:${port}/metrics`;
    },
    startAgent: (n: string, extra: Record<string, string> = {}) => {
      mkdirSync(imageRoot(n), { recursive: true });
      mkdirSync(cluster.shared, { recursive: true });
      return start(
        `agent-${n}`,
        'services/node-agent/src/main.ts',
        { ...baseEnv(n), ...trustEnv(`agent@${n}`), ...extra },
        /node agent started/,
      );
    },
    startStreamer: (n: string, extra: Record<string, string> = {}) =>
      start(
        `streamer-${n}`,
        'services/image-streamer/src/main.ts',
        {
          ...baseEnv(n),
          ...trustEnv(`streamer@${n}`),
          ...streamerTls(n),
          ...(o.streamPorts ? { HAUL_STREAM_PORTS: o.streamPorts } : {}),
          ...extra,
        },
        /image streamer started/,
      ),
    startCoordinator: (name = 'coordinator') =>
      start(
        name,
        'services/coordinator/src/main.ts',
        { ...baseEnv('node-a'), ...trustEnv('coordinator'), HAUL_COORDINATOR_NAME: name, HAUL_NODE: '' },
        /coordinator started/,
      ),
    async startAll(streamerEnv: Record<string, Record<string, string>> = {}) {
      await Promise.all([
        ...nodes.map((n) => world.startAgent(n)),
        ...nodes.map((n) => world.startStreamer(n, streamerEnv[n] ?? {})),
      ]);
      await world.startCoordinator();
    },
    /** The CT's events, in order. */
    events: eventsOf,
    async heartbeats(): Promise<string[]> {
      const kv = await openBucket(nc, buckets.nodes);
      const out: string[] = [];
      for await (const k of await kv.keys()) out.push(k);
      return out;
    },
    async stop() {
      for (const s of services.values()) await s.kill('SIGKILL');
      await nc.drain();
      for (const c of extraConnections) if (!c.isClosed()) await c.close();
      cluster.destroy();
      await server.stop();
      // The secrets folder is the test process's (worldSecrets): its exit removes it.
    },
  };
  /**
   * Another CT on this world's nodes (made as the world's options say, or with `memoryMb` of its own, started on
   * node-a), and the world as seen from it: its id, disks, migrate, baseline and invariants; the nodes, services and
   * bus are the world's.
   */
  const anotherCt = async (id: string, memoryMb?: number): Promise<typeof world> => {
    createCt(id, memoryMb);
    const view = { ...world, ...ctView(id, sharedOf(id)) };
    await view.startCt();
    return view;
  };
  return Object.assign(world, { anotherCt });
}

export type World = Awaited<ReturnType<typeof startWorld>>;
/** A world as one of its CTs sees it (World.anotherCt). */
export type CtWorld = Omit<World, 'anotherCt'>;

/** A world with the CT running on node-a and every service started, as most tests begin; stopped if that fails. */
export async function startRunningWorld(
  o: WorldOptions = {},
  streamerEnv: Record<string, Record<string, string>> = {},
): Promise<World> {
  const w = await startWorld(o);
  try {
    await w.startCt();
    await w.startAll(streamerEnv);
  } catch (err) {
    await w.stop();
    throw err;
  }
  return w;
}
export type { Baseline };

/**
 * One running world whose cases take turns (a matrix: a world start costs more than a migration), each on a CT of its
 * own — the world's first, then World.anotherCt — with its own fault plan, counted from zero. After a turn the plan is
 * emptied and the CT stopped, even frozen; a failure to stop it is logged, never hiding the turn's own failure.
 * start() and stop() go in the suite's before and after hooks.
 */
export function worldTakingTurns(o: WorldOptions) {
  let world: World | undefined;
  let turns = 0;
  return {
    async start(): Promise<void> {
      world = await startRunningWorld(o);
    },
    stop: (): Promise<void> | undefined => world?.stop(),
    async turn<T>(faults: FaultRule[], body: (w: CtWorld) => Promise<T>): Promise<T> {
      if (!world) throw new Error('worldTakingTurns: start() first');
      const n = turns++;
      const w = n === 0 ? world : await world.anotherCt(String(200 + n));
      w.setFaults(faults);
      try {
        return await body(w);
      } finally {
        w.setFaults([]);
        await w.stopCt().catch((err: unknown) => console.error(`stopping CT ${w.ctid}:`, err));
      }
    },
  };
}

/** Run `body` in a running world (see startRunningWorld) and stop the world afterwards, whatever happens. */
export async function withRunningWorld<T>(
  o: WorldOptions,
  body: (w: World) => Promise<T>,
  streamerEnv: Record<string, Record<string, string>> = {},
): Promise<T> {
  const w = await startRunningWorld(o, streamerEnv);
  try {
    return await body(w);
  } finally {
    await w.stop();
  }
}
