import { isTerminalEvent, type MigrationEvent } from '@haul/schemas';
import type { Context } from './command.ts';
import type { ExitName } from './exit-codes.ts';
import { envelopeValidators } from './envelope-validators.ts';
import { followTransfers, progressLine, transferLine } from './follow.ts';
import { formatStats } from './format.ts';
import { stuckLine } from './operator.ts';
import { outcomeOf } from './outcome.ts';

/**
 * Show one migration until it ends (its terminal event), gets stuck, or the wait is given up (`timeoutMs`, Ctrl-C):
 * progress lines for people, every event as a JSON line with --json. Returns the outcome to exit with.
 */
export async function watchMigration(
  ctx: Context,
  migrationId: string,
  timeoutMs: number | undefined,
): Promise<ExitName> {
  const log = await ctx.log();
  const timeout = timeoutMs === undefined ? undefined : AbortSignal.timeout(timeoutMs);
  const signal = timeout ? AbortSignal.any([ctx.signal, timeout]) : ctx.signal;
  const events: MigrationEvent[] = [];
  const view = { iteration: 0, phase: 'preflight' };
  // The transfers' progress is beside the log (the progress bucket): followed with it, until the wait ends.
  const transfersEnd = new AbortController();
  const transfers = followTransfers(
    await ctx.nc(),
    envelopeValidators,
    migrationId,
    (p) =>
      ctx.json ? ctx.out.json({ type: 'TransferProgress', data: p }) : ctx.out.line(transferLine(p, view)),
    AbortSignal.any([signal, transfersEnd.signal]),
  ).catch((err: unknown) => ctx.say(`haul: no transfer progress: ${(err as Error).message}`));
  try {
    for await (const { event } of log.follow({ migrationId, signal })) {
      events.push(event);
      if (ctx.json) ctx.out.json(event);
      else {
        const line = progressLine(event, view);
        if (line) ctx.out.line(line);
      }
      if (isTerminalEvent(event)) return ended(ctx, event, events);
      if (event.type === 'MigrationStuck' && (await stillStuck(ctx, migrationId))) return 'stuck';
    }
  } finally {
    transfersEnd.abort();
    await transfers;
  }
  if (ctx.signal.aborted) return 'interrupted';
  if (timeout?.aborted) {
    ctx.say(
      `haul: gave up waiting after ${timeoutMs} ms; the migration goes on (haul status ${migrationId})`,
    );
    return 'timeout';
  }
  throw new Error(`the log of ${migrationId} ended before the migration did`);
}

function ended(ctx: Context, end: MigrationEvent, events: readonly MigrationEvent[]): ExitName {
  const outcome = outcomeOf(events) ?? 'error';
  if (!ctx.json && (end.type === 'MigrationCompleted' || end.type === 'MigrationRolledBack')) {
    ctx.out.line('');
    ctx.out.line(
      end.type === 'MigrationCompleted'
        ? 'Migration succeeded'
        : outcome === 'rejected'
          ? `Migration refused by preflight: ${end.data.reason}${end.data.cause ? ` (${end.data.cause.code})` : ''}`
          : `Migration rolled back: ${end.data.reason}`,
    );
    // A refusal moved nothing: no numbers to show.
    if (outcome !== 'rejected') ctx.out.line(formatStats(end.data.stats));
  }
  return outcome;
}

/** A MigrationStuck read from the log may be history (retried since): ask the coordinator for the phase now. */
async function stillStuck(ctx: Context, migrationId: string): Promise<boolean> {
  const r = await (await ctx.api()).status(migrationId);
  if (!r.ok || r.status?.phase !== 'stuck') return false;
  if (!ctx.json) for (const l of `\nMigration ${stuckLine(r.status)}`.split('\n')) ctx.out.line(l);
  return true;
}
