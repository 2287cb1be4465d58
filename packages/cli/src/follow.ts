import type { NatsConnection } from '@nats-io/transport-node';
import { watchProgress, type EventLog } from '@haul/bus';
import { isTerminalEvent, type MigrationEvent, type TransferProgress, type Validators } from '@haul/schemas';

export type Terminal = Extract<MigrationEvent, { type: 'MigrationCompleted' | 'MigrationRolledBack' }>;

/** Follow one migration's log from its start until its terminal event, calling `onEvent` for each. */
export async function followToEnd(
  log: EventLog,
  migrationId: string,
  onEvent: (e: MigrationEvent, seq: number) => void,
  signal?: AbortSignal,
): Promise<Terminal> {
  const ac = new AbortController();
  signal?.addEventListener('abort', () => ac.abort(), { once: true });
  try {
    for await (const s of log.follow({ migrationId, signal: ac.signal })) {
      onEvent(s.event, s.seq);
      if (isTerminalEvent(s.event)) return s.event as Terminal;
    }
  } finally {
    ac.abort();
  }
  throw new Error('stopped following before the migration ended');
}

/**
 * Follow the reports of one migration's transfers (the progress bucket: they are not in the log) until `signal`
 * aborts, calling `onReport` for each. A report that only repeats the previous one of its transfer (a wait goes on)
 * is not passed on.
 */
export async function followTransfers(
  nc: NatsConnection,
  validators: Validators,
  migrationId: string,
  onReport: (p: TransferProgress) => void,
  signal: AbortSignal,
): Promise<void> {
  const last = new Map<string, string>();
  for await (const p of watchProgress(nc, validators, migrationId, signal)) {
    const { time: _time, mbPerSec: _rate, etaMs: _eta, ...what } = p;
    const key = JSON.stringify(what);
    if (last.get(p.commandId) === key) continue;
    last.set(p.commandId, key);
    onReport(p);
  }
}

const waitsFor = {
  priority: 'waits for the final-dump transfer',
  slot: 'waits for a transfer slot',
  sync: 'all sent; the receiver verifies and syncs',
} as const;

/** A transfer's report as a line of the live view: bytes, rate, ETA, or what it waits for. */
export function transferLine(p: TransferProgress, state: { phase: string }): string {
  const mb = (b: number) => (b / 1e6).toFixed(1);
  const bytes = `${mb(p.bytesDone)}/${mb(p.bytesTotal)} MB`;
  if (p.waiting) return `[${state.phase}] ${bytes}, ${waitsFor[p.waiting.reason]}`;
  return `[${state.phase}] ${bytes} at ${p.mbPerSec.toFixed(0)} MB/s, ETA ${(p.etaMs / 1000).toFixed(1)} s`;
}

/** A one-line live view: phase, iteration, pages, bytes, rate, ETA. */
export function progressLine(
  e: MigrationEvent,
  state: { iteration: number; phase: string },
): string | undefined {
  switch (e.type) {
    case 'StepIntended':
      if (e.data.step === 'preDump')
        state.phase = `pre-dump ${(state.iteration = (e.data.args as { iteration: number }).iteration)}`;
      else if (e.data.step === 'finalDump') state.phase = 'final dump (CT freezing)';
      else if (e.data.step === 'restore') state.phase = 'restore on target';
      else if (e.data.step === 'releaseSource') state.phase = 'commit';
      else if (e.data.step === 'umountSource') state.phase = 'cleanup';
      return `[${state.phase}] ${e.data.step} on ${e.data.node}`;
    case 'StepSucceeded':
      if (e.data.step === 'preDump' || e.data.step === 'finalDump') {
        const r = e.data.result as { pagesWritten: number; bytes: number; durationMs: number };
        return `[${state.phase}] ${r.pagesWritten} pages, ${(r.bytes / 1e6).toFixed(1)} MB in ${r.durationMs.toFixed(0)} ms`;
      }
      if (e.data.step === 'streamImages' || e.data.step === 'copyLocalDisk') {
        const r = e.data.result as { bytes: number; mbPerSec: number };
        return `[${state.phase}] streamed ${(r.bytes / 1e6).toFixed(1)} MB at ${r.mbPerSec.toFixed(0)} MB/s`;
      }
      return undefined;
    case 'IterationDecided':
      return `[${state.phase}] ${e.data.decision}: ${e.data.reason}`;
    case 'StepFailed':
      return `[${state.phase}] ${e.data.step} FAILED: ${e.data.error.message}`;
    case 'RollbackStarted':
      state.phase = 'rollback';
      return `[rollback] ${e.data.reason}`;
    case 'MigrationStuck':
      return `[stuck] ${e.data.reason} (haul status ${e.migrationId})`;
    case 'RetryRequested':
      return `[${state.phase}] ${e.data.action} retried by an operator`;
    case 'ActionResolved':
      return `[${state.phase}] ${e.data.action} done by an operator`;
    default:
      return undefined;
  }
}
