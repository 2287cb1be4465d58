// Entry of the `haul` CLI (bundled into packages/cli/dist/haul.mjs; bin/haul.mjs runs it).
import { main } from './main.ts';
import { exitQuietlyOnClosedPipe } from './output.ts';

exitQuietlyOnClosedPipe();
process.exitCode = await main(process.argv.slice(2));
