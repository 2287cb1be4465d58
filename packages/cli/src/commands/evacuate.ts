import { buckets, decodeJson, limits, openBucket } from '@haul/bus';
import { evolve, initialState, projectStatus, type MigrationState, errorCodes } from '@haul/domain';
import type { MigrateRequest, MigrationEvent, NodeHeartbeat } from '@haul/schemas';
import { isTerminalEvent } from '@haul/schemas';
import { jsonFlag, type Command, type Context } from '../command.ts';
import { CliError, UsageError } from '../errors.ts';
import type { ExitName } from '../exit-codes.ts';
import { outcomeOf, overBudget, overBudgetWords } from '../outcome.ts';
import { checkedRequest, flagOfField, rangeOf } from './migrate.ts';
import { formatDuration, type Column } from '../output.ts';

/**
 * The outcomes of one CT's migration, mildest first: the evacuation exits with the worst. Over budget is next to
 * completed: the CT left the node, which is what an evacuation is for, only with a longer downtime than asked.
 */
const severity: readonly ExitName[] = [
  'completed',
  'overBudget',
  'rejected',
  'natsUnreachable',
  'noCoordinator',
  'rolledBack',
  'timeout',
  'error',
  'stuck',
];

/** The outcome of the evacuation: the worst of its CTs' (completed when it had none). */
export const worst = (outcomes: readonly ExitName[]): ExitName =>
  outcomes.reduce((a, b) => (severity.indexOf(b) > severity.indexOf(a) ? b : a), 'completed');

/** The outcomes in which the CT left the node. */
const moved: ReadonlySet<ExitName> = new Set(['completed', 'overBudget']);

/** API answers that mean "not now": the CT or a node is taken by another migration. Wait and ask again. */
const busyCodes: ReadonlySet<string> = new Set([errorCodes.ctBusy, errorCodes.nodeBusy]);
const retryMs = { first: 500, max: 5_000 };

export type Result = {
  ct: string;
  target: string;
  migrationId?: string;
  outcome: ExitName;
  ms: number;
  downtimeMs?: number;
  detail?: string;
};

const columns: readonly Column[] = [
  { key: 'ct', header: 'CT' },
  { key: 'target', header: 'TARGET' },
  { key: 'migration', header: 'MIGRATION' },
  { key: 'outcome', header: 'OUTCOME' },
  { key: 'duration', header: 'DURATION', align: 'right' },
  { key: 'downtime', header: 'DOWNTIME', align: 'right' },
  { key: 'detail', header: 'DETAIL', shrink: true },
];

export const evacuate: Command = {
  name: 'evacuate',
  summary: 'move every CT off a node, spread over target nodes, N at a time',
  description: `Move every CT running on NODE (its agent's heartbeat lists them) to the target nodes, spread evenly (each
CT to the target with the fewest CTs of this evacuation so far), at most --parallel at a time. Each is an
ordinary migration request (haul.api.migrate) under the same admission limits: a CT or node busy with
another migration (HAUL_CT_BUSY, HAUL_NODE_BUSY) is asked again after a pause, not given up. Prints a
line as each CT's migration is accepted, changes phase and ends, then a table of every CT. Exits with the
worst outcome (mildest first: completed, over budget, rejected, NATS unreachable, no coordinator, rolled back,
timeout, error, stuck).`,
  positionals: [{ name: 'NODE', help: 'the node to empty', required: true }],
  flags: {
    to: {
      kind: 'string',
      value: 'NODES',
      help: 'the nodes to move the CTs to, comma-separated (node-b,node-c)',
      required: true,
    },
    parallel: { kind: 'int', value: 'N', help: 'migrations at once', default: '1' },
    reason: { kind: 'string', value: 'TEXT', help: 'why (kept with each migration, shown by haul status)' },
    mode: {
      kind: 'string',
      value: 'MODE',
      help: 'live or restart, for every CT',
      choices: ['live', 'restart'],
      default: 'live',
    },
    'max-downtime-ms': {
      kind: 'int',
      value: 'MS',
      help: `downtime budget of each migration (${rangeOf('maxDowntimeMs')})`,
    },
    bandwidth: {
      kind: 'number',
      value: 'MBPS',
      help: `cap image streaming of each migration at MBPS MB/s (${rangeOf('bandwidthLimitMBps')})`,
    },
    timeout: {
      kind: 'duration',
      value: 'DURATION',
      help: 'stop waiting after DURATION; migrations under way go on',
      default: 'wait until all end',
    },
    ...jsonFlag,
  },
  examples: [
    'haul evacuate node-a --to node-b,node-c --parallel 2 --reason "kernel upgrade"',
    'haul evacuate node-a --to node-b --json | jq -c "select(.type == \\"EvacuationSummary\\")"',
  ],
  exits: ['completed', 'overBudget', 'rolledBack', 'rejected', 'stuck', 'noCoordinator', 'timeout'],
  async run(ctx) {
    const node = ctx.args.positionals[0]!;
    const targets = targetsOf(ctx, node);
    const parallel = ctx.args.num('parallel') ?? 1;
    if (!Number.isInteger(parallel) || parallel < 1)
      throw new UsageError('--parallel takes a whole number ≥ 1', 'evacuate');
    const runId = Date.now().toString(36);
    // The node names and flags are checked before NATS is read, on a request to each target as each CT's will be (of
    // a CT id the schema takes; its request id, made of names the schema takes, always fits): a bad value is a usage
    // error, not a refusal for every CT.
    for (const target of targets) {
      const probe = requestFor(ctx, { ct: '1', target, source: node, runId, index: 0, total: 1 });
      checkedRequest({ ...probe, requestId: 'evacuate-probe' }, 'evacuate', evacuateFlagOf);
    }
    const cts = await runningCts(ctx, node);
    if (cts.length === 0) {
      ctx.say(`haul: no CTs run on ${node}`);
      if (ctx.json) ctx.out.json({ type: 'EvacuationSummary', node, results: [] });
      return 'completed';
    }
    const plan = spread(cts, targets);
    ctx.say(
      `haul: evacuating ${cts.length} CTs from ${node} to ${targets.join(', ')}, ${parallel} at a time`,
    );
    const timeoutMs = ctx.args.ms('timeout');
    const signal =
      timeoutMs === undefined ? ctx.signal : AbortSignal.any([ctx.signal, AbortSignal.timeout(timeoutMs)]);
    const moves = plan.map((p, i) => ({ ...p, source: node, runId, index: i, total: plan.length }));
    const results = await pool(moves, parallel, (m) => moveOne(ctx, m, requestFor(ctx, m), signal));
    summarize(ctx, node, results);
    if (ctx.signal.aborted) return 'interrupted';
    return worst(results.map((r) => r.outcome));
  },
};

/** What names each field of a migrate request in `haul evacuate`'s command line (the rest as haul migrate's). */
const evacuateFlagOf: Readonly<Record<string, string>> = { ...flagOfField, source: 'NODE' };

function targetsOf(ctx: Context, node: string): string[] {
  const targets = ctx.args
    .str('to')!
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  if (targets.length === 0) throw new UsageError('--to names no node', 'evacuate');
  if (targets.includes(node)) throw new UsageError(`--to names ${node}, the node to empty`, 'evacuate');
  return [...new Set(targets)];
}

/** The CTs the node's agent last reported running; a node without a fresh heartbeat is refused (its CTs are unknown). */
async function runningCts(ctx: Context, node: string): Promise<string[]> {
  const kv = await openBucket(await ctx.nc(), buckets.nodes);
  const e = await kv.get(node);
  if (!e || e.operation !== 'PUT')
    throw new CliError('rejected', `no node agent has reported for ${node}: which CTs run there is unknown`);
  const hb = decodeJson(e.value) as NodeHeartbeat;
  const age = Date.now() - Date.parse(hb.time);
  if (age > limits.nodeStaleMs)
    throw new CliError(
      'rejected',
      `the heartbeat of ${node} is ${formatDuration(age)} old: its CTs are unknown`,
    );
  if (!hb.runningCts)
    throw new CliError('rejected', `the agent of ${node} does not report its running CTs (an older agent)`);
  return [...hb.runningCts].sort();
}

/** Each CT to the target with the fewest CTs so far (the first such target on a tie): an even, stable spread. */
export function spread(cts: readonly string[], targets: readonly string[]): { ct: string; target: string }[] {
  const load = new Map(targets.map((t) => [t, 0]));
  return cts.map((ct) => {
    const target = targets.reduce((a, b) => (load.get(b)! < load.get(a)! ? b : a));
    load.set(target, load.get(target)! + 1);
    return { ct, target };
  });
}

/** Run `work` over `items`, at most `n` at once, each result at its item's index. */
export async function pool<T, R>(
  items: readonly T[],
  n: number,
  work: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) out[i] = await work(items[i]!, i);
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}

export type Move = {
  ct: string;
  target: string;
  source: string;
  runId: string;
  index: number;
  total: number;
};

/**
 * One CT: ask (again while busy), then follow its log to the end; its result, never a throw. A failure with an outcome
 * of its own (no coordinator answers, NATS unreachable, a wait timed out) keeps it, so that the evacuation's exit
 * code says it; any other is an error.
 */
export async function moveOne(
  ctx: Context,
  m: Move,
  req: MigrateRequest,
  signal: AbortSignal,
): Promise<Result> {
  const t0 = Date.now();
  const base = { ct: m.ct, target: m.target };
  const tag = `[${m.index + 1}/${m.total}] CT ${m.ct} → ${m.target}`;
  try {
    const accepted = await askUntilAdmitted(ctx, req, signal);
    if (!accepted.ok) {
      progress(ctx, tag, { ...base, phase: 'refused', detail: accepted.detail });
      return { ...base, outcome: accepted.outcome, ms: Date.now() - t0, detail: accepted.detail };
    }
    const migrationId = accepted.migrationId;
    progress(ctx, tag, { ...base, migrationId, phase: 'accepted' });
    const end = await followOne(ctx, migrationId, signal, (phase) =>
      progress(ctx, tag, { ...base, migrationId, phase }),
    );
    progress(ctx, tag, { ...base, migrationId, phase: end.outcome, detail: end.detail ?? '' });
    return { ...base, migrationId, ms: Date.now() - t0, ...end };
  } catch (err) {
    const detail = (err as Error).message;
    const outcome = err instanceof CliError && severity.includes(err.exit) ? err.exit : 'error';
    progress(ctx, tag, { ...base, phase: outcome, detail });
    return { ...base, outcome, ms: Date.now() - t0, detail };
  }
}

function requestFor(ctx: Context, m: Move): MigrateRequest {
  const a = ctx.args;
  const req: MigrateRequest = {
    requestId: `evacuate-${m.source}-${m.runId}-${m.ct}`,
    ctid: m.ct,
    source: m.source,
    target: m.target,
  };
  const mode = a.str('mode');
  if (mode) req.mode = mode as NonNullable<MigrateRequest['mode']>;
  const budget = a.num('max-downtime-ms');
  if (budget !== undefined) req.maxDowntimeMs = budget;
  const bw = a.num('bandwidth');
  if (bw !== undefined) req.bandwidthLimitMBps = bw;
  const reason = a.str('reason');
  if (reason !== undefined) req.reason = reason;
  return req;
}

type Asked = { ok: true; migrationId: string } | { ok: false; outcome: ExitName; detail: string };

/**
 * Ask for the migration; while the answer is "busy" (another migration holds the CT or a node at its limit), ask
 * again after a growing pause: the same request id, so a request that was admitted after all is found, not doubled.
 */
async function askUntilAdmitted(ctx: Context, req: MigrateRequest, signal: AbortSignal): Promise<Asked> {
  const api = await ctx.api();
  for (let wait = retryMs.first; ; wait = Math.min(wait * 2, retryMs.max)) {
    const r = await api.migrate(req);
    if (r.ok) return { ok: true, migrationId: r.migrationId };
    const detail = `${r.error.code}: ${r.error.message}`;
    if (!busyCodes.has(r.error.code)) return { ok: false, outcome: 'rejected', detail };
    if (!(await pause(wait, signal)))
      return { ok: false, outcome: 'timeout', detail: `gave up waiting (${detail})` };
  }
}

/** Wait `ms` unless `signal` aborts first; false when it did. */
function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (v: boolean) => {
      clearTimeout(t);
      signal.removeEventListener('abort', onAbort);
      resolve(v);
    };
    const onAbort = () => done(false);
    const t = setTimeout(() => done(true), ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

type Ended = { outcome: ExitName; downtimeMs?: number; detail?: string };

/** Follow a migration's log until it ends or is stuck, calling `onPhase` as its phase changes. */
async function followOne(
  ctx: Context,
  migrationId: string,
  signal: AbortSignal,
  onPhase: (phase: string) => void,
): Promise<Ended> {
  const log = await ctx.log();
  const events: MigrationEvent[] = [];
  let s: MigrationState = initialState();
  let phase = '';
  for await (const { event } of log.follow({ migrationId, signal })) {
    events.push(event);
    s = evolve(s, event);
    const now = projectStatus(s, 0)?.phase;
    if (now && now !== phase && !isTerminalEvent(event)) onPhase((phase = now));
    if (isTerminalEvent(event)) return endOf(events);
    if (event.type === 'MigrationStuck' && (await stillStuck(ctx, migrationId)))
      return { outcome: 'stuck', detail: event.data.reason };
  }
  return ctx.signal.aborted
    ? { outcome: 'error', detail: 'interrupted; the migration goes on' }
    : { outcome: 'timeout', detail: 'gave up waiting; the migration goes on' };
}

/**
 * How a migration ended, from its log up to its terminal event: the outcome as haul migrate and haul wait classify
 * it (outcomeOf: over budget, rejected by preflight, …), the downtime once completed, and why when not plainly so.
 */
export function endOf(events: readonly MigrationEvent[]): Ended {
  const end = events.at(-1);
  const outcome = outcomeOf(events) ?? 'error';
  if (end?.type === 'MigrationRolledBack') return { outcome, detail: end.data.reason };
  if (end?.type !== 'MigrationCompleted') return { outcome, detail: 'the log has not ended' };
  const over = overBudget(events);
  return {
    outcome,
    ...(end.data.stats.downtimeMs !== undefined ? { downtimeMs: end.data.stats.downtimeMs } : {}),
    ...(over ? { detail: overBudgetWords(over) } : {}),
  };
}

async function stillStuck(ctx: Context, migrationId: string): Promise<boolean> {
  const r = await (await ctx.api()).status(migrationId);
  return r.ok && r.status?.phase === 'stuck';
}

type Progress = { ct: string; target: string; migrationId?: string; phase: string; detail?: string };

/** One line as a CT's migration is accepted, changes phase and ends (--json: an EvacuationProgress object). */
export function progress(ctx: Context, tag: string, p: Progress): void {
  if (ctx.json) ctx.out.json({ type: 'EvacuationProgress', ...p });
  else
    ctx.out.line(
      `${tag}${p.migrationId ? ` ${p.migrationId}` : ''}: ${p.phase}${p.detail ? ` (${p.detail})` : ''}`,
    );
}

/** The table of every CT and a last line: how many left the node, how many of them over their downtime budget. */
export function summarize(ctx: Context, node: string, results: readonly Result[]): void {
  if (ctx.json) {
    ctx.out.json({ type: 'EvacuationSummary', node, results });
    return;
  }
  ctx.out.line('');
  ctx.out.table(
    results.map((r) => ({
      ct: r.ct,
      target: r.target,
      migration: r.migrationId ?? '-',
      outcome: r.outcome,
      duration: formatDuration(r.ms),
      downtime: formatDuration(r.downtimeMs),
      detail: r.detail ?? '',
    })),
    columns,
  );
  const left = results.filter((r) => moved.has(r.outcome)).length;
  const over = results.filter((r) => r.outcome === 'overBudget').length;
  ctx.out.line(
    `${left} of ${results.length} CTs moved off ${node}${over ? ` (${over} over the downtime budget)` : ''}`,
  );
}
