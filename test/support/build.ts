import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from './paths.ts';

let built = false;

/**
 * Programs run from their bundles (scripts/build.mjs); a test that starts one first makes sure the bundles are
 * not older than the sources. `npm test` checks once for all its test processes and says so (HAUL_TEST_BUILT=1).
 */
export function ensureBuilt(): void {
  if (built || process.env['HAUL_TEST_BUILT'] === '1') return;
  execFileSync(process.execPath, [join(repoRoot, 'scripts', 'build.mjs'), '--if-stale'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  built = true;
}

/** The bundle of a program's entry: `<pkg>/src/main.ts` → `<pkg>/dist/main.mjs`. */
export const bundleOf = (entry: string): string => entry.replace(/(^|\/)src\/([^/]+)\.ts$/, '$1dist/$2.mjs');
