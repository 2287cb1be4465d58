import { rmSync } from 'node:fs';

/*
 * What a test process (or the demo, a bench) started and must not leave behind: processes killed by PID, folders
 * removed, whatever way the process ends — its own end, a crash, a failed assertion outside try/finally, or a signal.
 * Node runs 'exit' handlers on every end but a signal's, so a signal is turned into an exit (exitOnSignals).
 */

const cleanups = new Set<() => void>();
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
    for (const fn of cleanups) {
      try {
        fn();
      } catch (err) {
        process.stderr.write(`cleanup at exit failed: ${(err as Error).stack ?? String(err)}\n`);
      }
    }
  });
}

/** Kill `pid` at exit unless forget(pid) was called (the process was stopped). */
const pids = new Map<number, () => void>();

export function reapOnExit(pid: number | undefined): void {
  if (pid === undefined || pids.has(pid)) return;
  pids.set(
    pid,
    onExit(() => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }),
  );
}

export function forget(pid: number | undefined): void {
  if (pid === undefined) return;
  pids.get(pid)?.();
  pids.delete(pid);
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
