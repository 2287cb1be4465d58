/**
 * Processes a test started, killed by PID if the test process exits without stopping them (a crash, a failed
 * assertion outside try/finally), so no nats-server or service outlives its test.
 */
const pids = new Set<number>();
let installed = false;

export function reapOnExit(pid: number | undefined): void {
  if (pid === undefined) return;
  pids.add(pid);
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
