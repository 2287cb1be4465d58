#!/usr/bin/env node
// haul: the ops CLI (see `haul --help`).
import { register } from 'tsx/esm/api';
register();
const { main } = await import('../packages/cli/src/main.ts');
process.exitCode = await main(process.argv.slice(2));
