import type { NatsConnection } from '@nats-io/transport-node';
import { buckets, decodeJson, limits, openBucket } from '@haul/bus';
import type { ErrorInfo, MigrateRequest, MigrationStatus, NodeHeartbeat } from '@haul/schemas';

export type Admission =
  { ok: true; imageRoots: { source: string; target: string } } | { ok: false; error: ErrorInfo };

/** Both nodes alive (fresh heartbeat) and under their concurrent-migration limit. */
export async function admit(nc: NatsConnection, req: MigrateRequest, maxPerNode: number): Promise<Admission> {
  const nodes = await openBucket(nc, buckets.nodes);
  const roots: Partial<Record<'source' | 'target', string>> = {};
  for (const role of ['source', 'target'] as const) {
    const e = await nodes.get(req[role]);
    if (!e || e.operation !== 'PUT')
      return {
        ok: false,
        error: {
          code: 'HAUL_NODE_UNKNOWN',
          message: `no node agent has reported for ${req[role]}`,
          field: role,
        },
      };
    const hb = decodeJson(e.value) as NodeHeartbeat;
    if (Date.now() - Date.parse(hb.time) > limits.nodeStaleMs)
      return {
        ok: false,
        error: { code: 'HAUL_NODE_DOWN', message: `${req[role]} last reported at ${hb.time}`, field: role },
      };
    roots[role] = hb.imageRoot;
  }
  const status = await openBucket(nc, buckets.status);
  const busy: Record<string, number> = {};
  for await (const k of await status.keys()) {
    const e = await status.get(k);
    if (!e || e.operation !== 'PUT') continue;
    const s = decodeJson(e.value) as MigrationStatus;
    if (s.phase === 'completed' || s.phase === 'rolled-back') continue;
    busy[s.source] = (busy[s.source] ?? 0) + 1;
    busy[s.target] = (busy[s.target] ?? 0) + 1;
  }
  for (const role of ['source', 'target'] as const) {
    if ((busy[req[role]] ?? 0) >= maxPerNode)
      return {
        ok: false,
        error: {
          code: 'HAUL_NODE_BUSY',
          message: `${req[role]} already takes part in ${busy[req[role]]} migrations (limit ${maxPerNode})`,
          field: role,
        },
      };
  }
  return { ok: true, imageRoots: { source: roots.source!, target: roots.target! } };
}
