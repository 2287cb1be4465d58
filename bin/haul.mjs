#!/usr/bin/env node
// haul: the ops CLI (see `haul --help`). Runs the bundle that `npm run build` makes (scripts/build.mjs),
// which needs nothing from node_modules; the packed package is these two files (package.json "files",
// docs/cli.md). In a repository that was never built the bundle is missing: one line that says so, and
// exit 2, the CLI's `usage` code (packages/cli/src/exit-codes.ts; this file cannot import it, that file is
// in the bundle). As after a usage error or a service's bad setting (also 2), nothing was tried, and running
// again fails until someone acts.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const bundle = new URL('../packages/cli/dist/haul.mjs', import.meta.url);
if (!existsSync(bundle)) {
  const repo = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '');
  process.stderr.write(`haul: the CLI is not built; run \`npm run build\` in ${repo}\n`);
  process.exit(2);
}
await import(bundle.href);
