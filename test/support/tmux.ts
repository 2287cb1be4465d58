import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onExit } from './reaper.ts';

/**
 * A terminal for tests: a tmux server of its own (`tmux -L <unique socket>`, no config file), so it never touches
 * another tmux server; each command runs in a pane of its own session, read back with capture-pane. `kill()` ends
 * that one server by its socket.
 */
export type Terminal = {
  /** Run a bash command line in a new pane (`cols` × `rows`); the pane ends with `[exit N]` and stays. */
  run(
    name: string,
    command: string,
    env: Record<string, string>,
    size?: { cols: number; rows: number },
  ): void;
  /** What the pane shows now, one string per screen line (trailing blank lines dropped). */
  capture(name: string): string[];
  /**
   * Capture the pane every `everyMs` until `done` holds for a capture; resolves to every distinct capture taken,
   * in order (the last one satisfies `done`). tmux has no event to await for "the screen changed".
   */
  watch(
    name: string,
    done: (screen: string[]) => boolean,
    timeoutMs: number,
    everyMs?: number,
  ): Promise<string[][]>;
  /** Keys as tmux send-keys names them (`C-c`, `Enter`). */
  sendKeys(name: string, ...keys: string[]): void;
  kill(): void;
};

export function tmuxBinary(): string {
  for (const p of ['/usr/bin/tmux', '/usr/local/bin/tmux']) {
    try {
      execFileSync(p, ['-V'], { stdio: 'ignore' });
      return p;
    } catch {
      /* next */
    }
  }
  throw new Error(
    'tmux not found: install it with `sudo apt-get install -y tmux` (or run `npm run bootstrap`)',
  );
}

export function startTerminal(): Terminal {
  const bin = tmuxBinary();
  const socket = `haul-test-${process.pid}-${randomBytes(4).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'haul-tmux-'));
  // The server takes its environment from the first client: no TMUX (a test run inside tmux), nothing else odd.
  const { TMUX: _t, TMUX_PANE: _p, ...env } = process.env;
  const tmux = (...args: string[]) =>
    execFileSync(bin, ['-L', socket, '-f', '/dev/null', ...args], { env, encoding: 'utf8' });
  let started = false;
  // A test process that dies without kill() still ends its tmux server (and the commands in its panes).
  const cancelExit = onExit(() => t.kill());
  const t: Terminal = {
    run(name, command, vars, size = { cols: 120, rows: 40 }) {
      const script = join(dir, `${name}.sh`);
      const exports = Object.entries(vars).map(([k, v]) => `export ${k}=${shellQuote(v)}`);
      writeFileSync(script, [...exports, `${command}`, 'echo "[exit $?]"', 'exec sleep 3600', ''].join('\n'));
      const cmd = ['new-session', '-d', '-s', name, '-x', String(size.cols), '-y', String(size.rows)];
      tmux(...cmd, `bash --noprofile --norc ${script}`);
      started = true;
    },
    capture(name) {
      // -J: a line the pane wrapped comes back whole.
      const lines = tmux('capture-pane', '-p', '-J', '-t', name).split('\n');
      while (lines.length && lines.at(-1)!.trim() === '') lines.pop();
      return lines;
    },
    async watch(name, done, timeoutMs, everyMs = 200) {
      const seen: string[][] = [];
      const until = Date.now() + timeoutMs;
      for (;;) {
        const screen = t.capture(name);
        if (seen.at(-1)?.join('\n') !== screen.join('\n')) seen.push(screen);
        if (done(screen)) return seen;
        if (Date.now() > until)
          throw new Error(`pane ${name}: gave up after ${timeoutMs} ms; it shows:\n${screen.join('\n')}`);
        await new Promise((r) => setTimeout(r, everyMs));
      }
    },
    sendKeys(name, ...keys) {
      tmux('send-keys', '-t', name, ...keys);
    },
    kill() {
      cancelExit();
      try {
        if (started) tmux('kill-server');
      } catch {
        /* no server left */
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return t;
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
