import { NoRespondersError, RequestError } from '@nats-io/transport-node';
import { decodeJson, encodeJson, subjects } from '@haul/bus';
import { jsonFlag, type Command } from '../command.ts';
import { UsageError } from '../errors.ts';
import { formatDuration, type Column, type Row } from '../output.ts';

const columns: readonly Column[] = [
  { key: 'service', header: 'SERVICE' },
  { key: 'node', header: 'NODE' },
  { key: 'pid', header: 'PID', align: 'right' },
  { key: 'up', header: 'UP', align: 'right' },
  { key: 'details', header: 'DETAILS', shrink: true },
];

/** How long `--expect N` waits for N answers at most. */
const expectWaitMs = 30_000;

type Discovered = { service: string; node: string; pid: number; startedAt: string } & Record<string, unknown>;

export const services: Command = {
  name: 'services',
  summary: 'every running coordinator, node agent and image streamer',
  description: `Ask every haul process on this NATS who it is (haul.discovery, answers collected for 1 s): service, node, pid,
time since it started, and what it reports about itself (a coordinator its active migrations, an agent its
held dumps). With --expect N, answers are collected until N services answered (before --node picks its
own), for at most ${expectWaitMs / 1000} s: the list is then whole on a loaded host too, or shorter than N when some did not answer.`,
  positionals: [],
  flags: {
    node: { kind: 'string', value: 'NODE', help: 'only the services of this node' },
    expect: {
      kind: 'int',
      value: 'N',
      help: `wait until N services answered (at most ${expectWaitMs / 1000} s)`,
    },
    ...jsonFlag,
  },
  examples: ['haul services', 'haul services --node node-b --json', 'haul services --expect 5'],
  exits: ['completed'],
  async run(ctx) {
    const expect = ctx.args.num('expect');
    if (expect !== undefined && (!Number.isInteger(expect) || expect < 1))
      throw new UsageError('--expect takes a whole number ≥ 1', 'services');
    const nc = await ctx.nc();
    const found: Discovered[] = [];
    try {
      const replies = await nc.requestMany(
        subjects.discovery,
        encodeJson({}),
        expect === undefined
          ? { strategy: 'timer', maxWait: 1000 }
          : { strategy: 'count', maxMessages: expect, maxWait: expectWaitMs },
      );
      for await (const m of replies) found.push(decodeJson(m.data) as Discovered);
    } catch (err) {
      // Nobody answers: no haul service runs on this NATS, an empty list.
      const none = err instanceof NoRespondersError || (err instanceof RequestError && err.isNoResponders());
      if (!none) throw err;
    }
    const list = found
      .filter((d) => !ctx.args.str('node') || d.node === ctx.args.str('node'))
      .sort((x, y) => `${x.service}@${x.node}`.localeCompare(`${y.service}@${y.node}`));
    if (ctx.json) for (const d of list) ctx.out.json(d);
    else ctx.out.table(list.map(rowOf), columns);
    return 'completed';
  },
};

function rowOf(d: Discovered): Row {
  const { service, node, pid, startedAt, ...rest } = d;
  return {
    service,
    node: String(node),
    pid: String(pid),
    up: formatDuration(Date.now() - Date.parse(startedAt)),
    details: Object.entries(rest)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' '),
  };
}
