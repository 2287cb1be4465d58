import type { FollowOptions } from '@haul/bus';
import { isTerminalEvent } from '@haul/schemas';
import { jsonFlag, type Command } from '../command.ts';
import { UsageError } from '../errors.ts';
import { formatEvent } from '../format.ts';

export const events: Command = {
  name: 'events',
  summary: 'print the event log (all migrations or one), or follow it',
  description: `Print the event log (JetStream stream HAUL_EVENTS) from its start, a sequence or a time, up to its end as
it is when the command starts, and exit. With -f, keep following it live: with --migration until that
migration's terminal event (MigrationCompleted or MigrationRolledBack), else until Ctrl-C.`,
  positionals: [],
  flags: {
    follow: { kind: 'boolean', short: 'f', help: 'keep following the log as events are appended' },
    migration: { kind: 'string', value: 'ID', help: 'only the events of this migration' },
    since: {
      kind: 'string',
      value: 'TIME',
      help: 'start at this time (ISO 8601, e.g. 2026-11-25T19:00:00Z)',
    },
    'from-seq': { kind: 'int', value: 'N', help: 'start at this stream sequence' },
    timeout: {
      kind: 'duration',
      value: 'DURATION',
      help: 'with -f: stop after DURATION (500ms, 30s, 5m, 1h)',
      default: 'none',
    },
    ...jsonFlag,
  },
  examples: [
    'haul events --migration m-3f9a04c1d2b7e8a90c1d2e3f',
    'haul events -f --migration m-3f9a04c1d2b7e8a90c1d2e3f --timeout 10m',
    'haul events --since 2026-11-25T19:00:00Z --json | jq -r .type',
  ],
  exits: ['completed', 'noCoordinator', 'timeout'],
  async run(ctx) {
    const a = ctx.args;
    const follow = a.bool('follow');
    if (a.has('timeout') && !follow) throw new UsageError('--timeout only applies with -f', 'events');
    if (a.has('since') && a.has('from-seq'))
      throw new UsageError('--since and --from-seq exclude each other', 'events');
    const timeout = follow && a.has('timeout') ? AbortSignal.timeout(a.ms('timeout')!) : undefined;
    const opts: FollowOptions = {
      signal: timeout ? AbortSignal.any([ctx.signal, timeout]) : ctx.signal,
      toEnd: !follow,
    };
    const migrationId = a.str('migration');
    if (migrationId) opts.migrationId = migrationId;
    if (a.has('from-seq')) opts.fromSeq = a.num('from-seq')!;
    if (a.has('since')) opts.since = timeOf(a.str('since')!);
    for await (const s of (await ctx.log()).follow(opts)) {
      if (ctx.json) ctx.out.json({ seq: s.seq, ...s.event });
      else ctx.out.line(formatEvent(s.event, s.seq));
      // Following one migration ends with its end; a read to the end of the log prints what follows it too (its seal).
      if (follow && migrationId && isTerminalEvent(s.event)) return 'completed';
    }
    if (timeout?.aborted && !ctx.signal.aborted) {
      ctx.say(`haul: stopped following after ${a.str('timeout')}`);
      return 'timeout';
    }
    return 'completed';
  },
};

/**
 * An ISO 8601 date or time (2026-11-25, 2026-11-25T19:00:00Z, …). JavaScript's Date takes far more ("10" is October
 * 2001): a number meant as a duration, as `haul web --since` takes, would read the whole log without a word.
 */
function timeOf(s: string): Date {
  const d = new Date(s);
  if (
    !/^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|[+-][0-9]{2}:?[0-9]{2})?)?$/.test(
      s,
    ) ||
    Number.isNaN(d.getTime())
  )
    throw new UsageError(
      `--since: ${JSON.stringify(s)} is not an ISO 8601 time (e.g. 2026-11-25T19:00:00Z or 2026-11-25)`,
      'events',
    );
  return d;
}
