import { migrationLogger, type Logger } from '@haul/bus';
import type { HostResult } from '@haul/schemas';
import { errorCodes } from '@haul/domain';
import { StepError } from './context.ts';
import type { HeldDumps, HeldMeta } from './held-dumps.ts';

/** After a failed resume (bus unreachable, a disk not restored), the next try comes this much later. */
const retryMs = 1000;

export type LeaseDeps = {
  held: HeldDumps;
  log: Logger;
  /** Resume the CT on the source after winning the fence (shared disks restored first, then the thaw). */
  resume(meta: HeldMeta, mlog: Logger): Promise<HostResult>;
  /** Run as the only host action of the moment of its migration and of its CT (never beside a step of either). */
  exclusive(meta: HeldMeta, fn: () => Promise<void>): Promise<void>;
};

/**
 * The dead-man switch of a frozen CT: without a decision within its lease, the source resumes the CT if the fence
 * allows. Whatever stops the resume keeps the CT frozen and the lease is tried again: the target restore started
 * (the CT may run there), NATS cannot be reached (the fence cannot be won), or a shared disk could not be restored
 * (thawing would let the CT write a copy the descriptor does not name) — safety over availability.
 */
export function createLeases(deps: LeaseDeps) {
  const { held, log } = deps;
  const timers = new Map<string, NodeJS.Timeout>();
  let stopped = false;

  function arm(meta: HeldMeta | undefined, delayMs?: number): void {
    if (!meta || stopped) return;
    const frozenAt = Date.parse(meta.frozenAt ?? new Date().toISOString());
    // frozenAt is a wall-clock time, maybe of an agent before a restart: a clock set back since never holds the CT
    // longer than its lease from now (and never past setTimeout's range).
    const due = delayMs ?? Math.min(meta.leaseMs, Math.max(0, frozenAt + meta.leaseMs - Date.now()));
    clearTimeout(timers.get(meta.migrationId));
    timers.set(
      meta.migrationId,
      setTimeout(() => void expired(meta), due),
    );
  }

  async function expired(meta: HeldMeta): Promise<void> {
    timers.delete(meta.migrationId);
    await deps.exclusive(meta, async () => {
      const mlog = migrationLogger(log, meta.migrationId, { ctid: meta.ctid });
      if (!held.isHeld(meta.migrationId)) {
        // A dump an agent that died started, not frozen yet: the lease holds until it freezes the CT (or ends).
        if (held.underWay(meta.migrationId)) {
          mlog.info('frozen lease due while its dump is under way: it waits for the freeze');
          return arm(meta, retryMs);
        }
        mlog.info('frozen lease over: no dump holds the CT any more (decided, or its criu ended)');
        return;
      }
      try {
        const r = await deps.resume(meta, mlog);
        mlog.warn(
          { actions: r.actions },
          'frozen lease expired without a decision: CT resumed on the source',
        );
      } catch (err) {
        keepFrozen(meta, mlog, err);
      }
    });
  }

  function keepFrozen(meta: HeldMeta, mlog: Logger, err: unknown): void {
    if (err instanceof StepError && err.code === errorCodes.fenced) {
      mlog.error(
        { reason: err.message },
        'frozen lease expired but the target restore has started: keeping the CT frozen',
      );
      arm(meta, meta.leaseMs);
      return;
    }
    mlog.fatal(
      { err },
      'frozen lease expired but the CT cannot be resumed safely (NATS unreachable, or a shared disk not restored): keeping it frozen (safety over availability)',
    );
    arm(meta, retryMs);
  }

  return {
    /** Arm (or re-arm) the lease of a held dump: due at frozenAt + leaseMs, or after `delayMs`. */
    arm,
    stop(): void {
      stopped = true;
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
    },
  };
}
