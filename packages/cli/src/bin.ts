// Entry of the `haul` CLI (bundled into packages/cli/dist/haul.mjs; bin/haul.mjs runs it).
import { main } from './main.ts';

process.exitCode = await main(process.argv.slice(2));
