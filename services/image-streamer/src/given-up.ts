import { setTimeout as delay } from 'node:timers/promises';
import type { EventLog, Logger } from '@haul/bus';
import { isTerminalEvent, type MigrationEvent } from '@haul/schemas';

/** The coordinator stopped waiting for this transfer (it timed out or stalled): its outcome is in the log already. */
export class TransferGivenUp extends Error {
  readonly code: string;
  constructor(commandId: string, code: string) {
    super(`${commandId} was given up by the coordinator (${code}): stopped`);
    this.name = 'TransferGivenUp';
    this.code = code;
  }
}

const outcomeCode = (e: MigrationEvent, commandId: string): string | undefined => {
  if (e.type === 'StepFailed' && e.data.commandId === commandId) return e.data.error.code;
  if (e.type === 'StepSucceeded' && e.data.commandId === commandId) return 'done elsewhere';
  return isTerminalEvent(e) ? e.type : undefined;
};

/**
 * Follow the migration's log from just after `afterSeq` (what the streamer read before it started the transfer) and
 * abort `signal` once it holds an outcome of this command — written by someone else: the coordinator, which gave it
 * up — or the migration's end. The transfer then stops, freeing its slot, its listener and its connection; nothing
 * more is recorded, the log already says how it ended. A broken follow is taken up again where it stopped.
 */
export function watchGivenUp(
  eventLog: EventLog,
  migrationId: string,
  commandId: string,
  afterSeq: number,
  log: Logger,
): { signal: AbortSignal; stop: () => void } {
  const given = new AbortController();
  const stopped = new AbortController();
  let next = afterSeq + 1;
  const follow = async () => {
    for await (const s of eventLog.follow({ migrationId, fromSeq: next, signal: stopped.signal })) {
      next = s.seq + 1;
      const code = outcomeCode(s.event, commandId);
      if (code !== undefined) return given.abort(new TransferGivenUp(commandId, code));
    }
  };
  void (async () => {
    while (!stopped.signal.aborted && !given.signal.aborted) {
      try {
        await follow();
      } catch (err) {
        if (stopped.signal.aborted) return;
        log.warn({ err }, 'cannot follow the log for a give-up of this transfer; following again');
      }
      await delay(1000, undefined, { signal: stopped.signal }).catch(() => {});
    }
  })();
  return { signal: given.signal, stop: () => stopped.abort() };
}

/** `p`, or a rejection with the signal's reason as soon as it aborts (p's own outcome is still handled). */
export function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
