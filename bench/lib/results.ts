import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { repoRoot } from '@haul/test';
import { round } from './control-proc.ts';

/**
 * The commit a benchmark's code is, to be read when it starts (a commit made while it runs is not what it ran), with
 * `-dirty` when tracked files differ from it; 'unknown' outside a git checkout.
 */
export function commitNow(): string {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: repoRoot }).toString().trim();
    return (
      git('rev-parse', '--short', 'HEAD') +
      (git('status', '--porcelain', '--untracked-files=no') ? '-dirty' : '')
    );
  } catch {
    return 'unknown';
  }
}

/** Write a benchmark's results as JSON to `out` (relative to the repository), and print them. */
export function writeResults(out: string, results: unknown): void {
  const file = resolve(repoRoot, out);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(results, null, 2) + '\n');
  console.log(JSON.stringify(results, null, 2));
}

/** Every round of a timed series, with its median (milliseconds, one decimal). */
export function series(ms: readonly number[]): { medianMs: number; roundsMs: number[] } {
  return { medianMs: round(median(ms), 1), roundsMs: ms.map((m) => round(m, 1)) };
}

/** The middle value; of an even count, the mean of the two middle ones (NaN when there is none). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
