import type { CheckAnswered, CheckReply } from '@haul/schemas';
import type { Context } from './command.ts';
import type { ExitName } from './exit-codes.ts';
import { formatDuration, type Column } from './output.ts';

const gb = (b: number | undefined) => (b === undefined ? '-' : `${(b / 1e9).toFixed(2)} GB`);
const mbps = (b: number | undefined) => (b === undefined ? '-' : `${(b / 1e6).toFixed(0)} MB/s`);

const diskColumns: readonly Column[] = [
  { key: 'disk', header: 'DISK', shrink: true },
  { key: 'location', header: 'LIVES' },
  { key: 'action', header: 'MIGRATION' },
  { key: 'size', header: 'SIZE', align: 'right' },
  { key: 'why', header: 'WHY NOT SHARED', shrink: true },
];

/**
 * The answer of haul.api.check for people (or as one JSON object): the verdict, every disk and what would happen
 * to it, what would be copied and the downtime to expect. 0 when it would work, `rejected` (4) when it would not.
 */
export function showCheck(ctx: Context, reply: CheckReply): ExitName {
  if (!reply.ok) {
    const field = reply.error.field ? ` (field ${reply.error.field})` : '';
    ctx.say(`haul: rejected: ${reply.error.code}${field}: ${reply.error.message}`);
    return 'rejected';
  }
  if (ctx.json) ctx.out.json(reply);
  else printCheck(ctx, reply);
  if (reply.wouldWork) return 'completed';
  const p = reply.problem!;
  ctx.say(`haul: would be refused: ${p.code}${p.field ? ` (field ${p.field})` : ''}: ${p.message}`);
  return 'rejected';
}

function printCheck(ctx: Context, r: CheckAnswered): void {
  ctx.out.line(
    `CT ${r.ctid} ${r.source} → ${r.target} (${r.mode}): ${r.wouldWork ? 'would work' : 'would NOT work'}`,
  );
  const rows = r.disks.map((d) => ({
    disk: d.ddxml,
    location: d.location === 'shared' ? `shared ${d.sharedRoot ?? ''}`.trim() : (d.location ?? '-'),
    action: d.action,
    size: d.action === 'copied' ? gb(d.bytes) : '-',
    why: d.why ?? '',
  }));
  if (rows.length) ctx.out.table(rows, diskColumns);
  const copy = r.copy;
  ctx.out.line(
    `copied: memory ${gb(copy.memoryBytes)} (at most, once; then what the CT dirties), local disks ${gb(copy.localDiskBytes)}; target free ${gb(copy.targetFreeBytes)}`,
  );
  const d = r.downtime;
  ctx.out.line(
    d.predictedMs === undefined
      ? `downtime: no prediction (${d.note})`
      : `downtime: ~${formatDuration(d.predictedMs)} predicted (${d.note})`,
  );
  if (d.basis)
    ctx.out.line(
      `  measured: ${d.basis.dirtyPagesPerSec} pages/s dirtied, pre-dump window ${formatDuration(d.basis.iterationMs)}, dump ${mbps(d.basis.dumpBytesPerSec)}, link ${mbps(d.basis.bandwidthBytesPerSec)}${d.basis.bandwidthCappedByRequest ? ' (--bandwidth)' : ''}`,
    );
}
