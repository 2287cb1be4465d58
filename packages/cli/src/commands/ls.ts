import type { MigrationStatus } from '@haul/schemas';
import { jsonFlag, type Command, type Context } from '../command.ts';
import { statusesFromLog } from '../log-statuses.ts';
import { stuckLine } from '../operator.ts';
import { formatDuration, type Column, type Row } from '../output.ts';

const phases: readonly MigrationStatus['phase'][] = [
  'preflight',
  'iterating',
  'frozen',
  'restoring',
  'committed',
  'cleanup',
  'rollback',
  'stuck',
  'completed',
  'rolled-back',
  'failed',
];

export const columns: readonly Column[] = [
  { key: 'id', header: 'MIGRATION' },
  { key: 'ct', header: 'CT' },
  { key: 'source', header: 'SOURCE' },
  { key: 'target', header: 'TARGET' },
  { key: 'mode', header: 'MODE' },
  { key: 'phase', header: 'PHASE' },
  { key: 'by', header: 'BY', shrink: true },
  { key: 'duration', header: 'DURATION', align: 'right' },
  { key: 'downtime', header: 'DOWNTIME', align: 'right' },
  { key: 'updated', header: 'UPDATED', align: 'right' },
  { key: 'reason', header: 'REASON', shrink: true },
];

export const ls: Command = {
  name: 'ls',
  summary: 'list migrations, with filters',
  description: `List migrations (haul.api.list, from the status bucket) as a table: id, CT, nodes, mode, phase, who
requested it (- when unsigned), total time and downtime once ended, time since the last event, and why it
rolled back or is stuck. With --stuck, also what an operator can do about each. With --from-log, every status is
rebuilt here from the signed event log instead (a finished migration from its coordinator's seal, read as the
last message of its log; any other log folded from its events, each signature checked): no coordinator needed.`,
  positionals: [],
  flags: {
    active: { kind: 'boolean', help: 'only migrations that have not ended' },
    stuck: { kind: 'boolean', help: 'only migrations waiting for an operator (phase stuck)' },
    ct: { kind: 'string', value: 'ID', help: 'only migrations of this CT' },
    node: { kind: 'string', value: 'NODE', help: 'only migrations from or to this node' },
    phase: { kind: 'string', value: 'PHASE', help: 'only migrations in this phase', choices: phases },
    'from-log': {
      kind: 'boolean',
      help: 'rebuild the statuses from the signed event log instead of asking the coordinator',
    },
    ...jsonFlag,
  },
  examples: [
    'haul ls --active',
    'haul ls --node node-a --phase rolled-back',
    'haul ls --stuck --json | jq -r .migrationId',
    'haul ls --from-log --phase completed',
  ],
  exits: ['completed', 'noCoordinator', 'timeout'],
  async run(ctx) {
    const a = ctx.args;
    const all = a.bool('from-log')
      ? await fromLog(ctx)
      : await fromCoordinator(ctx, a.bool('active') || a.bool('stuck'));
    const ended = (s: MigrationStatus) => s.phase === 'completed' || s.phase === 'rolled-back';
    const keep = (s: MigrationStatus) =>
      (!a.bool('active') || !ended(s)) &&
      (!a.bool('stuck') || s.phase === 'stuck') &&
      (!a.str('ct') || s.ctid === a.str('ct')) &&
      (!a.str('node') || s.source === a.str('node') || s.target === a.str('node')) &&
      (!a.str('phase') || s.phase === a.str('phase'));
    if (ctx.signal.aborted) return 'interrupted';
    const list = all.filter(keep);
    if (ctx.json) for (const s of list) ctx.out.json(s);
    else {
      ctx.out.table(list.map(rowOf), columns);
      for (const s of list.filter((x) => x.stuck))
        for (const l of `${s.migrationId} ${stuckLine(s)}`.split('\n')) ctx.out.line(l);
    }
    return 'completed';
  },
};

async function fromCoordinator(ctx: Context, activeOnly: boolean): Promise<MigrationStatus[]> {
  const r = await (await ctx.api()).list(activeOnly);
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.message}`);
  return r.migrations ?? [];
}

/** Every migration's status from the log, oldest update first (as haul.api.list answers). */
async function fromLog(ctx: Context): Promise<MigrationStatus[]> {
  const { statuses } = await statusesFromLog(await ctx.log(), 'seals', { signal: ctx.signal });
  return statuses.sort((a, b) => a.updatedAt.localeCompare(b.updatedAt));
}

/** One migration's row; `by` is who requested it (- when the request was unsigned). */
export function rowOf(s: MigrationStatus): Row {
  return {
    id: s.migrationId,
    ct: s.ctid,
    source: s.source,
    target: s.target,
    mode: s.mode,
    phase: s.phase,
    by: s.requestedBy ?? '-',
    duration: formatDuration(s.stats?.totalMs),
    downtime: formatDuration(s.stats?.downtimeMs),
    updated: `${formatDuration(Date.now() - Date.parse(s.updatedAt))} ago`,
    reason: s.reason ?? '',
  };
}
