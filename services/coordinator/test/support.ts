import { Writable } from 'node:stream';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  buckets,
  connectBus,
  encodeJson,
  ensureTopology,
  openBucket,
  type EventLog,
  type Logger,
  type Trust,
} from '@haul/bus';
import { createValidators, type NodeHeartbeat, type Validators } from '@haul/schemas';
import { startNatsServer, type NatsServer } from '@haul/test';
import { createCoordinator, type CoordinatorConfig } from '../src/app.ts';

/** One nats-server with the haul topology, and this test's own connection to it. */
export async function startBus(name: string): Promise<{ server: NatsServer; nc: NatsConnection }> {
  const server = await startNatsServer();
  const nc = await connectBus({ servers: server.url, name });
  await ensureTopology(nc);
  return { server, nc };
}

/**
 * A coordinator in this process on its own connection (so a restart is a new connection, as after a crash). No
 * agents run in these tests: its migrations stay at their preflight.
 */
export async function startCoordinator(opts: {
  server: NatsServer;
  name: string;
  /** Merged over the settings every coordinator test uses (node `coordinator`, a 60 s frozen lease, 3 attempts). */
  settings: Partial<CoordinatorConfig> & Pick<CoordinatorConfig, 'maxMigrationsPerNode'>;
  log: Logger;
  trust: Trust;
  validators?: Validators;
  /** The coordinator's event log, made on its own connection (default: the real one). */
  eventLog?: (nc: NatsConnection) => EventLog;
}): Promise<{ stop(): Promise<void> }> {
  const own = await connectBus({ servers: opts.server.url, name: opts.name });
  const settings = { node: 'coordinator', frozenLeaseMs: 60_000, maxAttempts: 3, ...opts.settings };
  const coordinator = createCoordinator(own, opts.validators ?? createValidators(), settings, opts.log, {
    trust: opts.trust,
    ...(opts.eventLog ? { eventLog: opts.eventLog(own) } : {}),
  });
  await coordinator.start();
  return {
    async stop() {
      await coordinator.stop();
      await own.drain();
    },
  };
}

/** A pino destination that hands each line logged, parsed, to `onLine` (pino's sink() habit). */
export const jsonLines = (onLine: (line: Record<string, unknown>) => void): Writable =>
  new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean))
        onLine(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });

/** A fresh heartbeat of each of these nodes in the nodes bucket, as their agents would put it: admission takes them. */
export async function putHeartbeats(nc: NatsConnection, nodes: readonly string[]): Promise<void> {
  const kv = await openBucket(nc, buckets.nodes);
  for (const node of nodes) {
    const hb: NodeHeartbeat = {
      node,
      service: 'node-agent',
      time: new Date().toISOString(),
      criuVersion: '3.17',
      memTrack: true,
      cpuFlags: [],
      freeBytes: 1e9,
      imageRoot: `/img/${node}`,
    };
    await kv.put(node, encodeJson(hb));
  }
}
