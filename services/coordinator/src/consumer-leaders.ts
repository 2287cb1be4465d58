import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { consumerLeaderStepDown, streams, type Logger } from '@haul/bus';

/** The replication of a stream or a consumer as JetStream's info reports it (only what is judged here). */
export type ClusterInfo = {
  leader?: string;
  replicas?: { name: string; current: boolean; lag?: number }[];
};

/**
 * A consumer's leader is a server whose copy of the stream is not current. A consumer delivers only what its
 * leader's copy of the stream holds: on such a leader it delivers nothing new until that copy catches up. With
 * nats-server 2.9.10 (Debian's) a replica of the work-queue stream HAUL_COMMANDS stayed behind for good after a
 * restart (the soak: lag growing for 10 minutes on a quiet cluster), and the durables led from it delivered no
 * command to their node for minutes, until each migration waiting on them stopped at `stuck`. A consumer leader
 * step-down moves the consumer to a current server (nats-io/nats-server#4189 describes the same remedy).
 * No cluster (one server) or no leader known: never stale.
 */
export function ledFromStaleReplica(
  stream: ClusterInfo | undefined,
  consumer: ClusterInfo | undefined,
): boolean {
  const leader = consumer?.leader;
  if (!leader || !stream?.replicas) return false;
  if (leader === stream.leader) return false;
  const copy = stream.replicas.find((r) => r.name === leader);
  return copy !== undefined && !copy.current;
}

/**
 * Every `everyMs`, ask each command durable led from a stream replica that is not current to step down. Only the
 * coordinator does it (it owns the topology); a failing check is logged and tried again at the next round.
 */
export function watchCommandConsumerLeaders(o: {
  nc: NatsConnection;
  log: Logger;
  everyMs: number;
  /** Called per step-down (for a metric or a test). */
  onStepDown?: (consumer: string, leader: string) => void;
}): { stop(): void } {
  let busy = false;
  const round = async () => {
    if (busy) return;
    busy = true;
    try {
      const jsm = await jetstreamManager(o.nc);
      const stream = (await jsm.streams.info(streams.commands)).cluster as ClusterInfo | undefined;
      if (!stream?.replicas?.some((r) => !r.current)) return;
      for await (const c of jsm.consumers.list(streams.commands)) {
        const cluster = c.cluster as ClusterInfo | undefined;
        if (!ledFromStaleReplica(stream, cluster)) continue;
        o.log.warn(
          { consumer: c.name, leader: cluster?.leader, stream },
          'command consumer led from a stream replica that is behind: asking it to step down',
        );
        await o.nc.request(consumerLeaderStepDown(streams.commands, c.name), '', {
          timeout: 5_000,
        });
        o.onStepDown?.(c.name, cluster?.leader ?? '');
      }
    } catch (err) {
      o.log.debug({ err }, 'command consumer leader check failed; it runs again');
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void round(), o.everyMs);
  return { stop: () => clearInterval(timer) };
}
