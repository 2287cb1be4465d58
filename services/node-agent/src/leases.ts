import { setTimeout as delay } from 'node:timers/promises';
import { migrationLogger, type Logger } from '@haul/bus';
import type { HostResult } from '@haul/schemas';
import { errorCodes } from '@haul/domain';
import { StepError } from './context.ts';
import { dumpTimeoutOf, type HeldDumps, type HeldMeta } from './held-dumps.ts';

/** After a failed resume (bus unreachable, a disk not restored), the next try comes this much later. */
const retryMs = 1000;
/**
 * How often a held dump is looked at (a /proc read and a stat): its criu must still hold the CT. A dump this agent
 * started is looked at as well when its `sh` ends (held.onShEnd), at once.
 */
const watchMs = 250;

export type LeaseDeps = {
  held: HeldDumps;
  log: Logger;
  /** Resume the CT on the source after winning the fence (shared disks restored first, then the thaw). */
  resume(meta: HeldMeta, mlog: Logger): Promise<HostResult>;
  /** Run as the only host action of the moment of its migration and of its CT (never beside a step of either). */
  exclusive(meta: HeldMeta, fn: () => Promise<void>): Promise<void>;
  /** Kill the CT on the source (vzctl stop --fast): its held criu ended after the target restore started. */
  stopSource(meta: HeldMeta, mlog: Logger): Promise<void>;
  /** How often a held dump is looked at (default watchMs). */
  watchMs?: number;
};

/** The resume's refusals that say the target may run the CT, and how the log says so. */
const targetMayRunWhen: Readonly<Record<string, string>> = {
  [errorCodes.fenced]: 'the target restore has started',
  [errorCodes.logIncomplete]:
    "the migration's log is no longer whole (fencing.ts, wholeLog): whether the target restore started is unknown",
};

/** A resume's refusal that says the target may run the CT: how the log says so, and the refusal's reason. */
function targetMayRun(err: unknown): { said: string; reason: string } | undefined {
  if (!(err instanceof StepError)) return undefined;
  const said = targetMayRunWhen[err.code];
  return said === undefined ? undefined : { said, reason: err.message };
}

/**
 * The dead-man switch of a frozen CT: without a decision within its lease, the source resumes the CT if the fence
 * allows. Whatever stops the resume keeps the CT frozen and the lease is tried again: the target restore started
 * (the CT may run there), NATS cannot be reached (the fence cannot be won), or a shared disk could not be restored
 * (thawing would let the CT write a copy the descriptor does not name) — safety over availability.
 */
export function createLeases(deps: LeaseDeps) {
  const { held, log } = deps;
  const timers = new Map<string, NodeJS.Timeout>();
  const watches = new Map<string, { timer: NodeJS.Timeout; meta: HeldMeta }>();
  /** Leases due while their dump is under way, said once. */
  const waitingForFreeze = new Set<string>();
  let stopped = false;

  /**
   * A held dump's criu that ends without a decision (killed: the OOM killer, an operator) lets go of the CT: real
   * criu thaws the freezer once it has seized the tasks (criu/seize.c freeze_processes, 658–662: the tasks are held
   * by ptrace alone, not frozen), and the kernel lets traced tasks run again when their tracer dies. So the CT runs
   * on the source again, and nothing in the log says so: the target's restore fence would let it start there too.
   * The lease fires at once then: it wins the fence (ResumedOnSource, reason lease-expired) and the rollback follows;
   * if the target restore started first, only the target may run the CT, and the source's is stopped.
   */
  function watch(meta: HeldMeta): void {
    if (watches.has(meta.migrationId) || stopped) return;
    const timer = setInterval(() => look(meta.migrationId), deps.watchMs ?? watchMs);
    timer.unref();
    watches.set(meta.migrationId, { timer, meta });
  }

  /** A watched dump whose criu no longer runs: ended as asked (a decision was written), or acted on. */
  function look(migrationId: string): void {
    const w = watches.get(migrationId);
    if (!w || held.runs(migrationId)) return;
    clearInterval(w.timer);
    watches.delete(migrationId);
    if (held.outcome(migrationId).decision === undefined) void criuEnded(w.meta);
  }
  held.onShEnd(look);

  async function criuEnded(meta: HeldMeta): Promise<void> {
    clearTimeout(timers.get(meta.migrationId));
    timers.delete(meta.migrationId);
    const mlog = migrationLogger(log, meta.migrationId, { ctid: meta.ctid });
    mlog.error(
      { outcome: held.outcome(meta.migrationId) },
      "the held dump's criu ended without a decision: its CT runs on the source again; resuming it there, or stopping it if the target restore started",
    );
    for (let done = false; !done && !stopped;) {
      await deps
        .exclusive(meta, async () => {
          try {
            const r = await deps.resume(meta, mlog);
            mlog.warn({ actions: r.actions }, 'CT resumed on the source after its held dump ended');
            done = true;
          } catch (err) {
            // The fence won (or judged before), but the CT runs nowhere here: nothing to resume, and nothing can run
            // twice. Tried again it would fail the same way for ever.
            if (err instanceof StepError && err.code === errorCodes.ctNotRunning) {
              mlog.error({ reason: err.message }, 'its CT does not run on the source: nothing to resume');
              done = true;
              return;
            }
            // The target may run the CT: its restore started, or the log lost its oldest events, a RestoreStarted
            // maybe among them (they go oldest first, after the request). Stopped here it may run nowhere, for an
            // operator to start where it belongs; left running it may run twice, on the same shared disks.
            const why = targetMayRun(err);
            if (why) {
              mlog.error({ reason: why.reason }, `${why.said}: stopping the CT on the source`);
              await deps.stopSource(meta, mlog);
              done = true;
              return;
            }
            mlog.fatal({ err }, 'the CT cannot be resumed on the source safely yet: trying again');
          }
        })
        .catch((err: unknown) => mlog.fatal({ err }, 'stopping the CT on the source failed: trying again'));
      if (!done) await delay(retryMs);
    }
  }

  function arm(meta: HeldMeta | undefined, delayMs?: number): void {
    if (!meta || stopped) return;
    const frozenAt = Date.parse(meta.frozenAt ?? new Date().toISOString());
    // frozenAt is a wall-clock time, maybe of an agent before a restart: a clock set back since never holds the CT
    // longer than its lease from now (and never past setTimeout's range).
    const due = delayMs ?? Math.min(meta.leaseMs, Math.max(0, frozenAt + meta.leaseMs - Date.now()));
    watch(meta);
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
        // A dump an agent that died started, not frozen yet: the lease holds until it freezes the CT (or ends), or
        // until the dump's own time is over, when its step's wait would have killed it (held-dumps.ts
        // frozenOrEnded): no step may wait for it (its command given up, or gone), and a criu hung there holds the
        // CT's tasks and every later action of the migration.
        if (pastItsTime(meta) && held.killUnderWay(meta.migrationId)) {
          waitingForFreeze.delete(meta.migrationId);
          mlog.error(
            { dumpTimeoutMs: dumpTimeoutOf(meta) },
            'a final dump neither froze the CT nor ended within its time: killed, its tasks run again',
          );
          return;
        }
        if (held.underWay(meta.migrationId)) {
          if (!waitingForFreeze.has(meta.migrationId))
            mlog.info('frozen lease due while its dump is under way: it waits for the freeze');
          waitingForFreeze.add(meta.migrationId);
          return arm(meta, retryMs);
        }
        waitingForFreeze.delete(meta.migrationId);
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

  /**
   * The dump started longer ago than its time (dumpTimeoutOf). Its start is a wall-clock time, maybe of an agent
   * before a restart: a clock stepped forward since kills a dump early, which only fails its migration's final dump.
   */
  function pastItsTime(meta: HeldMeta): boolean {
    const started = Date.parse(meta.frozenAt ?? '');
    return Number.isFinite(started) && Date.now() - started > dumpTimeoutOf(meta);
  }

  function keepFrozen(meta: HeldMeta, mlog: Logger, err: unknown): void {
    const why = targetMayRun(err);
    if (why) {
      mlog.error({ reason: why.reason }, `frozen lease expired but ${why.said}: keeping the CT frozen`);
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
    /**
     * Act on a held dump whose criu ended with no decision while no agent watched it (held.endedUndecided), as its
     * watch would have: resume the CT on the source, or stop it there if the target restore started.
     */
    ended: (meta: HeldMeta): Promise<void> => criuEnded(meta),
    stop(): void {
      stopped = true;
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
      for (const w of watches.values()) clearInterval(w.timer);
      watches.clear();
    },
  };
}
