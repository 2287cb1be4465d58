import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ensureBuilt } from './build.ts';
import { inheritedEnv } from './emulated-cluster.ts';
import { repoRoot } from './paths.ts';

/** How a CLI call ended, with everything it printed. */
export type CliRun = { code: number | null; signal: NodeJS.Signals | null; out: string; err: string };

export type CliRunOptions = {
  /** The environment that makes the call act as an identity (World.envAs), over this process's own. */
  env?: Record<string, string>;
  /** Called with the child once it runs (to close its stdout, send it a signal, …). */
  with?: (child: ReturnType<typeof spawn>) => void;
  /** A call still running after this long is killed (SIGKILL) and reported with that signal. */
  killAfterMs?: number;
};

/** The installed CLI: what `npm install -g` puts on PATH, the bundle behind bin/haul.mjs. */
export const haulBin = join(repoRoot, 'bin', 'haul.mjs');

/** Run the CLI as a process, as a user's shell would. */
export function runHaul(args: string[], o: CliRunOptions = {}): Promise<CliRun> {
  ensureBuilt();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [haulBin, ...args], {
      env: { ...inheritedEnv(), ...(o.env ?? {}) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const hung = setTimeout(() => child.kill('SIGKILL'), o.killAfterMs ?? 300_000);
    // 'close', not 'exit': the child's output is read to its end before the run is reported.
    child.once('close', (code, signal) => {
      clearTimeout(hung);
      resolve({ code, signal, out, err });
    });
    o.with?.(child);
  });
}
