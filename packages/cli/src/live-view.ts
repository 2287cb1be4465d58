import {
  downtimeOf,
  errorCodes,
  evolve,
  inFlight,
  initialState,
  operatorActionOf,
  stepOf,
  stepTable,
  type MigrationState,
  type StepRecord,
} from '@haul/domain';
import type {
  DumpResult,
  HostResult,
  IterationDecidedData,
  MigrationEvent,
  StreamResult,
  TransferProgress,
} from '@haul/schemas';
import { operatorActionLine } from './operator.ts';
import { formatDuration } from './output.ts';

/**
 * What `haul migrate` and `haul wait` show of one migration: its log folded by the domain's own `evolve` (so the
 * view's phases, running steps and frozen window are the ones the coordinator decides with), plus the latest report
 * of each transfer in flight (the progress bucket). Pure: the clock comes in as `now`.
 */
export type LiveView = { state: MigrationState; transfers: Map<string, TransferProgress> };

/** The status line: `text` is shown; `key` is what it says without its numbers (a plain log prints on change). */
export type StatusLine = { text: string; key: string };

export const newLiveView = (): LiveView => ({ state: initialState(), transfers: new Map() });

/** Fold one event into the view; returns the lines it adds to the log printed above the status line. */
export function applyEvent(v: LiveView, e: MigrationEvent): string[] {
  v.state = evolve(v.state, e);
  // A transfer's report outlives its outcome in the bucket for a moment: the outcome is the truth.
  if (e.type === 'StepSucceeded' || e.type === 'StepFailed') v.transfers.delete(e.data.commandId);
  return logLines(e, v.state);
}

/** Keep a transfer's latest report, while its step is in flight (a report read late never revives it). */
export function applyReport(v: LiveView, p: TransferProgress): void {
  const key = v.state.byCommand[p.commandId];
  if (key !== undefined && v.state.steps[key]?.status === 'intended') v.transfers.set(p.commandId, p);
}

const sec = (ms: number) => `${(Math.max(0, ms) / 1000).toFixed(1)}s`;
const mb = (b: number) => (b / 1e6).toFixed(1);
const since = (iso: string, now: number) => now - Date.parse(iso);

/**
 * `CT 101 node-a→node-b 12.3s | pre-dump 2 | images 2 45.3/120.0 MB 37% 85 MB/s ETA 0.9s`: the CT and the time since
 * the request, a frozen (or stopped) timer from the freeze's intent while the CT is down, where the migration is,
 * and the step in flight with its transfer's bytes, rate and ETA or its own running time.
 */
export function statusLine(v: LiveView, now: number): StatusLine {
  const s = v.state;
  const r = s.request;
  if (!r) return { text: 'waiting for the migration to be requested', key: 'requested' };
  const head = `CT ${r.ctid} ${r.source}→${r.target}`;
  const phase = phaseWord(s);
  const down = downtimeOf(s);
  const timer =
    down && !down.until
      ? `${r.mode === 'live' ? 'FROZEN' : 'STOPPED'} ${sec(since(down.since, now))}`
      : undefined;
  const act = activity(v, now);
  // The time so far beside the CT: a terminal cuts the line's end, where the details are.
  const total = s.requestedAt ? ` ${sec(since(s.requestedAt, now))}` : '';
  const parts = [head + total, ...(timer ? [timer] : []), phase, ...(act ? [act.text] : [])];
  return { text: parts.join(' | '), key: [phase, timer ? 'down' : '', act?.key ?? ''].join('|') };
}

/** The phase in words: the pre-dump iteration, the freeze, the restore, the commit, cleanup, rollback, stuck. */
function phaseWord(s: MigrationState): string {
  if (s.terminal) return s.terminal;
  if (s.stuck) return `STUCK on ${s.stuck.action}`;
  if (s.rollback) return 'rollback';
  if (s.committed) return 'commit and cleanup';
  if (stepOf(s, 'restore')) return 'restore';
  if (stepOf(s, 'startTarget')) return 'start on target';
  const finalDump = stepOf(s, 'finalDump');
  if (finalDump) return finalDump.status === 'succeeded' ? 'final images' : 'final dump';
  if (stepOf(s, 'stopSource')) return 'copy';
  const dumps = Object.values(s.steps).filter((x) => x.step === 'preDump');
  if (dumps.length) return `pre-dump ${Math.max(...dumps.map((x) => Number(x.subject)))}`;
  return 'preflight';
}

/**
 * The step in flight to show: a transfer whose bytes move, else one that waits on purpose, else the step intended
 * last; "+N" for the others.
 */
function activity(v: LiveView, now: number): { text: string; key: string } | undefined {
  const running = inFlight(v.state).sort((a, b) => b.order - a.order);
  if (!running.length) return undefined;
  const report = (x: StepRecord) => v.transfers.get(x.command.commandId);
  const shown =
    running.find((x) => report(x) && !report(x)!.waiting) ?? running.find((x) => report(x)) ?? running[0]!;
  const more = running.length > 1 ? ` (+${running.length - 1})` : '';
  const p = v.transfers.get(shown.command.commandId);
  const name = nameOf(shown);
  if (p) return { text: `${name} ${transferText(p)}${more}`, key: shown.key };
  return {
    text: `${name} on ${shown.command.node} ${sec(since(shown.intendedAt, now))}${more}`,
    key: shown.key,
  };
}

const waitsFor = {
  priority: 'waits for the final images',
  slot: 'waits for a transfer slot',
  sync: 'all sent, the target syncs',
} as const;

/** What a transfer waits for: a wait for the target's work before every byte was sent is its read-back, to resume. */
function waitText(p: TransferProgress): string {
  const reason = p.waiting!.reason;
  return reason === 'sync' && p.bytesDone < p.bytesTotal
    ? 'the target reads back what it holds, to resume'
    : waitsFor[reason];
}

/** A transfer's bytes, %, rate and ETA, or what it waits for. */
export function transferText(p: TransferProgress): string {
  const pct = p.bytesTotal > 0 ? ` ${Math.floor((100 * p.bytesDone) / p.bytesTotal)}%` : '';
  const bytes = `${mb(p.bytesDone)}/${mb(p.bytesTotal)} MB${pct}`;
  if (p.waiting) return `${bytes}, ${waitText(p)}`;
  return `${bytes} ${p.mbPerSec.toFixed(0)} MB/s ETA ${sec(p.etaMs)}`;
}

/** A step as people name it: "images 2", "final images", "disk 1", "restore", "snapshotOrigin 0". */
function nameOf(r: StepRecord): string {
  if (r.step === 'streamImages') return r.subject === 'final' ? 'final images' : `images ${r.subject}`;
  if (r.step === 'copyLocalDisk') return `disk ${r.subject}`;
  if (r.step === 'preDump') return `pre-dump ${r.subject}`;
  return r.subject === '-' ? r.step : `${r.step} ${r.subject}`;
}

/**
 * The label a step's lines carry: the phase the step belongs to, from the step itself, so that a stream of pre-dump
 * 1 that ends during pre-dump 2 is still shown under pre-dump 1.
 */
function labelOf(r: StepRecord, s: MigrationState): string {
  const live = s.request?.mode === 'live';
  switch (r.step) {
    case 'preflightSource':
    case 'preflightTarget':
      return 'preflight';
    case 'preDump':
      return `pre-dump ${r.subject}`;
    case 'streamImages':
      return r.subject === 'final' ? 'final dump' : `pre-dump ${r.subject}`;
    case 'finalDump':
      return 'final dump';
    case 'restore':
      return 'restore';
    case 'releaseSource':
      return 'commit';
    default: {
      const kind = stepTable[r.step].kind;
      if (kind === 'forward') return live ? 'frozen' : 'restart';
      return kind === 'compensation' ? 'rollback' : 'cleanup';
    }
  }
}

/** The lines an event adds to the log above the status line (none for most: the status line shows them). */
function logLines(e: MigrationEvent, s: MigrationState): string[] {
  const rec = (commandId: string) => {
    const key = s.byCommand[commandId];
    return key === undefined ? undefined : s.steps[key];
  };
  switch (e.type) {
    case 'StepSucceeded': {
      const r = rec(e.data.commandId);
      return r ? succeeded(r, s) : [];
    }
    case 'StepFailed': {
      const r = rec(e.data.commandId);
      const what = r ? `[${labelOf(r, s)}] ${nameOf(r)}` : `[${e.data.step}]`;
      // An agent's word after the coordinator's give-up: no second failure, the step never began there.
      if (e.data.error.code === errorCodes.notRun) return [`${what} never ran: ${e.data.error.message}`];
      return [`${what} FAILED: ${e.data.error.code} ${e.data.error.message}`];
    }
    case 'IterationDecided':
      return [`[pre-dump ${e.data.iteration}] ${decision(e.data)}`];
    case 'RollbackStarted':
      return [`[rollback] ${e.data.reason}`];
    case 'ResumedOnSource':
      return [`[rollback] the CT runs again on the source (${e.data.reason})`];
    case 'CancelRequested':
      return operatorActionOf(e).map((a) => `[cancel] ${operatorActionLine(a)}`);
    case 'CommandRejected':
      return [`[rejected] ${e.data.error.code} ${e.data.error.message}`];
    case 'MigrationStuck':
      return [`[stuck] ${e.data.reason} (haul status ${e.migrationId})`];
    case 'RetryRequested':
    case 'ActionResolved':
      return operatorActionOf(e).map((a) => `[operator] ${operatorActionLine(a)}`);
    default:
      return [];
  }
}

function succeeded(r: StepRecord, s: MigrationState): string[] {
  const label = `[${labelOf(r, s)}]`;
  switch (r.step) {
    case 'preDump':
    case 'finalDump': {
      const d = r.result as DumpResult;
      const frozen = r.step === 'finalDump' ? '; the CT is frozen' : '';
      return [
        `${label} ${d.pagesWritten} pages, ${mb(d.bytes)} MB in ${d.durationMs.toFixed(0)} ms${frozen}`,
      ];
    }
    case 'streamImages':
    case 'copyLocalDisk': {
      const t = r.result as StreamResult;
      return [
        `${label} ${nameOf(r)}: ${mb(t.bytes)} MB in ${formatDuration(t.durationMs)} (${t.mbPerSec.toFixed(0)} MB/s)`,
      ];
    }
    case 'restore':
    case 'startTarget': {
      const down = downtimeOf(s);
      const took = (r.result as HostResult).restoreUs;
      const downFor = down?.until
        ? `, down ${formatDuration(Date.parse(down.until) - Date.parse(down.since))}`
        : '';
      const restore = took === undefined ? '' : ` (restore ${formatDuration(took / 1000)})`;
      return [`${label} the CT runs on ${r.command.node}${restore}${downFor}`];
    }
    default:
      return [];
  }
}

const reasons: Record<IterationDecidedData['reason'], string> = {
  'small-dump': 'few pages left',
  'iteration-grows': 'the dirty set grew',
  'too-many-iterations': 'the iteration limit',
  'fits-budget': 'the predicted freeze fits the budget',
  'budget-never-fits': 'the predicted freeze never fits the budget',
  continue: 'not converged yet',
};

/** "another pre-dump: 1234 pages (+12%)", "final dump: few pages left (52 pages)", "abort: …". */
function decision(d: IterationDecidedData): string {
  const n = d.numbers;
  const growth =
    n.growthPercent === undefined ? '' : `, ${n.growthPercent > 0 ? '+' : ''}${n.growthPercent}%`;
  const budget =
    n.predictedFrozenMs !== undefined && n.maxDowntimeMs !== undefined
      ? `, predicted freeze ${formatDuration(n.predictedFrozenMs)} against ${formatDuration(n.maxDowntimeMs)}`
      : '';
  const numbers = `(${n.pagesWritten} pages${growth}${budget})`;
  if (d.decision === 'continue') return `another pre-dump: ${reasons[d.reason]} ${numbers}`;
  if (d.decision === 'final-dump') return `final dump: ${reasons[d.reason]} ${numbers}`;
  return `abort: ${reasons[d.reason]} ${numbers}`;
}
