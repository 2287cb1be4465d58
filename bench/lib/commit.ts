import { execFileSync } from 'node:child_process';
import { repoRoot } from '@haul/test';

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
