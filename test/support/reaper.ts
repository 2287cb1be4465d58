import { rmSync } from 'node:fs';
import { groupMembers, processLive } from '@haul/bus';

/*
 * What a test process (or the demo, a bench) started and must not leave behind: processes killed by PID, folders
 * removed, whatever way the process ends — its own end, a crash, a failed assertion outside try/finally, or a signal.
 * Node runs 'exit' handlers on every end but a signal's, so a signal is turned into an exit (exitOnSignals).
 *
 * At exit the processes go first, and only once they are gone do the other cleanups run: a folder removed while a
 * process that writes into it still runs can be made again, or fail to go (ENOTEMPTY), and stay behind. A demo ended
 * by SIGTERM once left its world folder that way: the folder's removal ran before its services were killed.
 */

const cleanups = new Set<() => void>();
/** Processes to kill at exit (before any other cleanup) unless forgotten (they were stopped). */
const pids = new Set<number>();
let installed = false;

/**
 * Run `fn` when the process exits, unless the returned function is called first (the test cleaned up itself). Each
 * cleanup runs whatever the others do: one that throws is reported and the rest still run.
 */
export function onExit(fn: () => void): () => void {
  cleanups.add(fn);
  install();
  return () => cleanups.delete(fn);
}

function install(): void {
  if (installed) return;
  installed = true;
  exitOnSignals();
  process.once('exit', () => {
    killAndWait([...pids].map((pid) => ({ pid })));
    for (const fn of cleanups) {
      try {
        fn();
      } catch (err) {
        process.stderr.write(`cleanup at exit failed: ${(err as Error).stack ?? String(err)}\n`);
      }
    }
  });
}

/** Kill `pid` at exit, before the other cleanups run, unless forget(pid) was called (the process was stopped). */
export function reapOnExit(pid: number | undefined): void {
  if (pid === undefined) return;
  pids.add(pid);
  install();
}

export function forget(pid: number | undefined): void {
  if (pid !== undefined) pids.delete(pid);
}

/** A process to kill: one pid, or with `group` the whole process group it leads. */
export type KillTarget = { pid: number; group?: boolean };

/** Is the target still there: a process (or a member of its group) that has not ended (zombies have)? */
const stillThere = (t: KillTarget): boolean =>
  t.group ? groupMembers(t.pid).length > 0 : processLive(t.pid);

/** Block this thread for `ms` (an exit handler has no event loop to wait in). */
const pause = (ms: number): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
};

/**
 * SIGKILL every target, then wait until none has a live process left, up to `waitMs`; returns those still there. A
 * SIGKILL is not an end: the process ends when it next leaves the kernel, and a write it is in finishes first.
 * Synchronous, as it runs at exit too, where nothing may throw.
 */
export function killAndWait(targets: KillTarget[], waitMs = 5_000): KillTarget[] {
  for (const t of targets)
    try {
      process.kill(t.group ? -t.pid : t.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  const end = Date.now() + waitMs;
  let left = targets.filter(stillThere);
  while (left.length > 0 && Date.now() < end) {
    pause(5);
    left = left.filter(stillThere);
  }
  return left;
}

/** Remove `dir` at exit; the returned function forgets it (the caller removed it). */
export const removeOnExit = (dir: string): (() => void) =>
  onExit(() => rmSync(dir, { recursive: true, force: true }));

/**
 * A signal that would end this process (Ctrl-C, SIGTERM from `timeout` or the test runner, SIGHUP) ends it through
 * process.exit instead, with the shell's status for that signal, so the cleanups run: a demo ended by `timeout` once
 * left its emulated CT (a detached process, out of reach of a terminal's Ctrl-C) running for 40 minutes. A program
 * that handles the signal itself (the soak stops its chaos, audits and writes its results first) is left to do so.
 */
function exitOnSignals(): void {
  for (const [signal, n] of [
    ['SIGINT', 2],
    ['SIGTERM', 15],
    ['SIGHUP', 1],
  ] as const)
    process.on(signal, () => {
      if (process.listenerCount(signal) === 1) process.exit(128 + n);
    });
}
