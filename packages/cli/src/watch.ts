import { isTerminalEvent, type MigrationEvent } from '@haul/schemas';
import type { Context } from './command.ts';
import type { ExitName } from './exit-codes.ts';
import { envelopeValidators } from './envelope-validators.ts';
import { followTransfers } from './follow.ts';
import { formatStats } from './format.ts';
import { applyEvent, applyReport, newLiveView, statusLine } from './live-view.ts';
import { stuckLine } from './operator.ts';
import { outcomeOf, overBudget, overBudgetWords } from './outcome.ts';
import { createStatusBoard, type StatusBoard } from './status-board.ts';

/**
 * Show one migration until it ends (its terminal event), gets stuck, or the wait is given up (`timeoutMs`, Ctrl-C):
 * the live view for people (log lines and a status line, see status-board.ts), every event and transfer report as
 * a JSON line with --json. Returns the outcome to exit with.
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
  const view = newLiveView();
  const board = ctx.json ? undefined : createStatusBoard(ctx.out, (now) => statusLine(view, now));
  // The transfers' progress is beside the log (the progress bucket): followed with it, until the wait ends.
  const transfersEnd = new AbortController();
  const transfers = followTransfers(
    await ctx.nc(),
    envelopeValidators,
    migrationId,
    (p) => {
      if (!board) return ctx.out.json({ type: 'TransferProgress', data: p });
      applyReport(view, p);
      board.update();
    },
    AbortSignal.any([signal, transfersEnd.signal]),
  ).catch((err: unknown) => ctx.say(`haul: no transfer progress: ${(err as Error).message}`));
  try {
    for await (const { event } of log.follow({ migrationId, signal })) {
      events.push(event);
      if (!board) ctx.out.json(event);
      else {
        for (const l of applyEvent(view, event)) board.log(l);
        board.update();
      }
      if (isTerminalEvent(event)) {
        board?.close();
        return ended(ctx, event, events);
      }
      if (event.type === 'MigrationStuck' && (await stillStuck(ctx, migrationId, board))) return 'stuck';
    }
  } finally {
    board?.close();
    transfersEnd.abort();
    await transfers;
  }
  return gaveUp(ctx, migrationId, timeout, timeoutMs);
}

/** Ctrl-C or --timeout ended the wait, not the migration: say so, and how to pick it up again. */
function gaveUp(
  ctx: Context,
  migrationId: string,
  timeout: AbortSignal | undefined,
  timeoutMs: number | undefined,
): ExitName {
  const again = `re-attach with: haul wait ${migrationId} (or haul status ${migrationId})`;
  if (ctx.signal.aborted) {
    ctx.say(`haul: stopped following ${migrationId}; the migration goes on: ${again}`);
    return 'interrupted';
  }
  if (timeout?.aborted) {
    ctx.say(`haul: gave up waiting after ${timeoutMs} ms; the migration goes on: ${again}`);
    return 'timeout';
  }
  throw new Error(`the log of ${migrationId} ended before the migration did`);
}

function ended(ctx: Context, end: MigrationEvent, events: readonly MigrationEvent[]): ExitName {
  const outcome = outcomeOf(events) ?? 'error';
  const over = overBudget(events);
  const warning = over ? `WARNING: ${overBudgetWords(over)}` : undefined;
  if (ctx.json) {
    if (warning) ctx.say(`haul: ${warning}`);
    return outcome;
  }
  if (end.type !== 'MigrationCompleted' && end.type !== 'MigrationRolledBack') return outcome;
  ctx.out.line('');
  ctx.out.line(
    end.type === 'MigrationCompleted'
      ? `Migration succeeded${over ? ', but its downtime exceeded the budget' : ''}`
      : outcome === 'rejected'
        ? `Migration refused by preflight: ${end.data.reason}${end.data.cause ? ` (${end.data.cause.code})` : ''}`
        : `Migration rolled back: ${end.data.reason}`,
  );
  // A refusal moved nothing: no numbers to show.
  if (outcome !== 'rejected') ctx.out.line(formatStats(end.data.stats));
  // Last, where the eye lands; whole (never cut), in bold red on a terminal.
  if (warning) ctx.out.write(ctx.out.live ? `\x1b[1;31m${warning}\x1b[0m\n` : `${warning}\n`);
  return outcome;
}

/** A MigrationStuck read from the log may be history (retried since): ask the coordinator for the phase now. */
async function stillStuck(
  ctx: Context,
  migrationId: string,
  board: StatusBoard | undefined,
): Promise<boolean> {
  const r = await (await ctx.api()).status(migrationId);
  if (!r.ok || r.status?.phase !== 'stuck') return false;
  board?.close();
  if (!ctx.json) for (const l of `\nMigration ${stuckLine(r.status)}`.split('\n')) ctx.out.line(l);
  return true;
}
