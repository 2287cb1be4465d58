import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { startService, type NatsServer, type ServiceProcess } from '@haul/test';

export const serviceKinds = ['agent', 'streamer', 'coordinator', 'nats'] as const;
export type ServiceKind = (typeof serviceKinds)[number];

/** One process the soak runs, kills by PID and starts again. */
export type Managed = {
  name: string;
  kind: ServiceKind;
  pid(): number | undefined;
  /** kill -9 by PID and wait until it is gone; returns the PID killed. Nothing restarts it until start(). */
  kill9(): Promise<number | undefined>;
  /** Start it (again) and resolve once it is ready. */
  start(): Promise<void>;
  /** Stop for good (SIGKILL), at the end of the soak. */
  stop(): Promise<void>;
};

export type SupervisorEvents = {
  /** A service died without being killed by the soak (a supervisor, as compose's restart policy, restarts it). */
  onUnexpectedExit(name: string, code: number | null, lastLines: string[]): void;
  /** A start did not get ready (it exited or timed out); it is tried again. */
  onStartFailure(name: string, err: Error): void;
};

export type ServiceSpec = {
  name: string;
  kind: ServiceKind;
  entry: string;
  env: NodeJS.ProcessEnv;
  ready: RegExp;
};

const readyTimeoutMs = 120_000;
const restartPauseMs = 1_000;
const flushEveryMs = 5_000;

/**
 * A haul service as its own process, supervised as in production: an exit the soak did not cause is reported and
 * followed by a restart. Its log lines go to `<logDir>/<name>.log` (flushed, so a long run keeps no log in memory).
 */
export function superviseService(spec: ServiceSpec, logDir: string, ev: SupervisorEvents): Managed {
  let proc: ServiceProcess | undefined;
  let wanted = false;
  let starting: Promise<void> | undefined;
  const logFile = join(logDir, `${spec.name}.log`);
  const flush = () => {
    if (!proc?.lines.length) return;
    appendFileSync(logFile, proc.lines.splice(0).join('\n') + '\n');
  };
  const timer = setInterval(flush, flushEveryMs);
  timer.unref();

  const launchOnce = async (): Promise<void> => {
    const p = startService(spec.name, spec.entry, spec.env);
    proc = p;
    try {
      await p.waitForLine(spec.ready, readyTimeoutMs);
    } catch (err) {
      flush();
      await p.kill('SIGKILL');
      throw err;
    }
    void p.exited.then((code) => {
      if (proc !== p) return;
      const tail = p.lines.slice(-10);
      flush();
      if (!wanted) return;
      ev.onUnexpectedExit(spec.name, code, tail);
      void delay(restartPauseMs).then(() => (wanted && proc === p ? m.start() : undefined));
    });
  };

  const m: Managed = {
    name: spec.name,
    kind: spec.kind,
    pid: () => proc?.pid,
    async kill9() {
      wanted = false;
      await starting;
      const p = proc;
      if (!p) return undefined;
      await p.kill('SIGKILL');
      flush();
      return p.pid;
    },
    start() {
      wanted = true;
      starting ??= (async () => {
        for (;;) {
          try {
            await launchOnce();
            return;
          } catch (err) {
            ev.onStartFailure(spec.name, err as Error);
            if (!wanted) return;
            await delay(restartPauseMs);
          }
        }
      })().finally(() => (starting = undefined));
      return starting;
    },
    async stop() {
      wanted = false;
      clearInterval(timer);
      await starting?.catch(() => {});
      await proc?.kill('SIGKILL');
      flush();
    },
  };
  return m;
}

/** One server of the JetStream cluster, killed by PID and started again on the same port and store. */
export function natsMember(name: string, server: NatsServer): Managed {
  let down = false;
  return {
    name,
    kind: 'nats',
    pid: () => (down ? undefined : server.pid),
    async kill9() {
      const pid = server.pid;
      await server.kill('SIGKILL');
      down = true;
      return pid;
    },
    async start() {
      if (!down) return;
      await server.restart();
      down = false;
    },
    async stop() {
      if (!down) await server.kill('SIGKILL');
      down = true;
    },
  };
}
