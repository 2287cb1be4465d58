import { operatorActionOf, withRequestDefaults } from '@haul/domain';
import type { DowntimeWindowStats, MigrationEvent, MigrationStats } from '@haul/schemas';
import { operatorActionLine } from './operator.ts';

const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
const sec = (ms: number | undefined) => (ms === undefined ? '-' : `${(ms / 1000).toFixed(2)} s`);

/** One event as a line a person reads while tailing the log. */
export function formatEvent(e: MigrationEvent, seq?: number): string {
  const t = e.time.slice(11, 23);
  const who = `${e.actor.node}/${e.actor.service}`;
  const head = `${t} ${seq !== undefined ? String(seq).padStart(5) + ' ' : ''}${e.migrationId} ${who.padEnd(28)} ${e.type.padEnd(18)}`;
  const detail = eventDetail(e);
  return detail ? `${head} ${detail}` : head;
}

/** What an event says beyond its time, actor and type (the log line's tail, the web view's timeline text). */
export function eventDetail(e: MigrationEvent): string {
  switch (e.type) {
    case 'MigrationRequested':
      return `CT ${e.data.request.ctid} ${e.data.request.source} → ${e.data.request.target} (${withRequestDefaults(e.data.request).mode})`;
    case 'StepIntended':
      return `${e.data.step} → ${e.data.node} [${e.data.commandId.split(':').slice(1).join(':')}]`;
    case 'StepSucceeded': {
      const r = e.data.result as unknown as Record<string, unknown>;
      const extra =
        e.data.step === 'preDump' || e.data.step === 'finalDump'
          ? `${String(r['pagesWritten'])} pages written, ${typeof r['pagesSkipped'] === 'number' ? `${r['pagesSkipped']} skipped, ` : ''}${mb(Number(r['bytes']))}`
          : e.data.step === 'streamImages' || e.data.step === 'copyLocalDisk'
            ? `${mb(Number(r['bytes']))} at ${Number(r['mbPerSec']).toFixed(0)} MB/s`
            : Array.isArray(r['actions'])
              ? (r['actions'] as string[]).join('; ')
              : '';
      return `${e.data.step}${e.data.reconciled ? ' (reconciled)' : ''}${extra ? `: ${extra}` : ''}`;
    }
    case 'StepFailed':
      return `${e.data.step}: ${e.data.error.code} ${e.data.error.message}`;
    case 'IterationDecided':
      return `after pre-dump ${e.data.iteration}: ${e.data.decision} (${e.data.reason}; ${e.data.numbers.pagesWritten} pages${e.data.numbers.growthPercent !== undefined ? `, ${e.data.numbers.growthPercent}%` : ''})`;
    case 'StreamProgress':
      return `${mb(e.data.bytesDone)} / ${mb(e.data.bytesTotal)} at ${e.data.mbPerSec.toFixed(0)} MB/s, ETA ${sec(e.data.etaMs)}`;
    case 'RollbackStarted':
      return e.data.reason;
    case 'MigrationRolledBack':
      return e.data.reason;
    case 'MigrationCompleted':
      return `total ${sec(e.data.stats.totalMs)}, downtime ${sec(e.data.stats.downtimeMs)}`;
    case 'ResumedOnSource':
      return e.data.reason;
    case 'CancelRequested':
    case 'RetryRequested':
    case 'ActionResolved':
      // Who asked and why, in the words of haul status and the live view.
      return operatorActionOf(e).map(operatorActionLine).join('; ');
    case 'CommandRejected':
      return `${e.data.error.code} ${e.data.error.message}`;
    case 'RestoreStarted':
      return 'fence won by the target';
    case 'MigrationSealed':
      return `${e.data.events} messages up to sequence ${e.data.upToSeq} vouched for, ${e.data.digest.slice(0, 19)}…`;
    case 'MigrationStuck':
      return `${e.data.reason}${e.data.lastError ? `; last error ${e.data.lastError.code} ${e.data.lastError.message}` : ''}`;
    default:
      // A type this CLI does not know (written by a newer service): its envelope is all it can show.
      return '';
  }
}

/** P.Haul's closing numbers, and more. */
export function formatStats(s: MigrationStats): string {
  const lines = [
    `   total time is ~${sec(s.totalMs)}`,
    `  frozen time is ~${sec(s.frozenMs)} (${JSON.stringify(s.iterations.map((i) => (i.frozenUs === undefined ? '-' : (i.frozenUs / 1e6).toFixed(2))))})`,
    `     downtime is ~${sec(s.downtimeMs)}`,
    ` restore time is ~${sec(s.restoreMs)}`,
    `img sync time is ~${sec(s.imageSyncMs)}`,
    `     streamed    ${mb(s.bytesStreamed ?? 0)}`,
    '  iteration  pages written  pages skipped        bytes   dump ms  stream ms',
    ...s.iterations.map(
      (i) =>
        `  ${(i.final ? 'final' : String(i.iteration)).padStart(9)}  ${String(i.pagesWritten).padStart(13)}  ${String(i.pagesSkipped ?? '-').padStart(13)}  ${mb(i.bytes).padStart(11)}  ${i.durationMs.toFixed(0).padStart(8)}  ${(i.streamMs ?? 0).toFixed(0).padStart(9)}`,
    ),
    ...(s.downtimeWindow ? formatWindow(s.downtimeWindow) : []),
  ];
  return lines.join('\n');
}

/** Where the downtime went: each step's host time (tools, transfers) and the control overhead around it. */
function formatWindow(w: DowntimeWindowStats): string[] {
  const ms = (v: number) => v.toFixed(1).padStart(9);
  const p = w.criticalPath;
  return [
    `  downtime window ${w.windowMs.toFixed(0)} ms = ${p.hostMs.toFixed(0)} ms in host tools and transfers + ${p.overheadMs.toFixed(0)} ms control overhead, on its critical path`,
    `    (${p.steps.join(' → ')})`,
    `  control overhead per step: median ${w.overheadMedianMs.toFixed(1)} ms`,
    '  step                   node        dispatch     queued  intent→outcome  tool/transfer   overhead  (ms)',
    ...w.steps.map(
      (r) =>
        `  ${(r.key + (r.ok ? '' : ' failed')).padEnd(22)} ${r.node.padEnd(10)} ${ms(r.dispatchMs)}  ${ms(r.queuedMs)}  ${ms(r.spanMs).padStart(14)}  ${ms(r.hostMs).padStart(13)}  ${ms(r.overheadMs)}`,
    ),
  ];
}
