import type { Logger } from '@haul/bus';
import type { TransferProgress, TransferWait } from '@haul/schemas';

export type WaitReason = TransferWait['reason'];

export type ReporterOptions = {
  migrationId: string;
  commandId: string;
  node: string;
  everyMs: number;
  /** Write the report (the progress bucket); reports are written one at a time, in order. */
  publish: (report: TransferProgress) => Promise<void>;
  /** Remove the report. */
  remove: () => Promise<void>;
  log: Logger;
  now?: () => number;
};

/**
 * The latest report of one transfer, written at most every `everyMs` while its bytes move and every `everyMs` while
 * it waits on purpose — the streamer's proof of life for the coordinator's stall rule. A transfer that neither moves
 * nor waits writes nothing more: its report ages, and so does its last sign of life. A report says when bytes last
 * moved and whether (and since when) the transfer waits; the coordinator decides from that, the streamer judges
 * nothing.
 */
export function createProgressReporter(o: ReporterOptions) {
  const now = o.now ?? Date.now;
  const iso = (ms: number) => new Date(ms).toISOString();
  const started = now();
  let total = 0;
  let done = 0;
  let movedAt: number | undefined;
  let wait: { reason: WaitReason; since: number } | undefined;
  let waitedUntil: number | undefined;
  let changed = false;
  let writing: Promise<void> = Promise.resolve();
  let stopped = false;
  let written = false;

  function snapshot(): TransferProgress {
    const t = now();
    const rate = done / Math.max((t - started) / 1000, 1e-3);
    return {
      migrationId: o.migrationId,
      commandId: o.commandId,
      node: o.node,
      time: iso(t),
      bytesDone: done,
      bytesTotal: total,
      mbPerSec: rate / 1e6,
      etaMs: rate > 0 ? (Math.max(total - done, 0) / rate) * 1000 : 0,
      ...(movedAt !== undefined ? { movedAt: iso(movedAt) } : {}),
      ...(wait ? { waiting: { reason: wait.reason, since: iso(wait.since) } } : {}),
      ...(waitedUntil !== undefined ? { waitedUntil: iso(waitedUntil) } : {}),
    };
  }

  /** Write the current report after the previous write (a slow write never lets an older report land last). */
  function write(): void {
    if (stopped) return;
    changed = false;
    written = true;
    const report = snapshot();
    writing = writing
      .then(() => o.publish(report))
      .catch((err: unknown) => o.log.debug({ err }, 'progress report not written'));
  }

  const timer = setInterval(() => {
    if (changed || wait) write();
  }, o.everyMs);
  timer.unref();
  const stop = () => {
    stopped = true;
    clearInterval(timer);
  };

  return {
    /**
     * The transfer's size, once its manifest is known. Like restart(), it writes nothing by itself: a report with no
     * sign of life would replace the last one of a streamer that ran this transfer before a restart, and with it
     * the coordinator's evidence of when its bytes last moved.
     */
    sized(bytes: number): void {
      total = bytes;
    },
    /** A new connection: the bytes are counted again from what the receiver confirms. */
    restart(): void {
      done = 0;
    },
    moved(bytes: number): void {
      if (bytes <= 0) return;
      done += bytes;
      movedAt = now();
      changed = true;
    },
    get bytesDone(): number {
      return done;
    },
    /** The transfer waits on purpose from now until the returned function is called (reported at once). */
    waiting(reason: WaitReason): () => void {
      const mine = { reason, since: now() };
      wait = mine;
      write();
      return () => {
        if (wait !== mine) return;
        wait = undefined;
        waitedUntil = now();
        write();
      };
    },
    /** No more reports (the last one stays until `clear`). */
    stop,
    /** No more reports, and the last one removed: the outcome is in the log. */
    async clear(): Promise<void> {
      stop();
      if (!written) return;
      await writing;
      await o.remove().catch((err: unknown) => o.log.debug({ err }, 'progress report not removed'));
    },
  };
}

export type ProgressReporter = ReturnType<typeof createProgressReporter>;

/**
 * A sender's side of a read-back its receiver answers with its progress (the offer's answer `readingBack`): the
 * transfer waits on purpose for the receiver's work on what it holds (reason `sync`, with its bytes counted from 0
 * again) while the bytes read back grow from answer to answer. An answer that
 * shows none ends the wait, so a read-back that hangs ages like a stalled transfer and the coordinator gives it up
 * after the stall time; the next answer that shows progress waits again.
 */
export function readBackWait(report: Pick<ProgressReporter, 'waiting' | 'restart'>): {
  answered: (progress: { bytesRead: number; bytesTotal: number }) => void;
  end: () => void;
} {
  let last = -1;
  let resumed: (() => void) | undefined;
  const stopWaiting = () => {
    resumed?.();
    resumed = undefined;
  };
  return {
    answered({ bytesRead, bytesTotal }) {
      if (last < 0) report.restart(); // a new attempt: its bytes count from what the receiver confirms
      // A read-back reads at most the offer's bytes: more is no progress.
      if (bytesRead > last && bytesRead <= bytesTotal) resumed ??= report.waiting('sync');
      else stopWaiting();
      last = Math.max(last, bytesRead);
    },
    /** The offer was answered otherwise (or not at all): the wait ends, and a later read-back starts afresh. */
    end() {
      stopWaiting();
      last = -1;
    },
  };
}
