import type { NatsConnection } from '@nats-io/transport-node';
import { subjects, type EventLog, type Logger } from '@haul/bus';
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

export type GiveUpWatch = {
  /**
   * Abort the returned signal once the migration's log holds an outcome of this command after `afterSeq` (what the
   * streamer read before it started the transfer) written by someone else — the coordinator, which gave it up — or
   * the migration's end. The transfer then stops, freeing its slot, its listener and its connection; nothing more is
   * recorded, the log already says how it ended. `stop` ends the watch (the transfer ended).
   */
  watch(
    migrationId: string,
    commandId: string,
    afterSeq: number,
    log: Logger,
  ): { signal: AbortSignal; stop: () => void };
};

/**
 * Watches of transfers for a give-up: each hears the migration's new events as plain messages (a subscription on the
 * migration's subject, which JetStream stores from) and reads the log at each, so only believed events count (a
 * message heard is a wake-up, never taken as an event). A read after the subscription is registered with the server
 * covers what was appended before it, and a read after each reconnection what was appended while disconnected.
 *
 * Why not follow the log with a consumer, as before: a transfer's follow made an ordered consumer on the server
 * (and looked the stream up) for every transfer, five per migration; bench:control counted them a third of all the
 * consumers the server made. A subscription costs the server no stream state, and a read of a few new events is a
 * message get or two.
 */
export function createGiveUpWatch(nc: NatsConnection, eventLog: EventLog): GiveUpWatch {
  const checks = new Set<() => void>();
  void (async () => {
    for await (const s of nc.status()) if (s.type === 'reconnect') checks.forEach((check) => check());
  })();

  return {
    watch(migrationId, commandId, afterSeq, log) {
      const given = new AbortController();
      let stopped = false;
      let readTo = afterSeq;
      let reading = false;
      let again = false;
      let retry: NodeJS.Timeout | undefined;
      const read = async () => {
        const { events } = await eventLog.read(migrationId);
        for (const s of events) {
          if (s.seq <= readTo) continue;
          readTo = s.seq;
          const code = outcomeCode(s.event, commandId);
          if (code !== undefined) return given.abort(new TransferGivenUp(commandId, code));
        }
      };
      /** One read at a time; messages heard during it make one more read after it. */
      const check = () => {
        if (stopped || given.signal.aborted) return;
        if (reading) return void (again = true);
        reading = true;
        void (async () => {
          do {
            again = false;
            await read().catch((err: unknown) => {
              if (stopped) return;
              // Its retries spent: read again in a second, or at the next message heard, whichever comes first.
              log.warn({ err }, 'cannot read the log for a give-up of this transfer; reading again');
              clearTimeout(retry);
              retry = setTimeout(check, 1000);
            });
          } while (again && !stopped && !given.signal.aborted);
          reading = false;
        })();
      };
      const sub = nc.subscribe(subjects.events(migrationId), {
        callback: (err) => {
          // Refused (a server whose permissions predate this grant): only a reconnection reads again.
          if (err)
            log.warn(
              { err, subject: subjects.events(migrationId) },
              `cannot hear the migration's events: the streamer needs subscribe ${subjects.eventsAll} (docs/security.md); a give-up of this transfer is not noticed before it ends`,
            );
          check();
        },
      });
      checks.add(check);
      const stop = () => {
        if (stopped) return;
        stopped = true;
        clearTimeout(retry);
        checks.delete(check);
        sub.unsubscribe();
      };
      given.signal.addEventListener('abort', stop, { once: true });
      // Registered with the server once the flush returns: the read then covers every event before the subscription.
      nc.flush().then(check, check);
      return { signal: given.signal, stop };
    },
  };
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

/**
 * abortable for a promise of something to close: one that arrives after the signal aborted (the receiver connected
 * in the moment the transfer was given up) is destroyed, since nobody will take it.
 */
export function abortableTaking<T extends { destroy(): unknown }>(
  p: Promise<T>,
  signal: AbortSignal | undefined,
): Promise<T> {
  return abortable(p, signal).catch((err: unknown) => {
    void p.then(
      (late) => late.destroy(),
      () => undefined,
    );
    throw err;
  });
}
