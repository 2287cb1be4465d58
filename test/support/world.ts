import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { buckets, connectBus, createEventLog, ensureTopology, openBucket, type EventLog } from '@haul/bus';
import { createValidators, type MigrateRequest, type MigrationEvent } from '@haul/schemas';
import { createApiClient } from '@haul/cli';
import { createEmulatedCluster, type EmulatedCluster } from './emulated-cluster.ts';
import { startNatsServer, type NatsServer } from './nats-server.ts';
import { startService, type ServiceProcess } from './processes.ts';

import type { FaultRule } from '@haul/host-emulators';
export type { FaultRule };

export type WorldOptions = {
  ctid?: string;
  memoryMb?: number;
  dirtyRate?: number;
  diskWrites?: number;
  sharedDisks?: number;
  faults?: FaultRule[];
  /** Extra environment for every service (e.g. HAUL_STREAM_MAX_RETRIES). */
  env?: Record<string, string>;
  log?: (line: string) => void;
};

/**
 * A whole haul installation on this machine: a real nats-server, two emulated nodes sharing a storage folder, a CT
 * with a local root disk and N shared disks, and the services as separate processes (killed by PID).
 */
export async function startWorld(o: WorldOptions = {}) {
  const ctid = o.ctid ?? '101';
  const server: NatsServer = await startNatsServer();
  const cluster: EmulatedCluster = createEmulatedCluster('haul-world-');
  const services = new Map<string, ServiceProcess>();
  const nodes = ['node-a', 'node-b'];
  const faultsFile = join(cluster.dir, 'faults.json');
  writeFileSync(faultsFile, JSON.stringify(o.faults ?? []));
  for (const n of nodes) await cluster.addNode(n);
  const shared = Array.from({ length: o.sharedDisks ?? 1 }, (_, i) =>
    join(cluster.shared, `ct${ctid}-data${i}`),
  );
  const ctArgs = [
    'create-ct',
    '--ctid',
    ctid,
    '--memory-mb',
    String(o.memoryMb ?? 32),
    '--dirty-rate',
    String(o.dirtyRate ?? 1000),
    '--disk-writes',
    String(o.diskWrites ?? 20),
    ...shared.flatMap((d) => ['--shared-disk', d]),
  ];
  await cluster.ok('node-a', 'haul-emu', ctArgs);
  await cluster.ok('node-b', 'haul-emu', [...ctArgs, '--config-only']);
  const nc: NatsConnection = await connectBus({ servers: server.url, name: 'haul-world' });
  await ensureTopology(nc);
  const validators = createValidators();
  const eventLog: EventLog = createEventLog(nc, validators);
  const api = createApiClient(nc);
  const imageRoot = (n: string) => join(cluster.nodeRoot(n), 'var', 'local', 'haul');
  const rootDd = (n: string) =>
    join(cluster.nodeRoot(n), 'vz', 'private', ctid, 'root.hdd', 'DiskDescriptor.xml');
  const disksOn = (n: string) => [rootDd(n), ...shared.map((d) => join(d, 'DiskDescriptor.xml'))];
  const view = async (node: string, dd: string) =>
    JSON.parse(await cluster.ok(node, 'haul-emu', ['disk-view', dd])) as Record<string, string>;
  const journalOf = (n: string) => {
    const f = join(cluster.nodeRoot(n), 'var', 'log', `ct-${ctid}.writes`);
    return existsSync(f) ? readFileSync(f, 'utf8').trim().split('\n').filter(Boolean) : [];
  };

  const baseEnv = (node: string) => ({
    ...cluster.envFor(node),
    HAUL_NATS_URL: server.url,
    HAUL_NODE: node,
    HAUL_HOST_ROOT: cluster.nodeRoot(node),
    HAUL_IMAGE_ROOT: imageRoot(node),
    HAUL_STATE_DIR: join(cluster.nodeRoot(node), 'var', 'lib', 'haul'),
    HAUL_STREAM_ROOTS: `${imageRoot(node)}:${join(cluster.nodeRoot(node), 'vz', 'private')}`,
    HAUL_EMU_FAULTS: faultsFile,
    HAUL_LOG_LEVEL: 'info',
    ...(o.env ?? {}),
  });
  const start = async (name: string, entry: string, env: NodeJS.ProcessEnv, ready: RegExp) => {
    const s = startService(name, entry, env);
    services.set(name, s);
    await s.waitForLine(ready, 60_000);
    return s;
  };
  const world = {
    ctid,
    server,
    cluster,
    nc,
    eventLog,
    api,
    services,
    shared,
    faultsFile,
    imageRoot,
    setFaults: (rules: FaultRule[]) => writeFileSync(faultsFile, JSON.stringify(rules)),
    /** Ask the coordinator to migrate this world's CT from node-a to node-b with its shared disks. */
    migrate: (requestId: string, extra: Partial<MigrateRequest> = {}) =>
      api.migrate({ requestId, ctid, source: 'node-a', target: 'node-b', sharedDisks: shared, ...extra }),
    startAgent: (n: string, extra: Record<string, string> = {}) => {
      mkdirSync(imageRoot(n), { recursive: true });
      return start(
        `agent-${n}`,
        'services/node-agent/src/main.ts',
        { ...baseEnv(n), ...extra },
        /node agent started/,
      );
    },
    startStreamer: (n: string, extra: Record<string, string> = {}) =>
      start(
        `streamer-${n}`,
        'services/image-streamer/src/main.ts',
        { ...baseEnv(n), ...extra },
        /image streamer started/,
      ),
    startCoordinator: (name = 'coordinator') =>
      start(
        name,
        'services/coordinator/src/main.ts',
        { ...baseEnv('node-a'), HAUL_COORDINATOR_NAME: name, HAUL_NODE: '' },
        /coordinator started/,
      ),
    async startAll(streamerEnv: Record<string, Record<string, string>> = {}) {
      await Promise.all([
        ...nodes.map((n) => world.startAgent(n)),
        ...nodes.map((n) => world.startStreamer(n, streamerEnv[n] ?? {})),
      ]);
      await world.startCoordinator();
    },
    async startCt() {
      await cluster.ok('node-a', 'vzctl', ['--skipowner', '--skiplock', 'start', ctid]);
    },
    /** The CT's events, in order. */
    async events(migrationId: string): Promise<MigrationEvent[]> {
      return (await eventLog.read(migrationId)).events.map((e) => e.event);
    },
    /**
     * What the CT looks like before a migration from `source`: its disks' content, how far each node's write
     * journal goes, and the CT's pid. Take it while the CT is paused, so nothing is written in between.
     */
    async baseline(source: string): Promise<Baseline> {
      await cluster.ok(source, 'haul-emu', ['freeze', ctid]);
      try {
        const views = await Promise.all(disksOn(source).map((dd) => view(source, dd)));
        const journals = Object.fromEntries(nodes.map((n) => [n, journalOf(n).length]));
        const pid = Number(
          readFileSync(join(cluster.nodeRoot(source), 'var', 'run', 've', `${ctid}.init.pid`), 'utf8'),
        );
        return { views, journals, pid };
      } finally {
        await cluster.ok(source, 'haul-emu', ['thaw', ctid]);
      }
    },
    /** Every data-safety invariant of a finished migration; returns what is broken (empty = all hold). */
    async brokenInvariants(migrationId: string, base: Baseline): Promise<string[]> {
      const broken: string[] = [];
      const events = await world.events(migrationId);
      const req = events.find((e) => e.type === 'MigrationRequested');
      if (req?.type !== 'MigrationRequested') return ['no MigrationRequested event'];
      const { source, target } = req.data.request;
      const terminals = events.filter(
        (e) => e.type === 'MigrationCompleted' || e.type === 'MigrationRolledBack',
      );
      if (terminals.length !== 1) broken.push(`${terminals.length} terminal events`);
      const completed = terminals[0]?.type === 'MigrationCompleted';
      const running = [];
      for (const n of nodes)
        if (/ running/.test(await cluster.ok(n, 'vzctl', ['status', ctid]))) running.push(n);
      if (running.length !== 1)
        broken.push(`CT ${ctid} runs on ${running.length} nodes (${running.join(', ')})`);
      const home = completed ? target : source;
      if (running.length === 1 && running[0] !== home)
        broken.push(`CT runs on ${running[0]}, expected ${home}`);
      // Memory: restored = checksum at the freeze; or, after a rollback, the same process still running. (Restart
      // mode restarts the CT on purpose: only its disks must survive.)
      const live = (req.data.request.mode ?? 'live') === 'live';
      if (completed && live) {
        const dumps = readFileSync(join(cluster.nodeRoot(source), 'var', 'log', `ct-${ctid}.dumps`), 'utf8')
          .trim()
          .split('\n');
        const atFreeze = (JSON.parse(dumps.at(-1)!) as { memSha256: string }).memSha256;
        const mem = JSON.parse(await cluster.ok(target, 'haul-emu', ['checksum-mem', ctid])) as {
          restoredSha256?: string;
        };
        if (mem.restoredSha256 !== atFreeze)
          broken.push(`restored memory ${mem.restoredSha256} ≠ memory at freeze ${atFreeze}`);
      } else if (!completed) {
        const mem = JSON.parse(await cluster.ok(source, 'haul-emu', ['checksum-mem', ctid])) as {
          frozen: boolean;
        };
        if (mem.frozen) broken.push('the CT is still frozen on the source');
        const pid = Number(
          readFileSync(join(cluster.nodeRoot(source), 'var', 'run', 've', `${ctid}.init.pid`), 'utf8'),
        );
        if (pid !== base.pid)
          broken.push(`the source CT was restarted (pid ${base.pid} → ${pid}): memory lost`);
      }
      // Disks: initial content + every block the CT wrote (source, then target after a success) = final content,
      // read at rest: the workload is paused meanwhile.
      const paused = running.length === 1 ? running[0]! : undefined;
      if (paused) await cluster.ok(paused, 'haul-emu', ['freeze', ctid]);
      const since = (n: string) => journalOf(n).slice(base.journals[n] ?? 0);
      const writes = [...since(source), ...(completed ? since(target) : [])];
      const expected = base.views.map((v) => ({ ...v }));
      for (const w of writes) {
        const [disk, block, sha] = w.split(' ');
        expected[Number(disk)]![block!] = sha!;
      }
      const finalDisks = disksOn(home);
      for (let i = 0; i < finalDisks.length; i++) {
        const got = await view(home, finalDisks[i]!);
        const exp = expected[i]!;
        const diff = new Set([...Object.keys(got), ...Object.keys(exp)].filter((k) => got[k] !== exp[k]));
        if (diff.size)
          broken.push(
            `disk ${i} (${finalDisks[i]}): ${diff.size} blocks differ from initial content + journal: ${[
              ...diff,
            ]
              .slice(0, 5)
              .map((b) => `${b}: ${got[b]?.slice(0, 8) ?? '-'} vs ${exp[b]?.slice(0, 8) ?? '-'}`)
              .join(', ')}`,
          );
      }
      if (paused) await cluster.ok(paused, 'haul-emu', ['thaw', ctid]);
      // Files: no copies, locks, links, orphan deltas or image folders anywhere.
      for (const d of shared) {
        const files = readdirSync(d).sort();
        const extra = files.filter(
          (f) => !['DiskDescriptor.xml', 'DiskDescriptor.xml.lck', 'root.hds'].includes(f),
        );
        if (extra.length) broken.push(`${d}: left behind ${extra.join(', ')}`);
        const list = await cluster.ok(home, 'ploop', [
          'snapshot-list',
          '-H',
          '-o',
          'uuid',
          join(d, 'DiskDescriptor.xml'),
        ]);
        if (list.trim() !== '{5fbaabe3-6958-40ff-92a7-860e329aab41}')
          broken.push(`${d}: chain is not a single base image: ${list.trim()}`);
      }
      const localGone = completed ? source : target;
      if (existsSync(join(cluster.nodeRoot(localGone), 'vz', 'private', ctid, 'root.hdd')))
        broken.push(`a stale local disk is left on ${localGone}`);
      for (const n of nodes) {
        const r = imageRoot(n);
        const left = existsSync(r) ? readdirSync(r).filter((f) => f.includes(migrationId)) : [];
        if (left.length) broken.push(`image folders left on ${n}: ${left.join(', ')}`);
      }
      const corruption = await cluster.ok('node-a', 'haul-emu', ['corruption-log']);
      if (corruption.trim()) broken.push(`double read-write attach recorded: ${corruption.trim()}`);
      const last = events.at(-1);
      if (last?.type !== 'MigrationCompleted' && last?.type !== 'MigrationRolledBack')
        broken.push(`the log does not end with the terminal event (last: ${last?.type})`);
      return broken;
    },
    async heartbeats(): Promise<string[]> {
      const kv = await openBucket(nc, buckets.nodes);
      const out: string[] = [];
      for await (const k of await kv.keys()) out.push(k);
      return out;
    },
    async stop() {
      for (const s of services.values()) await s.kill('SIGKILL');
      await nc.drain();
      cluster.destroy();
      await server.stop();
    },
  };
  return world;
}

export type World = Awaited<ReturnType<typeof startWorld>>;

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
export type Baseline = { views: Record<string, string>[]; journals: Record<string, number>; pid: number };

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
