import { exitCode } from './exit-codes.ts';

/** Where a command's output goes: lines for people (cut to the terminal's width), JSON lines, tables. */
export type Output = {
  /** Lines for people; on a terminal each is cut to its width (never wrapped). */
  line(s: string): void;
  /** Text printed as it is (help: already laid out). */
  text(s: string): void;
  /** A value as one JSON line. */
  json(v: unknown): void;
  /** A table with a header row, its columns fitted to the terminal's width. */
  table(rows: readonly Row[], columns: readonly Column[]): void;
  /** The terminal's width in columns; Infinity when the output is not a terminal (a pipe or a file). */
  width: number;
  /** A terminal that can rewrite a line in place (not TERM=dumb): the live view's status line. */
  live: boolean;
  /** Text as it is: no newline added, never cut (the live view's control sequences). */
  write(s: string): void;
};

export type Row = Record<string, string>;
/** A column of a table; `shrink` columns give up width (longest first) when the table is wider than the terminal. */
export type Column = { key: string; header: string; align?: 'right'; shrink?: boolean };

type Stream = { write(s: string): unknown; isTTY?: boolean | undefined; columns?: number | undefined };

export function createOutput(stream: Stream = process.stdout, env = process.env): Output {
  // COLUMNS as terminals and `ls` use it: a width for a pipe, or one smaller than the terminal's.
  const fromEnv = Number(env['COLUMNS']);
  const width =
    Number.isInteger(fromEnv) && fromEnv > 0
      ? fromEnv
      : stream.isTTY && stream.columns
        ? stream.columns
        : Infinity;
  const write = (s: string) => void stream.write(`${s}\n`);
  return {
    width,
    live: stream.isTTY === true && env['TERM'] !== 'dumb',
    write: (s) => void stream.write(s),
    line: (s) => {
      for (const l of s.split('\n')) write(fit(l, width));
    },
    text: write,
    json: (v) => write(JSON.stringify(v)),
    table: (rows, columns) => {
      for (const l of renderTable(rows, columns, width)) write(l);
    },
  };
}

/** Cut a line to `width` characters, marking the cut with an ellipsis. */
export function fit(s: string, width: number): string {
  if (s.length <= width) return s;
  return width <= 1 ? s.slice(0, width) : `${s.slice(0, width - 1)}…`;
}

const gap = 2;
const minShrunk = 8;

/** Header and rows, columns padded to their widest cell; shrink columns cut until the lines fit `width`. */
export function renderTable(rows: readonly Row[], columns: readonly Column[], width: number): string[] {
  const widths = columns.map((c) => Math.max(c.header.length, ...rows.map((r) => (r[c.key] ?? '').length)));
  let excess = widths.reduce((a, b) => a + b, 0) + gap * (columns.length - 1) - width;
  while (excess > 0) {
    const i = widestShrinkable(columns, widths);
    if (i < 0) break;
    const cut = Math.min(excess, widths[i]! - minShrunk);
    widths[i] = widths[i]! - cut;
    excess -= cut;
  }
  const cell = (c: Column, i: number, v: string) => {
    const s = fit(v, widths[i]!);
    return c.align === 'right' ? s.padStart(widths[i]!) : s.padEnd(widths[i]!);
  };
  const lineOf = (get: (c: Column) => string) =>
    fit(
      columns
        .map((c, i) => cell(c, i, get(c)))
        .join(' '.repeat(gap))
        .trimEnd(),
      width,
    );
  return [lineOf((c) => c.header), ...rows.map((r) => lineOf((c) => r[c.key] ?? ''))];
}

function widestShrinkable(columns: readonly Column[], widths: number[]): number {
  let best = -1;
  columns.forEach((c, i) => {
    if (c.shrink && widths[i]! > minShrunk && (best < 0 || widths[i]! > widths[best]!)) best = i;
  });
  return best;
}

/** A duration for a table: 850ms, 12.3s, 4m05s, 2h07m. */
export function formatDuration(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '-';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.floor(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * A reader that closed the pipe (`haul events --json | head -1`) has all it wanted: exit quietly with 0 instead of
 * dying on an unhandled EPIPE with a stack trace. git and kubectl die from SIGPIPE there (status 141 under
 * `set -o pipefail`); Node ignores SIGPIPE, and 0 keeps `set -o pipefail` scripts that use `| head` working.
 */
export function exitQuietlyOnClosedPipe(
  stream: NodeJS.WriteStream = process.stdout,
  exit: (code: number) => void = (code) => process.exit(code),
): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') exit(exitCode('completed'));
    else throw err;
  });
}
