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
  if (signal?.aborted) ac.abort();
  else signal?.addEventListener('abort', () => ac.abort(), { once: true });
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
