#!/usr/bin/env node
// haul: the ops CLI (see `haul --help`). Runs the bundle that `npm run build` makes (scripts/build.mjs).
await import('../packages/cli/dist/haul.mjs');
