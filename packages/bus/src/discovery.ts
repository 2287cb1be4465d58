import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { DiscoveryInfo } from '@haul/schemas';
import { subjects } from './conventions.ts';
import { encodeJson } from './kv.ts';
import { sentTo } from './sent-to.ts';

/**
 * Answer on haul.discovery (every instance answers; ask with requestMany): who this is and how it is doing. This
 * stands in for NATS micro discovery, whose library exists only as a pre-release (docs/decisions.md §1).
 */
export function serveDiscovery(
  nc: NatsConnection,
  service: string,
  node: string,
  stats: () => Record<string, unknown> = () => ({}),
): Subscription {
  const startedAt = new Date().toISOString();
  return nc.subscribe(subjects.discovery, {
    callback: (_err, msg) => {
      if (!sentTo(msg, subjects.discovery)) return; // a stored message pushed here by a consumer (sent-to.ts)
      const info: DiscoveryInfo = { service, node, pid: process.pid, startedAt, ...stats() };
      msg.respond(encodeJson(info));
    },
  });
}
