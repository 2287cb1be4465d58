import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectBus, createEventLog, type EventLog, type Rejection, type Trust } from '@haul/bus';
import { createApiClient } from '@haul/cli';
import { createValidators } from '@haul/schemas';
import {
  createEmulatedCluster,
  createTestIdentities,
  imageRootOf,
  onExit,
  startNatsCluster,
  type CtPlace,
  type EmulatedCluster,
  type NatsCluster,
} from '@haul/test';
import { natsMember, superviseService, type Managed, type SupervisorEvents } from './soak-services.ts';

export type SoakCt = { ctid: string; place: CtPlace };

export type SoakWorld = {
  dir: string;
  logDir: string;
  nats: NatsCluster;
  cluster: EmulatedCluster;
  nodes: string[];
  cts: SoakCt[];
  /** Where each CT runs now (the soak moves it). */
  home: Map<string, string>;
  services: Managed[];
  nc: NatsConnection;
  eventLog: EventLog;
  api: ReturnType<typeof createApiClient>;
  invalidEvents: { seq: number; why: string }[];
  /** Stream sequences of the messages the soak's reader refused (its trust's rejections). */
  refusedSeqs: ReadonlySet<number>;
  /** Stop every process, remove the temporary folders; the service logs stay when `keepLogs`. */
  stop(o?: { keepLogs?: boolean }): Promise<void>;
};

export type SoakWorldOptions = { nodes: number; cts: number; coordinators: number; seed: number };

/** Migrations a node may take part in at once (the coordinators' HAUL_MAX_PER_NODE; the driver never asks more). */
export const maxPerNode = 2;

/** The CT mix: alternately 1 shared disk, none, 2, none (every CT also has its local root disk). */
const sharedDisksOf = (i: number) => [1, 0, 2, 0][i % 4]!;
const ctWorkload = { memoryMb: 16, dirtyRate: 300, diskWrites: 8 };

/**
 * Everything the soak runs, on this machine: a 3-server JetStream cluster (the coordinator creates R3 streams and
 * buckets), N emulated nodes sharing a storage folder, each with a node agent and an image streamer, the
 * coordinators, and the CTs, running spread over the nodes. `stop()` ends every process it started, by PID.
 */
export async function startSoakWorld(
  o: SoakWorldOptions,
  ev: SupervisorEvents,
  say: (s: string) => void,
): Promise<SoakWorld> {
  const undo: (() => Promise<void> | void)[] = [];
  const logDir = mkdtempSync(join(tmpdir(), 'haul-soak-logs-'));
  let keepLogs = false;
  undo.push(() => (keepLogs ? undefined : rmSync(logDir, { recursive: true, force: true })));
  const stop = async (o: { keepLogs?: boolean } = {}) => {
    keepLogs = o.keepLogs ?? false;
    for (const u of undo.splice(0).reverse()) {
      try {
        await u();
      } catch (err) {
        say(`cleanup: ${(err as Error).message}`);
      }
    }
  };
  try {
    const nats = await startNatsCluster(3);
    undo.push(() => nats.stop());
    say(`nats cluster: ${nats.servers.map((s) => `${s.url} (pid ${s.pid})`).join(', ')}`);
    const cluster = createEmulatedCluster('haul-soak-');
    undo.push(() => cluster.destroy());
    // A held criu dump runs detached from its agent: killed by PID even when the soak dies without stop().
    const cancelExit = onExit(() => killStragglers(cluster.dir));
    undo.push(() => {
      cancelExit();
      killStragglers(cluster.dir);
    });
    const nodes = Array.from({ length: o.nodes }, (_, i) => `node-${String.fromCharCode(97 + i)}`);
    for (const n of nodes) await cluster.addNode(n);
    const cts = await createCts(cluster, nodes, o);
    say(`${nodes.length} emulated nodes and ${cts.length} CTs under ${cluster.dir}`);

    const faultsFile = join(cluster.dir, 'faults.json');
    writeFileSync(faultsFile, '[]');
    mkdirSync(cluster.shared, { recursive: true }); // the agents' HAUL_SHARED_ROOTS must exist
    // Signing on, as in a cluster: every service its own key, the soak reads as ops.
    const ids = createTestIdentities(join(cluster.dir, 'secrets'), nodes);
    const nodeEnv = (node: string) => ({
      ...cluster.envFor(node),
      HAUL_NATS_URL: nats.urls,
      HAUL_NODE: node,
      HAUL_HOST_ROOT: cluster.nodeRoot(node),
      HAUL_IMAGE_ROOT: imageRootOf(cluster, node),
      HAUL_STATE_DIR: join(cluster.nodeRoot(node), 'var', 'lib', 'haul'),
      HAUL_STREAM_ROOTS: `${imageRootOf(cluster, node)}:${join(cluster.nodeRoot(node), 'vz', 'private')}`,
      HAUL_SHARED_ROOTS: cluster.shared,
      HAUL_EMU_FAULTS: faultsFile,
      HAUL_LOG_LEVEL: 'info',
    });
    const services: Managed[] = nats.servers.map((s, i) => natsMember(`nats-n${i + 1}`, s));
    undo.push(() => Promise.all(services.map((s) => s.stop())).then(() => {}));
    const coordinators = Array.from({ length: o.coordinators }, (_, i) =>
      superviseService(
        {
          name: `coordinator-${i + 1}`,
          kind: 'coordinator',
          entry: 'services/coordinator/src/main.ts',
          env: {
            ...nodeEnv(nodes[0]!),
            ...ids.env('coordinator'),
            HAUL_NODE: '',
            HAUL_COORDINATOR_NAME: `coordinator-${i + 1}`,
            HAUL_REPLICAS: '3',
            HAUL_MAX_PER_NODE: String(maxPerNode),
          },
          ready: /coordinator started/,
        },
        logDir,
        ev,
      ),
    );
    services.push(...coordinators);
    // The first coordinator creates the topology (R3); the others only use it.
    await coordinators[0]!.start();
    for (const n of nodes) {
      mkdirSync(imageRootOf(cluster, n), { recursive: true });
      services.push(
        superviseService(
          {
            name: `agent-${n}`,
            kind: 'agent',
            entry: 'services/node-agent/src/main.ts',
            env: { ...nodeEnv(n), ...ids.env(`agent@${n}`) },
            ready: /node agent started/,
          },
          logDir,
          ev,
        ),
        superviseService(
          {
            name: `streamer-${n}`,
            kind: 'streamer',
            entry: 'services/image-streamer/src/main.ts',
            env: { ...nodeEnv(n), ...ids.env(`streamer@${n}`), HAUL_STREAM_PLAINTEXT: '1' },
            ready: /image streamer started/,
          },
          logDir,
          ev,
        ),
      );
    }
    await Promise.all(
      services.filter((s) => s.kind !== 'nats' && s !== coordinators[0]).map((s) => s.start()),
    );
    say(`services: ${services.map((s) => `${s.name} (pid ${s.pid()})`).join(', ')}`);

    const nc = await connectBus({ servers: nats.urls, name: 'haul-soak' });
    undo.push(() => nc.close());
    const invalidEvents: { seq: number; why: string }[] = [];
    // The messages this reader refuses, by sequence: a read by subject leaves them out by design (compareEventLogs).
    const refusedSeqs = new Set<number>();
    const ops = ids.trust('ops');
    const reader: Trust = Object.assign(Object.create(ops) as Trust, {
      reject: (r: Rejection) => {
        if (r.kind === 'event' && r.seq !== undefined) refusedSeqs.add(r.seq);
        ops.reject(r);
      },
    });
    const eventLog = createEventLog(nc, createValidators(), reader, (seq, why) =>
      invalidEvents.push({ seq, why }),
    );
    const home = new Map(cts.map((c, i) => [c.ctid, nodes[i % nodes.length]!]));
    return {
      dir: cluster.dir,
      logDir,
      nats,
      cluster,
      nodes,
      cts,
      home,
      services,
      nc,
      eventLog,
      api: createApiClient(nc, (s, b) => ids.trust('scheduler').sign(s, b)),
      invalidEvents,
      refusedSeqs,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function createCts(cluster: EmulatedCluster, nodes: string[], o: SoakWorldOptions): Promise<SoakCt[]> {
  const cts: SoakCt[] = [];
  for (let i = 0; i < o.cts; i++) {
    const ctid = String(101 + i);
    const shared = Array.from({ length: sharedDisksOf(i) }, (_, d) =>
      join(cluster.shared, `ct${ctid}-data${d}`),
    );
    const args = [
      'create-ct',
      '--ctid',
      ctid,
      '--memory-mb',
      String(ctWorkload.memoryMb),
      '--dirty-rate',
      String(ctWorkload.dirtyRate),
      '--disk-writes',
      String(ctWorkload.diskWrites),
      '--seed',
      String(o.seed * 1000 + i + 1),
      ...shared.flatMap((d) => ['--shared-disk', d]),
    ];
    const home = nodes[i % nodes.length]!;
    await cluster.ok(home, 'haul-emu', args);
    for (const n of nodes) if (n !== home) await cluster.ok(n, 'haul-emu', [...args, '--config-only']);
    await cluster.ok(home, 'vzctl', ['--skipowner', '--skiplock', 'start', ctid]);
    cts.push({ ctid, place: { cluster, nodes, ctid, shared } });
  }
  return cts;
}

/**
 * Processes the emulators left running detached (a held criu dump whose agent was killed, a CT): every process of
 * this user whose environment names a node below `dir`, killed by PID.
 */
export function killStragglers(dir: string): number {
  let killed = 0;
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    let env: string;
    try {
      env = readFileSync(`/proc/${pid}/environ`, 'latin1');
    } catch {
      continue; // gone, or not ours
    }
    if (!env.split('\0').some((kv) => kv.startsWith(`HAUL_EMU_ROOT=${dir}/`))) continue;
    try {
      process.kill(pid, 'SIGKILL');
      killed++;
    } catch {
      /* already gone */
    }
  }
  return killed;
}
