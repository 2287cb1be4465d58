import type { NatsConnection } from '@nats-io/transport-node';
import { buckets, decodeValid, encodeJson, limits, openBucket, type Logger } from '@haul/bus';
import type { StreamerRegistration, Validators } from '@haul/schemas';

export type Registration = {
  /** The registration a node's streamer last wrote, or undefined (none, deleted, or not a valid one). */
  lookup: (node: string) => Promise<StreamerRegistration | undefined>;
  stop: () => void;
};

/**
 * Register this streamer's data address in haul-streamers (key = node), now and every heartbeat, like the node
 * agent's heartbeat in haul-nodes. Receivers connect only to the address the sending node registered there.
 */
export async function registerStreamer(
  nc: NatsConnection,
  validators: Validators,
  log: Logger,
  me: Omit<StreamerRegistration, 'time' | 'service' | 'pid'>,
  everyMs: number = limits.heartbeatMs,
): Promise<Registration> {
  const kv = await openBucket(nc, buckets.streamers);
  const put = async () => {
    const reg: StreamerRegistration = {
      ...me,
      service: 'image-streamer',
      pid: process.pid,
      time: new Date().toISOString(),
    };
    const v = validators.validate('streamerRegistration', reg);
    if (!v.ok) throw new Error(v.error.message);
    await kv.put(me.node, encodeJson(reg));
  };
  await put();
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  // Each beat waits a period after the previous one ended: a slow put delays the next, puts never pile up.
  const again = () => {
    timer = setTimeout(() => {
      put()
        .catch((err: unknown) => log.warn({ err }, 'streamer registration failed'))
        .finally(() => {
          if (!stopped) again();
        });
    }, everyMs);
  };
  again();
  return {
    lookup: async (node) => {
      const e = await kv.get(node);
      if (!e || e.operation !== 'PUT') return undefined;
      const d = decodeValid<StreamerRegistration>(validators, 'streamerRegistration', e.value);
      return d.ok ? d.value : undefined;
    },
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
