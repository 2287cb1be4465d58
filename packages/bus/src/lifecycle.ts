import { groupMembers, processLive } from './proc.ts';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';

/**
 * Is there a process with this pid (a negative pid: a process in that process group)? Signal 0 checks without
 * sending anything; a process this one may not signal (EPERM) counts as gone, as the processes asked about are its own.
 * A zombie counts as gone too, and a group whose members are all zombies: they have ended, only their exit status
 * waits for a parent, which for a process whose own parent died is PID 1 or the nearest subreaper, and some reap late
 * (seconds, on a sandbox's init).
 */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie has ended; so has a group whose members are all zombies (signal 0 reaches them too).
  return pid > 0 ? processLive(pid) : groupMembers(-pid).length > 0;
}

/** A fatal crash is logged and ends the process (the supervisor restarts it); the log is the state. */
export function exitOnUncaught(log: Logger): void {
  process.on('uncaughtException', (err) => {
    log.fatal({ err }, 'uncaught exception');
    process.exit(1);
  });
}

/** On SIGTERM/SIGINT: stop the service, drain the NATS connection, exit 0. */
export function stopOnSignals(log: Logger, service: { stop(): Promise<void> }, nc: NatsConnection): void {
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => {
      log.info({ sig }, 'stopping');
      void service
        .stop()
        .then(() => nc.drain())
        .then(() => process.exit(0));
    });
  }
}

/**
 * A service's consumer loop is its reason to live: if it ends or throws while the service is not stopping, the
 * process exits (non-zero) so its supervisor restarts it, instead of staying up and heartbeating while deaf.
 */
export function exitWhenLoopEnds(
  log: Logger,
  what: string,
  loop: Promise<void>,
  stopping: AbortSignal,
  exit: (code: number) => void = (code) => process.exit(code),
): Promise<void> {
  return loop.then(
    () => {
      if (stopping.aborted) return;
      log.fatal(`${what} ended: exiting so that a supervisor restarts the service`);
      exit(70);
    },
    (err: unknown) => {
      if (stopping.aborted) return;
      log.fatal({ err }, `${what} failed: exiting so that a supervisor restarts the service`);
      exit(70);
    },
  );
}
