import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { groupMembers, pidReused, procStat, stepTimeoutsMs, type Logger } from '@haul/bus';

/**
 * Host tools that outlive the agent that started them.
 *
 * A tool runs in its own process group (exec.ts), and the unit stops the agent alone (`KillMode=process`, so that a
 * held final dump survives a restart). An agent that dies without stopping (SIGKILL, the OOM killer, its own exit
 * when its command consumer ends) leaves the tools it was running still running, with nobody to read their result.
 * Left alone, such a tool races what the restarted agent does next: a `ploop snapshot -o` that waited for the
 * descriptor's lock stores its snapshot after a lease's resume restored the descriptor from its backup, and the CT
 * runs on a descriptor that names a snapshot nothing will merge; the same command, delivered again, runs a second
 * ploop beside the first.
 *
 * So the runner records each tool it starts, `<stateDir>/tools/<pid>` (the process's start time and command line),
 * and removes the record when the tool ends; and when an agent starts, before it adopts held dumps or takes a
 * command, it ends every recorded tool still running: its whole process group, with SIGKILL, as a timeout or a
 * cancellation ends one (the CTs a tool launched left its group, as real CTs do, and stay). The step the tool served
 * is then in doubt like a timed-out one, and its command, delivered again, is reconciled by inspection. The held
 * dumps' criu is started apart (held-dumps.ts) and is adopted, never ended. A tool that runs to its end (a ploop that
 * changes a device and then its descriptor, a vzctl restore or start: exec.ts RunOptions.toItsEnd) is waited for
 * instead, until its timeout, and ended only after: cut off half done, it would leave the host half changed.
 *
 * An agent killed between the spawn and the record's write leaves no record, but no tool either: a tool starts only
 * once its record is written (exec.ts, gated), and its gate ends with the agent. A record whose pid now names another
 * process (a reboot, or a pid used again once the whole group ended) is told apart by the start time and left
 * alone.
 */

/**
 * A tool the runner started: the leader of its own process group. `until`: a tool that runs to its end (exec.ts
 * RunOptions.toItsEnd), waited for until then (its timeout, ms since the epoch), ended only after.
 */
export type ToolRecord = { pid: number; start: string; argv: string[]; until?: number };

export type ToolRecords = ReturnType<typeof createToolRecords>;

export function createToolRecords(dir: string) {
  mkdirSync(dir, { recursive: true });
  return {
    dir,
    /** A tool was spawned as `pid`: record it before anything else can happen (a synchronous write). */
    started(pid: number, argv: string[], until?: number): void {
      const st = procStat(pid);
      if (!st) return; // ended already: nothing can outlive the agent
      const rec: ToolRecord = { pid, start: st.start, argv, ...(until === undefined ? {} : { until }) };
      writeFileSync(join(dir, String(pid)), JSON.stringify(rec));
    },
    ended(pid: number): void {
      rmSync(join(dir, String(pid)), { force: true });
    },
  };
}

/** A tool group an earlier agent left running that would not end after SIGKILL within the wait. */
export class OrphanedToolError extends Error {
  constructor(rec: ToolRecord, members: number[]) {
    super(
      `${rec.argv.join(' ')} (process group ${rec.pid}), left running by an earlier agent, still has processes ` +
        `${members.join(', ')} after SIGKILL`,
    );
    this.name = 'OrphanedToolError';
  }
}

/**
 * Wait for a tool that runs to its end (its record's `until`): while its leader runs (one /proc read each `pollMs`, not
 * a scan of every process), at most until its time, and never longer than `maxWaitMs` from now (the longest timeout of
 * the tools that run to their end, ploop's and vzctl's restore and start: the time was the dead agent's clock, which
 * may have been ahead). What is left of its group after is ended as any other.
 */
async function toItsEnd(rec: ToolRecord, log: Logger, pollMs: number, maxWaitMs: number): Promise<void> {
  if (procStat(rec.pid) === undefined) return;
  const until = Math.min(rec.until!, Date.now() + maxWaitMs);
  log.warn(
    { pid: rec.pid, argv: rec.argv, until: new Date(until).toISOString() },
    'waiting for a host tool an earlier agent left running to end: cut off half done, it would leave the host half changed',
  );
  while (Date.now() < until) {
    const st = procStat(rec.pid);
    if (st === undefined || st.state === 'Z' || st.start !== rec.start) return;
    await delay(pollMs);
  }
}

/**
 * End every recorded tool that still runs (see above) and forget every record; returns the ones it ended. Waits
 * until each ended group has no live process left, looking at /proc every `pollMs` (a process that is not this
 * one's child has no exit to wait for); a group still there after `waitMs` is an OrphanedToolError, and the agent
 * must not go on. A tool that runs to its end is waited for first, at most `maxWaitMs`.
 */
export async function endOrphanedTools(
  records: Pick<ToolRecords, 'dir'>,
  log: Logger,
  {
    waitMs = 10_000,
    pollMs = 10,
    waitPollMs = 100,
    maxWaitMs = Math.max(stepTimeoutsMs.ploop, stepTimeoutsMs.vzctl),
  }: { waitMs?: number; pollMs?: number; waitPollMs?: number; maxWaitMs?: number } = {},
): Promise<ToolRecord[]> {
  const ended: ToolRecord[] = [];
  for (const name of readdirSync(records.dir)) {
    const file = join(records.dir, name);
    let rec: ToolRecord;
    try {
      rec = JSON.parse(readFileSync(file, 'utf8')) as ToolRecord;
    } catch {
      rmSync(file, { force: true }); // cut short by the agent's death while it was written: nothing to end
      continue;
    }
    if (rec.until !== undefined && !pidReused(rec.pid, rec.start))
      await toItsEnd(rec, log, waitPollMs, maxWaitMs);
    // The pid names another process now: the group it led ended wholly (a group's id is not given out again
    // while one of its processes lives).
    const reused = pidReused(rec.pid, rec.start);
    if (!reused && groupMembers(rec.pid).length > 0) {
      log.warn({ pid: rec.pid, argv: rec.argv }, 'ending a host tool an earlier agent left running');
      try {
        process.kill(-rec.pid, 'SIGKILL');
      } catch {
        /* ended between the look and the kill */
      }
      const deadline = Date.now() + waitMs;
      for (let left = groupMembers(rec.pid); left.length > 0; left = groupMembers(rec.pid)) {
        if (Date.now() > deadline) throw new OrphanedToolError(rec, left);
        await delay(pollMs);
      }
      ended.push(rec);
    }
    rmSync(file, { force: true });
  }
  return ended;
}
