import { buckets, decodeJson, keysOf, limits, openBucket } from '@haul/bus';
import type { NodeHeartbeat } from '@haul/schemas';
import { jsonFlag, type Command } from '../command.ts';
import { formatDuration, type Column, type Row } from '../output.ts';

const columns: readonly Column[] = [
  { key: 'node', header: 'NODE' },
  { key: 'state', header: 'STATE' },
  { key: 'seen', header: 'HEARTBEAT', align: 'right' },
  { key: 'criu', header: 'CRIU' },
  { key: 'memTrack', header: 'MEM-TRACK' },
  { key: 'free', header: 'FREE', align: 'right' },
  { key: 'cts', header: 'CTS', align: 'right' },
  { key: 'images', header: 'IMAGE ROOT', shrink: true },
];

export const nodes: Command = {
  name: 'nodes',
  summary: 'node agents: liveness and capabilities',
  description: `List the nodes whose agent has sent a heartbeat (KV bucket haul-nodes): alive or STALE (no heartbeat for
${limits.nodeStaleMs / 1000} s: admission refuses it), time since the last one, criu version, memory tracking, free
space and running CTs. Reads NATS directly: works while no coordinator runs (one must have run once: it makes
the bucket).`,
  positionals: [],
  flags: {
    node: { kind: 'string', value: 'NODE', help: 'only this node' },
    ...jsonFlag,
  },
  examples: ['haul nodes', 'haul nodes --node node-a --json | jq .criuVersion'],
  exits: ['completed', 'noCoordinator'],
  async run(ctx) {
    const kv = await openBucket(await ctx.nc(), buckets.nodes);
    const rows: Row[] = [];
    for (const k of await keysOf(kv)) {
      if (ctx.args.str('node') && k !== ctx.args.str('node')) continue;
      const e = await kv.get(k);
      if (!e || e.operation !== 'PUT') continue;
      const hb = decodeJson(e.value) as NodeHeartbeat;
      const age = Date.now() - Date.parse(hb.time);
      if (ctx.json) ctx.out.json({ ...hb, ageMs: age });
      else rows.push(rowOf(hb, age));
    }
    if (!ctx.json)
      ctx.out.table(
        rows.sort((x, y) => (x['node']! < y['node']! ? -1 : 1)),
        columns,
      );
    return 'completed';
  },
};

function rowOf(hb: NodeHeartbeat, age: number): Row {
  return {
    node: hb.node,
    state: age > limits.nodeStaleMs ? 'STALE' : 'alive',
    seen: `${formatDuration(age)} ago`,
    criu: hb.criuVersion,
    memTrack: hb.memTrack ? 'yes' : 'no',
    free: `${(hb.freeBytes / 1e9).toFixed(1)} GB`,
    cts: hb.runningCts ? String(hb.runningCts.length) : '-',
    images: hb.imageRoot,
  };
}
