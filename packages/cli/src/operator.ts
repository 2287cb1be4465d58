import type { OperatorAction } from '@haul/domain';
import type { MigrationStatus, StatusOk, StatusReply } from '@haul/schemas';
import type { Context } from './command.ts';
import type { ExitName } from './exit-codes.ts';

/** What a stuck migration waits on, and what an operator may do about it. */
export function stuckLine(s: MigrationStatus): string {
  const st = s.stuck;
  if (!st) return '';
  const err = st.lastError ? `  last error ${st.lastError.code}: ${st.lastError.message}` : '';
  const what = st.resolvable
    ? `haul retry ${s.migrationId} | haul resolve ${s.migrationId} --action ${st.action}`
    : `haul retry ${s.migrationId}`;
  return `stuck on ${st.action} (${st.plan}, ${st.attempts} attempts since ${st.since})${err}\n  then: ${what}`;
}

/** Who a request names as its sender: its verified identity, or that it was not signed. */
const sender = (by: string | undefined): string => by ?? 'an unknown identity (unsigned request)';

const asked = { cancel: 'cancelled', retry: 'retried', resolve: 'resolved' } as const;

/**
 * One cancel, retry or resolve, who asked for it and why: "cancelled by ops: window over", "retried mergeOrigin:1 by
 * ops: disk fixed" (`haul status` and the live view of `haul migrate` / `haul wait`).
 */
export const operatorActionLine = (a: OperatorAction): string =>
  `${asked[a.kind]}${a.action ? ` ${a.action}` : ''} by ${sender(a.requestedBy)}: ${a.reason}`;

/**
 * Who asked for the migration and why, then each cancel, retry and resolve after it, in log order:
 * "requested by scheduler: rebalance", "cancelled by ops: window over", "retried mergeOrigin:1 by ops: disk fixed".
 */
export function whoAskedLines(s: MigrationStatus): string[] {
  const lines: string[] = [];
  if (s.requestedBy !== undefined || s.requestReason !== undefined)
    lines.push(`requested by ${sender(s.requestedBy)}${s.requestReason ? `: ${s.requestReason}` : ''}`);
  for (const a of s.operatorActions ?? []) lines.push(operatorActionLine(a));
  return lines;
}

/** The coordinator's status of migration `id`; undefined, the reason said, when it does not know it. */
export async function knownStatus(ctx: Context, id: string): Promise<StatusOk | undefined> {
  const r = await (await ctx.api()).status(id);
  if (r.ok) return r;
  ctx.say(`haul: ${r.error.code}: ${r.error.message}`);
  return undefined;
}

/** Report the answer to `haul retry` / `haul resolve`: completed when accepted, rejected (with the code) if not. */
export function operatorReply(ctx: Context, cmd: 'retry' | 'resolve', id: string, r: StatusReply): ExitName {
  if (!r.ok) {
    const field = r.error.field ? ` (field ${r.error.field})` : '';
    ctx.say(`haul: ${cmd} refused: ${r.error.code}${field}: ${r.error.message}`);
    return 'rejected';
  }
  if (ctx.json) ctx.out.json(r.status);
  else ctx.out.line(`${id}: ${r.status?.phase ?? 'accepted'}`);
  return 'completed';
}
