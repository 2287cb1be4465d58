/**
 * Processes a test started, killed by PID if the test process exits without stopping them (a crash, a failed
 * assertion outside try/finally), so no nats-server or service outlives its test.
 */
const pids = new Set<number>();
let installed = false;

export function reapOnExit(pid: number | undefined): void {
  if (pid === undefined) return;
  pids.add(pid);
  exitOnSignals();
  if (installed) return;
  installed = true;
  process.once('exit', () => {
    for (const p of pids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  });
}

export function forget(pid: number | undefined): void {
  if (pid !== undefined) pids.delete(pid);
}

let signalsHandled = false;

/**
 * A signal that would end this process (Ctrl-C on the demo, the test runner stopping a file, `timeout`) ends it
 * through process.exit instead, with the shell's status for that signal. Node runs no 'exit' handler for a process a
 * signal kills, and the harness cleans up in 'exit' handlers: the services and servers above, the emulated CTs
 * (detached, so a terminal's Ctrl-C does not reach them) and the temporary folders. A demo killed by `timeout` once
 * left its CT running for 40 minutes.
 */
export function exitOnSignals(): void {
  if (signalsHandled) return;
  signalsHandled = true;
  for (const [signal, n] of [
    ['SIGINT', 2],
    ['SIGTERM', 15],
    ['SIGHUP', 1],
  ] as const)
    process.once(signal, () => process.exit(128 + n));
}
