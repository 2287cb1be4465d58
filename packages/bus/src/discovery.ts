import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { DiscoveryInfo } from '@haul/schemas';
import { subjects } from './conventions.ts';
import { encodeJson } from './kv.ts';
import { sentTo } from './sent-to.ts';
import type { Trust } from './trust/trust.ts';

/**
 * Answer on haul.discovery (every instance answers; ask with requestMany): who this is and how it is doing. This
 * stands in for NATS micro discovery, whose library exists only as a pre-release (docs/decisions.md §1). With the
 * process's trust, it says whether signatures are checked and counts the messages refused (rejectedMessages).
 */
export function serveDiscovery(
  nc: NatsConnection,
  service: string,
  node: string,
  stats: () => Record<string, unknown> = () => ({}),
  trust?: Trust,
): Subscription {
  const startedAt = new Date().toISOString();
  return nc.subscribe(subjects.discovery, {
    callback: (_err, msg) => {
      if (!sentTo(msg, subjects.discovery)) return; // a stored message pushed here by a consumer (sent-to.ts)
      // Security: whether signatures are checked, and how many messages this process refused to believe.
      const security = trust ? { signed: trust.secure, rejectedMessages: trust.rejections } : {};
      const info: DiscoveryInfo = { service, node, pid: process.pid, startedAt, ...security, ...stats() };
      msg.respond(encodeJson(info));
    },
  });
}
