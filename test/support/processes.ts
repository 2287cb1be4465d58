import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { forget, reapOnExit } from './reaper.ts';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export type ServiceProcess = {
  name: string;
  pid: number;
  /** Lines the service logged (JSON pino lines on stderr). */
  lines: string[];
  /** Resolve when a log line matches. */
  waitForLine(re: RegExp, timeoutMs?: number): Promise<string>;
  kill(signal?: NodeJS.Signals): Promise<void>;
  exited: Promise<number | null>;
};

/** Start one of haul's services (a TypeScript entry run through tsx) as its own process; stop it by PID. */
export function startService(
  name: string,
  entry: string,
  env: NodeJS.ProcessEnv,
  nodeArgs: string[] = [],
): ServiceProcess {
  const child: ChildProcess = spawn(
    process.execPath,
    [...nodeArgs, '--import', 'tsx', join(repoRoot, entry)],
    {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: repoRoot,
    },
  );
  reapOnExit(child.pid);
  child.once('exit', () => forget(child.pid));
  const lines: string[] = [];
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  let buf = '';
  const onData = (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      lines.push(line);
      if (process.env['HAUL_TEST_ECHO'] === '1') process.stderr.write(`[${name}] ${line}\n`);
      for (const w of [...waiters])
        if (w.re.test(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return {
    name,
    pid: child.pid!,
    lines,
    waitForLine(re, timeoutMs = 30_000) {
      const hit = lines.find((l) => re.test(l));
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const w = { re, resolve: (l: string) => (clearTimeout(t), resolve(l)) };
        const t = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(
            new Error(
              `${name}: no log line matching ${re} within ${timeoutMs} ms; last lines:\n${lines.slice(-15).join('\n')}`,
            ),
          );
        }, timeoutMs);
        waiters.push(w);
        void exited.then((code) => {
          if (waiters.includes(w)) {
            clearTimeout(t);
            waiters.splice(waiters.indexOf(w), 1);
            reject(
              new Error(
                `${name} exited (${code}) before logging ${re}; last lines:\n${lines.slice(-15).join('\n')}`,
              ),
            );
          }
        });
      });
    },
    async kill(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      process.kill(child.pid!, signal);
      await exited;
    },
    exited,
  };
}
