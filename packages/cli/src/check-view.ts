import type {
  CheckAnswered,
  CheckReply,
  DowntimePrediction,
  PredictionInput,
  PredictionInputs,
} from '@haul/schemas';
import { isCeiling } from '@haul/domain';
import type { Context } from './command.ts';
import type { ExitName } from './exit-codes.ts';
import { formatDuration, type Column } from './output.ts';

const gb = (b: number | undefined) => (b === undefined ? '-' : `${(b / 1e9).toFixed(2)} GB`);
const mbps = (b: number) => `${(b / 1e6).toFixed(0)} MB/s`;
const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;

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
  printDowntime(ctx, r.downtime);
}

const inputColumns: readonly Column[] = [
  { key: 'input', header: 'INPUT' },
  { key: 'value', header: 'VALUE', align: 'right' },
  { key: 'from', header: 'FROM', shrink: true },
];

/** What each input of the prediction is, for people, in the order the model uses them. */
const inputNames: readonly [keyof PredictionInputs, string, (v: number) => string][] = [
  ['memoryBytes', 'resident memory', mb],
  ['dirtyPagesPerSec', 'dirty rate', (v) => `${v} pages/s`],
  ['iterationMs', 'pre-dump window', formatDuration],
  ['dumpedBytes', 'final dump', mb],
  ['dumpBytesPerSec', 'dump speed', mbps],
  ['linkBytesPerSec', 'link', mbps],
  ['frozenDiskBytes', 'frozen disk pass', mb],
  ['restoreBytesPerSec', 'restore speed', mbps],
];

/**
 * The predicted downtime and how it was derived: its basis (`history`: all measured or inspected; `estimate`: some
 * input assumed, named), the note, then each input with where it came from; `at most` when a ceiling (isCeiling).
 */
export function printDowntime(ctx: Context, d: DowntimePrediction): void {
  if (d.predictedMs === undefined || !d.inputs || !d.basis) {
    ctx.out.line(`downtime: no prediction (${d.note})`);
    return;
  }
  const inputs = d.inputs;
  const at = isCeiling(inputs) ? 'at most ' : '';
  const assumed = inputNames.filter(([key]) => inputs[key]?.from === 'assumed').map(([, name]) => name);
  const what = assumed.length ? `${d.basis}, assumed: ${assumed.join(', ')}` : d.basis;
  ctx.out.line(`downtime: ${at}~${formatDuration(d.predictedMs)} (${what})`);
  ctx.out.line(`  ${d.note}`);
  const rows = inputNames.flatMap(([key, name, show]) => {
    const i = inputs[key];
    return i ? [{ input: name, value: show(i.value), from: fromText(key, i) }] : [];
  });
  ctx.out.table(rows, inputColumns);
}

/** Where one input came from: inspected now, measured by which migration, or assumed (and why). */
function fromText(key: keyof PredictionInputs, i: PredictionInput): string {
  const capped = i.cappedByRequest ? '--bandwidth limit; ' : '';
  switch (i.from) {
    case 'inspected':
      return key === 'dumpedBytes' ? 'inspected now (the whole resident memory)' : 'inspected now';
    case 'measured':
      return `${capped}measured by ${i.migrationId ?? '?'} (CT ${i.ctid ?? '?'}, ${i.source ?? '?'} → ${i.target ?? '?'})`;
    case 'assumed':
      return `${capped}assumed${assumedWhy[key] ? `: ${assumedWhy[key]}` : ''}`;
  }
}

const assumedWhy: Partial<Record<keyof PredictionInputs, string>> = {
  dumpedBytes: 'every resident page dirtied (no dirty rate measured: a ceiling)',
  frozenDiskBytes: 'one converged live pass per local disk',
  linkBytesPerSec: 'no migration between these nodes measured it',
  dumpBytesPerSec: 'no migration from this source measured it',
  restoreBytesPerSec: 'no migration to this target measured it',
};
