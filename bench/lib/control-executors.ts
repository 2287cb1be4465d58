import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectBus, createLogger, limits, maxFrozenLeaseMs, type CommandDelivery } from '@haul/bus';
import { createValidators } from '@haul/schemas';
import type { TestIdentities } from '@haul/test';
import { createImageStreamer } from '../../services/image-streamer/src/app.ts';
import { nullTransfer } from '../../services/image-streamer/src/null-transfer.ts';
import { createNodeAgent } from '../../services/node-agent/src/app.ts';
import { createNullHost } from '../../services/node-agent/src/null-host.ts';

export const nodeName = (i: number): string => `node-${String(i).padStart(2, '0')}`;

export type Executors = {
  nodes: string[];
  /**
   * Command id → when the command stream stored it, and when an executor first took it off its queue (ms since the
   * epoch).
   */
  received: Map<string, { storedAt: number; at: number }>;
  /** Executors whose command consumer ended (each would exit and be restarted in production). */
  died: string[];
  stop(): Promise<void>;
};

/**
 * A node agent and an image streamer per node, in this process, each node on its own connection: the services'
 * own code over a null host (createNullHost) and a null transfer, every host step answered after `delayMs`.
 */
export async function startExecutors(
  url: string,
  dir: string,
  count: number,
  delayMs: number,
  ids: TestIdentities,
): Promise<Executors> {
  const validators = createValidators();
  const log = createLogger('bench-executor', undefined, { HAUL_LOG_LEVEL: 'warn' });
  const received = new Map<string, { storedAt: number; at: number }>();
  const onCommand = ({ command, msg }: CommandDelivery) => {
    if (received.has(command.commandId)) return;
    received.set(command.commandId, { storedAt: msg.info.timestampNanos / 1e6, at: Date.now() });
  };
  const died: string[] = [];
  const running: { stop(): Promise<void> }[] = [];
  const connections: NatsConnection[] = [];
  const nodes = Array.from({ length: count }, (_, i) => nodeName(i));
  for (const node of nodes) {
    const nc = await connectBus({ servers: url, name: `bench-${node}` });
    connections.push(nc);
    const root = join(dir, node);
    const imageRoot = join(root, 'images');
    mkdirSync(imageRoot, { recursive: true });
    const exit = (what: string) => () => void died.push(`${what}@${node}`);
    const agent = createNodeAgent({
      nc,
      validators,
      log: log.child({ node, service: 'node-agent' }),
      cfg: {
        node,
        hostRoot: root,
        imageRoot,
        stateDir: join(root, 'state'),
        // The null host's CTs: private areas at /vz/private/<ctid>, shared disks below /shared (never touched).
        sharedRoots: ['/shared'],
        maxLeaseMs: maxFrozenLeaseMs,
        heartbeatMs: limits.heartbeatMs,
        bootId: randomUUID(),
      },
      trust: ids.trust(`agent@${node}`),
      host: createNullHost(delayMs),
      onCommand,
      exit: exit('node-agent'),
    });
    const streamer = createImageStreamer({
      nc,
      validators,
      log: log.child({ node, service: 'image-streamer' }),
      cfg: { node, listenHost: '127.0.0.1', allowedRoots: [imageRoot], maxRetries: 3, progressEveryMs: 1000 },
      trust: ids.trust(`streamer@${node}`),
      transfer: nullTransfer(delayMs),
      onCommand,
      exit: exit('image-streamer'),
    });
    await agent.start();
    await streamer.start();
    running.push(agent, streamer);
  }
  return {
    nodes,
    received,
    died,
    async stop() {
      for (const r of running) await r.stop();
      for (const nc of connections) await nc.drain();
    },
  };
}
