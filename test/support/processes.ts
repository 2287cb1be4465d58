import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { bundleOf, ensureBuilt } from './build.ts';
import { repoRoot } from './paths.ts';
import { forget, reapOnExit } from './reaper.ts';

export { repoRoot };

export type ServiceProcess = {
  name: string;
  pid: number;
  /** Lines the service logged (JSON pino lines on stderr). */
  lines: string[];
  /** Resolve when a log line matches. */
  waitForLine(re: RegExp, timeoutMs?: number): Promise<string>;
  kill(signal?: NodeJS.Signals): Promise<void>;
  exited: Promise<number | null>;
  /**
   * The exit code once the process exited and everything it wrote is in `lines`: 'exit' can come before the last
   * output is read. For a process that ends by itself (a start refused); one whose pipes a child it left behind holds
   * open would not resolve it.
   */
  drained: Promise<number | null>;
  /** Resolves, saying how (`exit code 1`, `signal SIGKILL`), only if the service exits without kill(): it died. */
  died: Promise<string>;
};

/**
 * Start one of haul's services as its own process, from the bundle of its entry (`services/x/src/main.ts` runs
 * `services/x/dist/main.mjs`, built first when stale; `bin/haul.mjs` with `args` runs a CLI command that runs until
 * stopped, such as `haul web`); stop it by PID.
 */
export function startService(
  name: string,
  entry: string,
  env: NodeJS.ProcessEnv,
  nodeArgs: string[] = [],
  args: string[] = [],
): ServiceProcess {
  ensureBuilt();
  const child: ChildProcess = spawn(
    process.execPath,
    [...nodeArgs, join(repoRoot, bundleOf(entry)), ...args],
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
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('exit', (code, signal) => r({ code, signal })),
  );
  const exited = ended.then((e) => e.code);
  const drained = new Promise<number | null>((r) => child.once('close', (code: number | null) => r(code)));
  let stopping = false;
  const died = ended.then((e) =>
    stopping ? new Promise<never>(() => {}) : e.signal ? `signal ${e.signal}` : `exit code ${e.code}`,
  );
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
      stopping = true;
      process.kill(child.pid!, signal);
      await exited;
    },
    exited,
    drained,
    died,
  };
}
