import type { StatusLine } from './live-view.ts';
import { fit, type Output } from './output.ts';

/**
 * Where the live view is drawn: log lines that scroll, and under them one status line. On a terminal the status line
 * rewrites itself in place (carriage return, erase line) and a timer redraws it, so that running clocks (the frozen
 * timer, a step's running time) move between events. Anywhere else — a pipe, a file, TERM=dumb — there are no control
 * codes: the status line is printed as a plain line when what it says changes, and its numbers at most every
 * `plainEveryMs`.
 */
export type StatusBoard = {
  /** A line that stays (a step's result, a decision, a failure), above the status line. */
  log(line: string): void;
  /** Something changed: draw the status line again (on a pipe: print it if it says something new). */
  update(): void;
  /** Erase the status line and stop its timer: what follows is printed as plain lines. */
  close(): void;
};

export type BoardOptions = {
  /** How often a terminal's status line is redrawn between events. */
  tickMs?: number;
  /** On a pipe, the same status with new numbers is printed at most this often. */
  plainEveryMs?: number;
  now?: () => number;
};

const eraseLine = '\r\x1b[2K';

export function createStatusBoard(
  out: Output,
  status: (now: number) => StatusLine,
  o: BoardOptions = {},
): StatusBoard {
  const now = o.now ?? Date.now;
  return out.live ? terminalBoard(out, status, now, o.tickMs ?? 200) : plainBoard(out, status, now, o);
}

function terminalBoard(
  out: Output,
  status: (now: number) => StatusLine,
  now: () => number,
  tickMs: number,
): StatusBoard {
  let shown = '';
  let closed = false;
  // One column short of the width: a line that fills the last column makes some terminals wrap on the next write.
  const width = Number.isFinite(out.width) ? Math.max(out.width - 1, 10) : 200;
  const draw = () => {
    if (closed) return;
    const text = fit(status(now()).text, width);
    if (text === shown) return;
    out.write(`${eraseLine}${text}`);
    shown = text;
  };
  // unref: the timer never keeps the process alive by itself.
  const timer = setInterval(draw, tickMs);
  timer.unref();
  const erase = () => {
    if (shown) out.write(eraseLine);
    shown = '';
  };
  return {
    log(line) {
      if (closed) return out.line(line);
      erase();
      out.line(line);
      draw();
    },
    update: draw,
    close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      erase();
    },
  };
}

function plainBoard(
  out: Output,
  status: (now: number) => StatusLine,
  now: () => number,
  o: BoardOptions,
): StatusBoard {
  const every = o.plainEveryMs ?? 5_000;
  let last: { text: string; key: string; at: number } | undefined;
  let closed = false;
  return {
    log: (line) => out.line(line),
    update() {
      if (closed) return;
      const t = now();
      const s = status(t);
      const fresh = !last || s.key !== last.key || (s.text !== last.text && t - last.at >= every);
      if (!fresh) return;
      out.line(s.text);
      last = { ...s, at: t };
    },
    close() {
      closed = true;
    },
  };
}
